"""Differentiable degradations on NHWC images in [-1, 1] (last three axes ``[H, W, C]``, any leading axes).

Resampling is written as fixed per-axis interpolation matrices built in NumPy from the static
sizes, so the operators are linear, jit/vmap/grad-friendly and reproduce PyTorch's index rules
exactly:

- ``F.interpolate(mode="bilinear"|"bicubic", align_corners=False)`` without antialiasing:
  source coordinate ``(dst + 0.5)·scale − 0.5`` (bilinear clamps it at 0; bicubic uses Keys'
  kernel a = −0.75 with border-clamped taps),
- ``mode="nearest"``: the legacy asymmetric rule ``src = min(floor(dst·scale), in − 1)``,
- ``mode="area"`` (adaptive average pooling): mean over ``[floor(i·in/out), ceil((i+1)·in/out))``,
- DGP's ``Downsampler(kernel_type="lanczos2", phase=0.5, preserve_size=True)``: replication pad,
  then a stride-f correlation with the separable 4f-tap Lanczos-2 kernel.

References:
  Pan et al., "Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation", ECCV 2020 (Lanczos downsampler).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.ops import resize as ops_resize
from jaxinv.ops.resize import apply_axes, resize_matrix

__all__ = ["DOWNSAMPLE_MODES", "GRAY_WEIGHTS", "GRAY_WEIGHTS_DGP", "MIN_OBSERVATION", "to_gray",
           "resize_matrix", "resize", "check_factor", "downsample", "upsample", "lanczos_kernel",
           "lanczos_downsample", "apply_mask", "add_noise"]

DOWNSAMPLE_MODES = ("bilinear", "nearest", "area", "bicubic", "lanczos")

#: ITU-R 601 luma weights as mGANprior's ``Color_loss`` writes them (R, G, B).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
#: The same weights as DGP's ``pre_process`` writes them.
GRAY_WEIGHTS_DGP = (0.2989, 0.5870, 0.1140)


def to_gray(x: jax.Array, weights=GRAY_WEIGHTS) -> jax.Array:
  """Luma ``w_r·R + w_g·G + w_b·B`` repeated to 3 channels: ``[..., H, W, 3] → [..., H, W, 3]``.

  Linear, so it is the same on [0, 1] and [-1, 1] images (the weights sum to 1).
  """
  if x.shape[-1] != 3:
    raise ValueError(f"to_gray expects 3 channels last, got shape {x.shape}")
  g = x[..., 0:1] * weights[0] + x[..., 1:2] * weights[1] + x[..., 2:3] * weights[2]
  return jnp.concatenate([g, g, g], axis=-1)


# ----------------------------------------------------------------------------- resampling

def resize(x: jax.Array, size, mode: str = "bilinear") -> jax.Array:
  """``F.interpolate(x, size=size, mode=mode, align_corners=False)`` on ``[..., H, W, C]``."""
  return ops_resize.resize(x, size, mode)


#: Smallest observation side (px) a super-resolution task accepts.
MIN_OBSERVATION = 4


def check_factor(n: int, factor: int) -> None:
  if not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"factor must be a positive integer, got {factor!r}")
  if n % factor:
    raise ValueError(f"factor {factor} does not divide the image size {n}; "
                     f"pick a factor among {[f for f in range(2, n + 1) if n % f == 0][:8]}")


def downsample(x: jax.Array, factor: int, mode: str = "bilinear") -> jax.Array:
  """``F.interpolate(x, scale_factor=1/factor, mode=mode)`` (no antialias) on ``[..., H, W, C]``.

  ``mode="lanczos"`` is DGP's Lanczos-2 downsampler instead (:func:`lanczos_downsample`).
  Output ``[..., H/f, W/f, C]``; ``factor`` must divide H and W.
  """
  h, w = x.shape[-3], x.shape[-2]
  check_factor(h, factor)
  check_factor(w, factor)
  if mode == "lanczos":
    return lanczos_downsample(x, factor)
  if mode not in DOWNSAMPLE_MODES:
    raise ValueError(f"unknown downsample mode {mode!r}; expected one of {DOWNSAMPLE_MODES}")
  return apply_axes(x, resize_matrix(h, h // factor, mode, float(factor)),
                     resize_matrix(w, w // factor, mode, float(factor)))


def upsample(x: jax.Array, factor: int, mode: str = "bilinear") -> jax.Array:
  """``F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)`` on ``[..., H, W, C]``."""
  h, w = x.shape[-3], x.shape[-2]
  return apply_axes(x, resize_matrix(h, h * factor, mode, 1.0 / factor),
                     resize_matrix(w, w * factor, mode, 1.0 / factor))


@functools.lru_cache(maxsize=None)
def lanczos_kernel(factor: int) -> np.ndarray:
  """DGP's ``get_kernel(factor, "lanczos", phase=0.5, support=2)``: the ``[4f, 4f]`` float64 kernel.

  ``K[i, j] = k(d_i)·k(d_j)`` normalised to sum 1, with ``d_i = |i + 0.5 − (4f + 2)/2| / f`` for
  ``i = 1..4f`` and ``k(d) = 2 sin(πd) sin(πd/2) / (π² d²)`` (1 at d = 0).
  """
  n = 4 * factor
  center = (n + 1 + 1) / 2.0
  i = np.arange(1, n + 1, dtype=np.float64)
  d = np.abs(i + 0.5 - center) / factor
  with np.errstate(divide="ignore", invalid="ignore"):
    k = np.where(d == 0, 1.0, 2.0 * np.sin(np.pi * d) * np.sin(np.pi * d / 2) / (np.pi ** 2 * d ** 2))
  kk = np.outer(k, k)
  return kk / kk.sum()


@functools.lru_cache(maxsize=None)
def _lanczos_matrix(n: int, factor: int) -> np.ndarray:
  k2 = lanczos_kernel(factor)
  k1 = k2.sum(axis=1)  # the 2-D kernel is separable: K = k1 ⊗ k1 with k1 summing to 1
  taps = k1.size
  pad = (taps - factor) // 2
  m = np.zeros((n // factor, n), np.float64)
  for o in range(n // factor):
    for j in range(taps):
      m[o, min(max(o * factor + j - pad, 0), n - 1)] += k1[j]
  return m


def lanczos_downsample(x: jax.Array, factor: int) -> jax.Array:
  """DGP's ``Downsampler(3, factor, "lanczos2", phase=0.5, preserve_size=True)`` on [-1, 1] images.

  Runs on ``(x + 1)/2`` and maps back with ``·2 − 1`` as DGP does: replication padding by
  ``(4f − f)/2`` pixels, then a stride-f per-channel correlation with :func:`lanczos_kernel`.
  ``[..., H, W, C] → [..., H/f, W/f, C]``.
  """
  h, w = x.shape[-3], x.shape[-2]
  y = apply_axes((x + 1.0) / 2.0, _lanczos_matrix(h, factor), _lanczos_matrix(w, factor))
  return y * 2.0 - 1.0


# ----------------------------------------------------------------------------- masks, noise

def apply_mask(x: jax.Array, mask: jax.Array) -> jax.Array:
  """``x·(1 − mask)`` with ``mask = 1`` marking missing pixels (0 = mid-grey in [-1, 1])."""
  return x * (1.0 - mask)


def add_noise(x: jax.Array, sigma: float, key: jax.Array) -> jax.Array:
  """``x + sigma·N(0, 1)`` from an explicit key (the denoising observation)."""
  return x + sigma * jax.random.normal(key, x.shape, x.dtype)
