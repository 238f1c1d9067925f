"""Helpers shared by the style-generator golden tests (NCHW fixtures ↔ NHWC jaxinv)."""

import numpy as np


def nchw(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def image_atol(expected, scale=1e-4):
  """The issue's image tolerance: ``scale × max(1, output range)``."""
  e = np.asarray(expected)
  return scale * max(1.0, float(e.max() - e.min()))


def jitted_methods(module, variables) -> dict:
  """The generator methods the fixtures exercise, each jitted once over ``variables``."""
  import jax
  m, v = module, variables
  return {
      "mapping": jax.jit(lambda z: m.apply(v, z, method=m.mapping)),
      "truncate": jax.jit(lambda w, psi, n: m.apply(v, w, psi, n, method=m.truncate),
                          static_argnums=(1, 2)),
      "synthesis": jax.jit(lambda wp: m.apply(v, None, wp, method=m.synthesis)),
      "styles": jax.jit(lambda wp: m.apply(v, wp, method=m.styles)),
      "intermediates": jax.jit(lambda wp: m.apply(v, wp, method=m.intermediates)),
  }
