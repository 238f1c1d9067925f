"""jaxinv: GAN inversion and GAN-prior image processing in JAX/Flax."""

import os as _os

__version__ = "0.1.0"

# The repository keeps converters/ and experiments/ at its top; the wheel installs them as
# jaxinv.converters and jaxinv.experiments (setup.py). In a source checkout the same names
# resolve to those top-level folders.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if (_os.path.isfile(_os.path.join(_checkout, "converters", "__init__.py"))
    and not _os.path.isdir(_os.path.join(__path__[0], "converters"))):
  __path__.append(_checkout)
del _checkout
