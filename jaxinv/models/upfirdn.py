"""upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample — NHWC.

The one resampling primitive of the style-based generators (StyleGAN2 up/down
FIR, rosinality ``Blur``/``Upsample``/``Downsample``, Swapping Autoencoder blur).
``upfirdn2d_ref`` is the readable reference; keep any faster variant beside it
and test that they agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["upfirdn2d", "upfirdn2d_ref", "upfirdn2d_fast", "make_kernel"]


def make_kernel(k) -> jnp.ndarray:
  """A 1-D tap list → the normalised 2-D separable kernel ``outer(k, k) / sum``; 2-D kept, normalised."""
  k = jnp.asarray(k, jnp.float32)
  if k.ndim == 1:
    k = k[None, :] * k[:, None]
  return k / jnp.sum(k)


def upfirdn2d_ref(x: jax.Array, kernel: jax.Array, up: int = 1, down: int = 1,
                  pad: tuple[int, int, int, int] = (0, 0, 0, 0), flip_kernel: bool = True
                  ) -> jax.Array:
  """Reference upfirdn2d on ``x [B, H, W, C]`` with a 2-D ``kernel [kh, kw]``.

  Args:
    up: zero-insertion upsampling factor (both axes).
    down: keep every ``down``-th sample after filtering.
    pad: ``(x0, x1, y0, y1)`` padding after upsampling (negative values crop),
      StyleGAN3's order; rosinality's ``pad=(p0, p1)`` is ``(p0, p1, p0, p1)``.
    flip_kernel: True computes a true convolution (the NVlabs and rosinality
      default); False a correlation.
  """
  b, h, w, c = x.shape
  if up > 1:
    x = x.reshape(b, h, 1, w, 1, c)
    x = jnp.pad(x, ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0)))
    x = x.reshape(b, h * up, w * up, c)
  x0, x1, y0, y1 = pad
  x = jnp.pad(x, ((0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0)), (0, 0)))
  x = x[:, max(-y0, 0):x.shape[1] - max(-y1, 0), max(-x0, 0):x.shape[2] - max(-x1, 0)]
  k = kernel[::-1, ::-1] if flip_kernel else kernel
  k = jnp.tile(k[:, :, None, None].astype(x.dtype), (1, 1, 1, c))
  x = lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               feature_group_count=c)
  if down > 1:
    x = x[:, ::down, ::down]
  return x


def upfirdn2d_fast(x: jax.Array, kernel: jax.Array, up: int = 1, down: int = 1,
                   pad: tuple[int, int, int, int] = (0, 0, 0, 0), flip_kernel: bool = True
                   ) -> jax.Array:
  """The same as :func:`upfirdn2d_ref` (same arguments) in two XLA ops.

  Zero insertion and the (possibly negative) padding are one ``lax.pad`` with
  interior padding; filtering and downsampling are one strided depthwise conv,
  so the discarded samples are never computed.
  """
  c = x.shape[-1]
  x0, x1, y0, y1 = pad
  cfg = [(0, 0, 0), (y0, y1 + up - 1, up - 1), (x0, x1 + up - 1, up - 1), (0, 0, 0)]
  x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
  k = kernel[::-1, ::-1] if flip_kernel else kernel
  k = jnp.tile(jnp.asarray(k, x.dtype)[:, :, None, None], (1, 1, 1, c))
  return lax.conv_general_dilated(x, k, (down, down), "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=c)


upfirdn2d = upfirdn2d_fast
