"""Image-quality metrics with their conventions stated: PSNR, SSIM (two conventions), LPIPS.

Images are ``[H, W]`` (grey) or ``[H, W, C]`` (channels last; colour SSIM is the mean of the
per-channel SSIMs, not SSIM of luminance). The data range ``R`` (max − min of the value
scale: 255 for uint8, 1.0 for [0, 1], 2.0 for [-1, 1]) is always an explicit argument —
it sets PSNR's peak and SSIM's constants ``C1 = (0.01 R)², C2 = (0.03 R)²``;
:func:`infer_data_range` reproduces scikit-image's inference where a caller wants it.

Each function accepts NumPy or JAX arrays. NumPy inputs follow scikit-image's dtypes
(uint8/float64 computed in float64, float32 in float32) and reproduce ``skimage.metrics``;
JAX inputs are computed with ``jnp`` in their float dtype (differentiable, jittable).

* :func:`psnr` — ``10·log10(R² / mean((a − b)²))`` over all pixels and channels.
* :func:`ssim` — Wang et al. (2004) as papers report it: 11-tap Gaussian window σ = 1.5
  (truncate 3.5), population covariance.
* :func:`ssim_skimage` — ``structural_similarity`` defaults (what DGP reports): 7×7 uniform
  window, sample covariance (``NP/(NP−1)``, NP = 49).
* :func:`lpips` — LPIPS v0.1 through a converted model (:mod:`jaxinv.models.lpips`).

Both SSIMs filter with scipy's ``mode="reflect"`` (half-sample symmetric) and average the map
cropped by ``(win − 1)//2`` on each side (so the padding never reaches the scalar).

References:
  Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility to
  Structural Similarity", IEEE TIP 2004.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = ["psnr", "mse", "ssim", "ssim_skimage", "structural_similarity", "infer_data_range",
           "gaussian_window", "lpips", "hole_box", "image_metrics"]


def _xp(*arrays):
  return np if all(isinstance(a, (np.ndarray, np.generic)) for a in arrays) else jnp


def _float_pair(a, b):
  xp = _xp(a, b)
  if xp is np:
    dt = np.float32 if (a.dtype == np.float32 and b.dtype == np.float32) else np.float64
    return np, np.asarray(a, dt), np.asarray(b, dt)
  dt = jnp.result_type(a, b)
  if not jnp.issubdtype(dt, jnp.floating):
    dt = jnp.float32
  return jnp, jnp.asarray(a, dt), jnp.asarray(b, dt)


def _check_pair(a, b, data_range):
  if a.shape != b.shape:
    raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
  if data_range is None or not data_range > 0:
    raise ValueError(f"data_range must be given and positive (255 for uint8, 1 for [0,1], "
                     f"2 for [-1,1]); got {data_range!r}")


def infer_data_range(image_true, for_psnr: bool = True) -> float:
  """scikit-image's inference: dtype range for integers; PSNR on floats: 1 if min ≥ 0 else 2.

  SSIM (``for_psnr=False``) on floats uses the float dtype range (−1, 1), i.e. 2 — which is what
  DGP's skimage ≤ 0.17 call did (scikit-image ≥ 0.19 refuses floats without a data range).
  """
  dt = np.asarray(image_true).dtype
  if np.issubdtype(dt, np.integer):
    info = np.iinfo(dt)
    return float(info.max - info.min)
  if for_psnr:
    return 1.0 if float(np.min(image_true)) >= 0 else 2.0
  return 2.0


def mse(a, b):
  """``mean((a − b)²)`` (float64 accumulation for NumPy input, as skimage)."""
  xp, a, b = _float_pair(a, b)
  if xp is np:
    return float(np.mean(np.square(a - b), dtype=np.float64))
  return jnp.mean(jnp.square(a - b))


def psnr(a, b, data_range: float):
  """PSNR in dB: ``10·log10(data_range² / mse(a, b))`` (mean over every pixel and channel)."""
  _check_pair(a, b, data_range)
  err = mse(a, b)
  if isinstance(err, float):
    return math.inf if err == 0 else 10.0 * math.log10(data_range ** 2 / err)
  return 10.0 * jnp.log10(data_range ** 2 / err)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
  """scipy ``gaussian_filter``'s normalised 1-D kernel (radius ``int(truncate·σ + 0.5)``)."""
  r = int(truncate * sigma + 0.5)
  x = np.arange(-r, r + 1, dtype=np.float64)
  w = np.exp(-0.5 * x * x / (sigma * sigma))
  return w / w.sum()


