"""Primitives shared by models, degradations and methods: one copy of each."""
