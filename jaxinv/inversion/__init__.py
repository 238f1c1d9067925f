"""Inversion: spaces, objectives, the shared optimisation loop and the methods."""
