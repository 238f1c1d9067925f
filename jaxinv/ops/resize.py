"""Resampling as PyTorch's ``F.interpolate`` computes it: one copy for the whole project.

Every mode is separable, so a resize is ``Mh @ x @ Mw^T`` over the H, W axes of ``[..., H, W, C]``
with the 1-D matrices of :func:`resize_matrix` (float64, built once per size); nearest is a gather
(:func:`resize_nearest`), exact whatever the values.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST
MODES = ("bilinear", "bicubic", "nearest", "area")


def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
  """Keys' cubic convolution weight at distance ``t`` (PyTorch's bicubic, a = -0.75)."""
  t = np.abs(t)
  return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                  np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def nearest_indices(n_in: int, n_out: int, scale: float | None = None) -> np.ndarray:
  """Source index of each output pixel under PyTorch's legacy ``nearest``:
  ``min(floor(dst · s), n_in − 1)`` with ``s = float32(n_in / n_out)`` (or the given scale, as
  torch uses ``1 / scale_factor``), computed in float32 as torch does."""
  s = np.float32(n_in) / np.float32(n_out) if scale is None else np.float32(scale)
  idx = np.floor(np.arange(n_out, dtype=np.float32) * s).astype(np.int64)
  return np.minimum(idx, n_in - 1)


@functools.lru_cache(maxsize=None)
def resize_matrix(n_in: int, n_out: int, mode: str, scale: float | None = None,
                  align_corners: bool = False) -> np.ndarray:
  """The ``[n_out, n_in]`` float64 matrix of a 1-D ``F.interpolate``.

  Args:
    mode: ``bilinear`` | ``bicubic`` | ``nearest`` | ``area``.
    scale: source pixels per output pixel as torch uses it (``1 / scale_factor`` when a scale
      factor is passed); default ``n_in / n_out`` (the ``size=`` form). Used by bilinear, bicubic
      and nearest without ``align_corners``.
    align_corners: bilinear / bicubic sample at ``dst · (n_in − 1) / (n_out − 1)``.
  """
  m = np.zeros((n_out, n_in), np.float64)
  dst = np.arange(n_out)
  if mode == "area":
    for i in range(n_out):
      s, e = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
      m[i, s:e] = 1.0 / (e - s)
    return m
  if mode == "nearest":
    m[dst, nearest_indices(n_in, n_out, scale)] = 1.0
    return m
  if mode not in MODES:
    raise ValueError(f"unknown resize mode {mode!r}; expected one of {', '.join(MODES)}")
  if align_corners:
    src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
  else:
    src = (dst + 0.5) * (n_in / n_out if scale is None else scale) - 0.5
  if mode == "bilinear":
    src = np.maximum(src, 0.0)
    i0 = np.floor(src).astype(np.int64)
    lam = src - i0
    i1 = np.minimum(i0 + 1, n_in - 1)
    i0 = np.minimum(i0, n_in - 1)
    np.add.at(m, (dst, i0), 1.0 - lam)
    np.add.at(m, (dst, i1), lam)
    return m
  i0 = np.floor(src).astype(np.int64)
  t = src - i0
  for k in range(-1, 3):
    np.add.at(m, (dst, np.clip(i0 + k, 0, n_in - 1)), _cubic(t - k))
  return m


def apply_axes(x: jax.Array, mh: np.ndarray, mw: np.ndarray) -> jax.Array:
  """``mh @ x @ mw.T`` over the H, W axes of ``[..., H, W, C]`` (float32 at highest precision)."""
  dt = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  x = jnp.einsum("oh,...hwc->...owc", jnp.asarray(mh, dt), x.astype(dt), precision=_HIGHEST)
  return jnp.einsum("pw,...owc->...opc", jnp.asarray(mw, dt), x, precision=_HIGHEST)


def resize(x: jax.Array, size, mode: str = "bilinear", align_corners: bool = False) -> jax.Array:
  """``F.interpolate(x, size=size, mode=mode, align_corners=…)`` on ``[..., H, W, C]``."""
  h, w = x.shape[-3], x.shape[-2]
  oh, ow = (size, size) if isinstance(size, int) else tuple(size)
  return apply_axes(x, resize_matrix(h, oh, mode, None, align_corners),
                    resize_matrix(w, ow, mode, None, align_corners))


def resize_nearest(x, size):
  """Legacy-``nearest`` resize of ``[..., H, W, C]`` (a selection: values are copied exactly)."""
  h, w = x.shape[-3], x.shape[-2]
  oh, ow = (size, size) if isinstance(size, int) else tuple(size)
  if (h, w) == (oh, ow):
    return x
  if isinstance(x, np.ndarray):
    return np.take(np.take(x, nearest_indices(h, oh), axis=-3), nearest_indices(w, ow), axis=-2)
  x = _nearest_along(x, nearest_indices(h, oh), axis=x.ndim - 3)
  return _nearest_along(x, nearest_indices(w, ow), axis=x.ndim - 2)


def _nearest_along(x: jax.Array, idx: np.ndarray, axis: int) -> jax.Array:
  # The same selection as jnp.take(x, idx, axis); whole-number scale factors become a repeat
  # (broadcast + reshape) or a strided slice, which vmap and autodiff keep free of gathers,
  # scatters and layout transposes.
  n_in, n_out = x.shape[axis], len(idx)
  if n_out % n_in == 0 and np.array_equal(idx, np.arange(n_out) // (n_out // n_in)):
    k = n_out // n_in
    shape = x.shape[:axis + 1] + (k,) + x.shape[axis + 1:]
    x = jnp.broadcast_to(jnp.expand_dims(x, axis + 1), shape)
    return x.reshape(x.shape[:axis] + (n_out,) + x.shape[axis + 2:])
  if n_in % n_out == 0 and np.array_equal(idx, np.arange(n_out) * (n_in // n_out)):
    return jax.lax.slice_in_dim(x, 0, n_in, n_in // n_out, axis)
  return jnp.take(x, idx, axis=axis)
