"""Shared bound for the IDInvert golden tests."""

import numpy as np

# README §8: rerunning the official code with one torch thread instead of two (summation order only)
# moves forward arrays by max|diff| / max(1, max|value|) = 1.2e-6. Measured here (JAX vs torch, under
# default, AVX2, AVX and SSE4_2): <= 5.3e-6 on that scale (images, encoder blocks, codes; VGG
# features 1e-6). 3e-5 is 25x the thread floor and 6x the worst measured; the README's looser 1e-4
# is not needed by any forward array.
FWD_RTOL = 3e-5


def fwd_tol(expected):
  """Forward arrays: ``FWD_RTOL * max(1, max|expected|)`` absolute."""
  return FWD_RTOL * max(1.0, float(np.abs(expected).max()))
