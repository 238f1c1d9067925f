"""Helpers shared by the style-generator golden tests (NCHW fixtures ↔ NHWC jaxinv)."""

import numpy as np


def nchw(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def image_atol(expected, scale=1e-4):
  """Image / activation tolerance ``scale × max(1, output range)``.

  README §7 (mganprior): the official StyleGAN in float64 differs from its float32 by 4.1e-5 on an
  image of range 25.8 (1.6e-6 of the range; instance norm divides by small deviations), StyleGAN2 by
  4.2e-6 on a range of 11.5; stylegan2_rosinality's README measured an independent JAX port at
  1.1e-6 relative. Scaling by the range keeps the bound relative for generators whose outputs are not
  in [-1, 1]; 1e-4 of the range is >= 25x the worst float64 difference, room for another CPU's kernels
  through 8-12 layers of normalised convolutions.
  """
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
