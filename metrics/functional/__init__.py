"""Functional cores of the metrics: pure tensor functions, no state."""
