"""Training small GAN priors (the bundled demo prior)."""
