"""A PyTorch re-implementation of the official mGANprior loop for side-by-side timing (not the official code)."""
