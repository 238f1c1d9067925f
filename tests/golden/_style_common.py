"""Helpers shared by the style-generator golden tests (NCHW fixtures ↔ NHWC jaxinv)."""

import numpy as np


def nchw(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def image_atol(expected, scale=1e-4):
  """The issue's image tolerance: ``scale × max(1, output range)``."""
  e = np.asarray(expected)
  return scale * max(1.0, float(e.max() - e.min()))
