"""Converters that build weight files from PyPI-packaged sources (no jax or TF at run time)."""
