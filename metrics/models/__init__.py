"""Neural network definitions for metric backbones (no weights: see metrics.convert)."""
