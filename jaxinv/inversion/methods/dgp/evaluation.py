"""DGP's image loading and evaluation (``get_img``, ``get_metrics``)."""

from __future__ import annotations

import numpy as np


def hole_begin_end(resolution: int) -> tuple[int, int]:
  """DGP's centre hole ``[b:e, b:e]``: ``hole = res // 3``, ``b = (res - hole) // 2``, ``e = res - b``."""
  b = (resolution - resolution // 3) // 2
  return b, resolution - b


def restore_l_channel(x01: np.ndarray, target01: np.ndarray) -> np.ndarray:
  """Colorization scoring: ``lab2rgb(L of rgb2lab(target), ab of rgb2lab(x))``, ``[H, W, 3]`` [0, 1]."""
  from skimage import color
  lab_t = color.rgb2lab(target01)
  lab_x = color.rgb2lab(x01)
  return color.lab2rgb(np.concatenate([lab_t[..., :1], lab_x[..., 1:]], axis=-1))


def metrics(x: np.ndarray, origin: np.ndarray, mode: str) -> dict:
  """DGP's ``get_metrics`` of one output ``x`` against the ground truth ``origin`` (``[H, W, 3]``, [-1, 1]).

  ``l1_loss_origin = mean|x - t| / 2`` and ``mse_loss_origin = mean((x - t)^2) / 4`` (the [0, 1]
  scale, full image); PSNR / SSIM on ``(x + 1)/2`` vs ``(t + 1)/2`` with the defaults DGP ran
  with (scikit-image <= 0.17): PSNR ``data_range = 1``, SSIM ``data_range = 2`` (the float
  dtype range), 7x7 box window, sample covariance, per-channel mean, float64. Colorization
  scores :func:`restore_l_channel` of the output; inpainting scores the hole crop only.
  """
  from jaxinv import metrics as M
  x = np.asarray(x, np.float32)
  t = np.asarray(origin, np.float32)
  out = {"l1_loss_origin": float(np.mean(np.abs(x - t))) / 2,
         "mse_loss_origin": float(np.mean(np.square(x - t))) / 4}
  x01 = (x + np.float32(1)) / np.float32(2)
  t01 = (t + np.float32(1)) / np.float32(2)
  if mode == "colorization":
    x01 = restore_l_channel(x01, t01)
  if mode == "inpainting":
    b, e = hole_begin_end(x.shape[0])
    x01, t01 = x01[b:e, b:e], t01[b:e, b:e]
  out["psnr"] = M.psnr(t01, x01, data_range=1.0)
  out["ssim"] = M.ssim_skimage(np.asarray(t01, np.float64), np.asarray(x01, np.float64),
                               data_range=2.0)
  return out


def load_image_uint8(path, resolution: int) -> np.ndarray:
  """DGP's ``get_img`` before normalisation: ``[res, res, 3]`` uint8.

  Centre crop to the short side (torchvision ``center_crop`` rounding), then torchvision
  ``Resize(res)`` = PIL bilinear.
  """
  from PIL import Image
  with Image.open(path) as im:
    im = im.convert("RGB")
    w, h = im.size
    s = min(w, h)
    top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
    im = im.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.BILINEAR)
    return np.asarray(im, np.uint8).copy()


def load_image(path, resolution: int) -> np.ndarray:
  """DGP's ``get_img``: ``[res, res, 3]`` float32 in [-1, 1] (``(u/255 - 0.5)/0.5``)."""
  u = load_image_uint8(path, resolution).astype(np.float32) / np.float32(255)
  return (u - np.float32(0.5)) / np.float32(0.5)
