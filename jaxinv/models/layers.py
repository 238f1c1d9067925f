"""Building blocks shared by the generator families (NHWC activations, HWIO kernels).

Equalized learning rate (Karras et al., 2018): weights are stored N(0, 1) and
scaled at run time by ``gain / sqrt(fan_in)``; that scale is applied here, never
folded into the stored parameters, so converted checkpoints stay byte-equal to
their source.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "pixel_norm", "lrelu", "conv2d", "conv_transpose2d_torch", "upsample_nearest",
    "instance_norm", "he_scale", "to_nchw", "to_nhwc",
]


def he_scale(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
  """The equalized-lr multiplier ``gain / sqrt(fan_in)``."""
  return gain / math.sqrt(fan_in)


def pixel_norm(x: jax.Array, eps: float = 1e-8, axis: int = -1) -> jax.Array:
  """``x / sqrt(mean(x**2, channels) + eps)`` (PGGAN/StyleGAN PixelNorm, eps inside the sqrt)."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def lrelu(x: jax.Array, slope: float = 0.2) -> jax.Array:
  return jnp.where(x >= 0, x, x * slope)


def instance_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Per-sample, per-channel over H, W of NHWC: ``(x - mean) / sqrt(mean((x - mean)**2) + eps)``."""
  x = x - jnp.mean(x, axis=(1, 2), keepdims=True)
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=(1, 2), keepdims=True) + eps)


_DIMS = ("NHWC", "HWIO", "NHWC")


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding=0,
           feature_group_count: int = 1) -> jax.Array:
  """Cross-correlation as ``torch.nn.functional.conv2d`` computes it, in NHWC/HWIO.

  Args:
    x: ``[B, H, W, Cin]``.
    kernel: ``[kh, kw, Cin / groups, Cout]``.
    stride: spatial stride.
    padding: an int (symmetric zero padding) or ``((top, bottom), (left, right))``.
  """
  if isinstance(padding, int):
    padding = ((padding, padding), (padding, padding))
  if kernel.shape[:2] == (1, 1) and stride == 1 and feature_group_count == 1 and not any(
      any(p) for p in padding):
    # A 1×1 convolution is a matmul over channels; as a dot, XLA:CPU runs it (and its input
    # gradient) ~3× faster than as a convolution when Cout is small (toRGB: 256 → 3).
    return lax.dot_general(x, kernel[0, 0], (((x.ndim - 1,), (0,)), ((), ())))
  return lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=padding,
      dimension_numbers=_DIMS, feature_group_count=feature_group_count)


def conv_transpose2d_torch(x: jax.Array, kernel_hwio: jax.Array, stride: int = 2,
                           padding: int = 0) -> jax.Array:
  """``torch.nn.functional.conv_transpose2d`` with ``weight[i, o, h, w] = kernel_hwio[h, w, i, o]``.

  A transposed convolution is a convolution of the stride-dilated input with the
  spatially flipped kernel, padded by ``k - 1 - padding``.
  """
  kh, kw = kernel_hwio.shape[:2]
  flipped = kernel_hwio[::-1, ::-1]
  pad = ((kh - 1 - padding, kh - 1 - padding), (kw - 1 - padding, kw - 1 - padding))
  return lax.conv_general_dilated(
      x, flipped, window_strides=(1, 1), padding=pad, lhs_dilation=(stride, stride),
      dimension_numbers=_DIMS)


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling of NHWC by an integer factor (each pixel repeated)."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def to_nchw(x):
  """NHWC → NCHW (PyTorch's layout, used at the file boundary)."""
  return jnp.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def to_nhwc(x):
  """NCHW → NHWC."""
  return jnp.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x
