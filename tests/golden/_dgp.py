"""Shared loading for the DGP golden tests (converted G/D, fixture images as NHWC)."""

import numpy as np

from jaxinv.converters import dgp_biggan
from jaxinv.io import torch_pickle
from jaxinv.models import biggan


def load_g(gd, file=None):
  conv = dgp_biggan.convert(torch_pickle.load(gd.path(file or gd.expected["checkpoint"]["G_file"])))
  assert conv.family == "biggan"
  return biggan.BigGANGenerator(conv.config), conv.params


def load_d(gd):
  conv = dgp_biggan.convert(torch_pickle.load(gd.path(gd.expected["checkpoint"]["D_file"])))
  assert conv.family == "biggan_d"
  return biggan.BigGANDiscriminator(conv.config), conv.params


def u8_to_nhwc(u):
  """``_uint8`` NCHW fixture image -> float32 NHWC in [-1, 1] (``(u/255 - 0.5)/0.5``)."""
  return ((np.asarray(u).astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
          ).transpose(0, 2, 3, 1)


def nhwc(x):
  return np.asarray(x).transpose(0, 2, 3, 1)


def nchw(x):
  return np.asarray(x).transpose(0, 3, 1, 2)