def _filter(xp, x, w):
  """Separable correlation of ``[H, W, C]`` with ``w`` along H and W, scipy ``mode="reflect"``."""
  r = (len(w) - 1) // 2
  h, wd = x.shape[0], x.shape[1]
  xpad = xp.pad(x, ((r, r), (0, 0), (0, 0)), mode="symmetric")
  y = sum(float(w[k]) * xpad[k:k + h] for k in range(len(w)))
  ypad = xp.pad(y, ((0, 0), (r, r), (0, 0)), mode="symmetric")
  return sum(float(w[k]) * ypad[:, k:k + wd] for k in range(len(w)))


def structural_similarity(a, b, data_range: float, *, gaussian: bool, sigma: float = 1.5,
                          win_size: int | None = None, sample_covariance: bool,
                          k1: float = 0.01, k2: float = 0.03, full: bool = False):
  """SSIM of ``[H, W]`` or ``[H, W, C]`` images, every convention explicit.

  Args:
    a, b: images of one shape (channels last).
    data_range: value range R (sets ``C1 = (k1·R)², C2 = (k2·R)²``).
    gaussian: Gaussian window of ``sigma`` (truncate 3.5 → 11 taps at σ 1.5) instead of a box.
    win_size: box window side (default 7; for ``gaussian`` it is ``2·int(3.5σ + 0.5) + 1``).
    sample_covariance: scale (co)variances by ``NP/(NP − 1)``, ``NP = win_size²``.
    full: also return the uncropped per-pixel map (``[H, W]`` / ``[H, W, C]``).
  Returns:
    The mean over channels of the mean of the map cropped by ``(win − 1)//2``
    (and the map when ``full``).
  """
  _check_pair(a, b, data_range)
  xp, a, b = _float_pair(a, b)
  gray = a.ndim == 2
  if gray:
    a, b = a[..., None], b[..., None]
  if gaussian:
    w = gaussian_window(sigma)
    win = len(w)
  else:
    win = 7 if win_size is None else int(win_size)
    if win % 2 == 0 or win < 3:
      raise ValueError(f"win_size must be odd and ≥ 3; got {win}")
    w = np.full((win,), 1.0 / win)
  if min(a.shape[0], a.shape[1]) < win:
    raise ValueError(f"image {a.shape[:2]} is smaller than the {win}×{win} SSIM window")
  dt = a.dtype
  w = np.asarray(w, dt)
  cov_norm = win * win / (win * win - 1.0) if sample_covariance else 1.0
  ux, uy = _filter(xp, a, w), _filter(xp, b, w)
  uxx, uyy, uxy = _filter(xp, a * a, w), _filter(xp, b * b, w), _filter(xp, a * b, w)
  vx = cov_norm * (uxx - ux * ux)
  vy = cov_norm * (uyy - uy * uy)
  vxy = cov_norm * (uxy - ux * uy)
  c1 = (k1 * data_range) ** 2
  c2 = (k2 * data_range) ** 2
  s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
  pad = (win - 1) // 2
  crop = s[pad:s.shape[0] - pad, pad:s.shape[1] - pad]
  per_channel = crop.astype(np.float64).mean(axis=(0, 1)) if xp is np else crop.mean(axis=(0, 1))
  value = per_channel.mean()
  value = float(value) if xp is np else value
  if full:
    return value, (s[..., 0] if gray else s)
  return value


