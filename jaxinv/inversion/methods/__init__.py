"""Inversion methods (one module each)."""
