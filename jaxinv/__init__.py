"""jaxinv: GAN inversion and GAN-prior image processing in JAX/Flax."""

__version__ = "0.1.0"