def ssim(a, b, data_range: float, full: bool = False):
  """SSIM as Wang et al. define it: Gaussian window σ = 1.5 (11 taps), population covariance."""
  return structural_similarity(a, b, data_range, gaussian=True, sigma=1.5, sample_covariance=False,
                               full=full)


def ssim_skimage(a, b, data_range: float, win_size: int = 7, full: bool = False):
  """SSIM with scikit-image's defaults (DGP's numbers): 7×7 box, sample covariance."""
  return structural_similarity(a, b, data_range, gaussian=False, win_size=win_size,
                               sample_covariance=True, full=full)


def lpips(model, x, y, spatial: bool = False):
  """LPIPS v0.1 distance(s) with a converted ``lpips`` model (``registry.load_model(dir)``).

  ``x, y``: ``[H, W, 3]`` or ``[B, H, W, 3]`` in [-1, 1]. One value per pair (no batch mean).
  """
  from jaxinv.models.lpips import lpips_distance
  return lpips_distance(model.params, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32),
                        net=model.config["net"], spatial=spatial)


def hole_box(mask: np.ndarray) -> tuple[int, int, int, int]:
  """``(top, bottom, left, right)`` of the bounding box of the missing pixels (mask > 0.5)."""
  m = np.asarray(mask)
  if m.ndim == 3:
    m = m.max(axis=-1)
  rows, cols = np.nonzero(m > 0.5)
  if rows.size == 0:
    raise ValueError("mask has no missing pixel (values > 0.5 mark the hole)")
  return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def image_metrics(pred, gt, mask=None, lpips_model=None, data_range: float = 255.0) -> dict:
  """PSNR, SSIM (Wang), SSIM (skimage defaults) and optionally LPIPS of one ``[H, W, 3]`` pair.

  Args:
    pred, gt: uint8 ``[H, W, 3]`` images (``data_range`` 255), or floats with their range given.
    mask: optional ``[H, W]`` / ``[H, W, C]`` inpainting mask (1 = missing). Then every metric is
      on the hole only, as DGP evaluates: PSNR over the missing pixels, SSIM and LPIPS over the
      hole's bounding box (for DGP's rectangular hole both are its ``[b:e, b:e]`` crop).
    lpips_model: a loaded ``lpips`` model; inputs are mapped to [-1, 1] by ``2·x/R − 1``.
  Returns:
    ``{"psnr", "ssim", "ssim_skimage"[, "lpips"]}`` as Python floats.
  """
  pred, gt = np.asarray(pred), np.asarray(gt)
  _check_pair(pred, gt, data_range)
  if mask is not None:
    t, b, l, r = hole_box(mask)
    m = np.asarray(mask)
    m = (m.max(axis=-1) if m.ndim == 3 else m) > 0.5
    diff = pred[m].astype(np.float64) - gt[m].astype(np.float64)
    err = float(np.mean(np.square(diff)))
    out = {"psnr": math.inf if err == 0 else 10.0 * math.log10(data_range ** 2 / err)}
    pred_c, gt_c = pred[t:b, l:r], gt[t:b, l:r]
  else:
    out = {"psnr": psnr(pred, gt, data_range)}
    pred_c, gt_c = pred, gt
  out["ssim"] = ssim(pred_c, gt_c, data_range)
  out["ssim_skimage"] = ssim_skimage(pred_c, gt_c, data_range)
  if lpips_model is not None:
    lo = min(pred_c.shape[:2])
    if lo < 32:
      raise ValueError(f"LPIPS needs at least 32×32 pixels; the region is {pred_c.shape[1]}×{pred_c.shape[0]}")
    to_pm1 = lambda a: np.asarray(a, np.float32) / np.float32(data_range) * 2 - 1
    out["lpips"] = float(lpips(lpips_model, to_pm1(pred_c), to_pm1(gt_c)))
  return out
