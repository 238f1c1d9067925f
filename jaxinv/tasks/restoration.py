"""Post-processing of restoration outputs: colour from the output, luminance from the target."""

from __future__ import annotations

import numpy as np

__all__ = ["colorize_restore01", "dgp_colorization_restore"]


def _trunc_u8(x01: np.ndarray) -> np.ndarray:
  """``to_pil_image`` of a float tensor: ``(x·255).byte()`` (truncation), clipped first."""
  return np.clip(np.asarray(x01, np.float32) * np.float32(255), 0, 255).astype(np.uint8)


def colorize_restore01(output01: np.ndarray, target01: np.ndarray) -> np.ndarray:
  """mGANprior's colorization output: Y of the target with Cb, Cr of the output (PIL, uint8).

  Args:
    output01, target01: ``[H, W, 3]`` or ``[B, H, W, 3]`` float in [0, 1].
  Returns:
    uint8 ``[..., H, W, 3]``: both truncated to uint8, converted with PIL's YCbCr matrices,
    ``merge(Y_target, Cb_output, Cr_output)`` and converted back to RGB.
  """
  o, t = _trunc_u8(output01), _trunc_u8(target01)
  if o.ndim == 4:
    return np.stack([_merge_ycbcr(a, b) for a, b in zip(o, t)])
  return _merge_ycbcr(o, t)


def _merge_ycbcr(o: np.ndarray, t: np.ndarray) -> np.ndarray:
  from PIL import Image
  y = Image.fromarray(t, "RGB").convert("YCbCr").split()[0]
  _, cb, cr = Image.fromarray(o, "RGB").convert("YCbCr").split()
  return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"), np.uint8)


def dgp_colorization_restore(x: np.ndarray, target: np.ndarray) -> np.ndarray:
  """DGP's colorization result for metrics: L of the target with a, b of ``x`` (CIE Lab, skimage).

  ``x, target``: ``[H, W, 3]`` float in [-1, 1]; returns ``lab2rgb([L_t, a_x, b_x])·2 − 1``.
  Needs scikit-image (imported here only).
  """
  from skimage import color
  lt = color.rgb2lab((np.asarray(target, np.float64) + 1) / 2)
  lx = color.rgb2lab((np.asarray(x, np.float64) + 1) / 2)
  return color.lab2rgb(np.concatenate([lt[..., :1], lx[..., 1:]], axis=-1)) * 2 - 1
