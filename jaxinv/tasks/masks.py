"""Inpainting masks: reading mask files as mGANprior does, resizing, checking, DGP's centre hole."""

from __future__ import annotations

import pathlib
import warnings
from typing import Optional

import numpy as np

from jaxinv.ops.resize import resize_matrix

__all__ = ["load_mask", "resize_mask", "check_mask", "center_hole_mask"]


def resize_mask(mask: np.ndarray, resolution: int) -> np.ndarray:
  """Nearest resize of a ``[H, W, C]`` mask to ``[res, res, C]`` with PyTorch's legacy rule."""
  mh = resize_matrix(mask.shape[0], resolution, "nearest")
  mw = resize_matrix(mask.shape[1], resolution, "nearest")
  return np.einsum("oh,pw,hwc->opc", mh, mw, mask.astype(np.float64)).astype(np.float32)


def load_mask(path, resolution: Optional[int] = None) -> np.ndarray:
  """An inpainting mask file → float32 ``[H, W, 3]`` in [0, 1] (1 = missing), as mGANprior reads it.

  ``to_tensor(Image.open(png))[:3]``: RGB(A) keeps R, G, B (alpha dropped, soft edges stay
  fractional); grey-level, 1-bit, palette and 16-bit files are converted explicitly (the grey
  level repeated to 3 channels, 16-bit scaled by 1/65535). With ``resolution`` the mask is
  resized nearest (torch rule) to ``[res, res, 3]``. Refuses masks that hide nothing or everything.
  """
  from jaxinv.io.images import open_image
  path = pathlib.Path(path)
  try:
    with open_image(path) as im:
      im.load()
      mode = im.mode
      if mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, np.float64)
        a = (a / (65535.0 if a.max() > 255 or mode.startswith("I;16") else 255.0)).astype(np.float32)
        a = np.repeat(a[..., None], 3, axis=-1)
      else:
        if mode in ("RGBA", "RGB"):
          a = np.asarray(im, np.uint8)[..., :3]
        elif mode == "P":
          a = np.asarray(im.convert("RGB"), np.uint8)
        else:
          a = np.asarray(im.convert("L"), np.uint8)[..., None].repeat(3, axis=-1)
        a = a.astype(np.float32) / np.float32(255)
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read mask {path}: {e}") from None
  if mode not in ("RGB", "L", "1", "P"):
    warnings.warn(f"mask {path}: {mode} read as " + ("RGB, alpha dropped" if mode == "RGBA" else
                  "[0, 1] grey repeated to 3 channels"), stacklevel=2)
  if resolution is not None and a.shape[:2] != (resolution, resolution):
    warnings.warn(f"mask {path}: {a.shape[1]}x{a.shape[0]} resized (nearest) to "
                  f"{resolution}x{resolution}", stacklevel=2)
    a = resize_mask(a, resolution)
  check_mask(a, str(path))
  return a


def check_mask(mask: np.ndarray, name: str = "mask") -> None:
  """Refuse a mask with no missing pixel or no known pixel."""
  if not np.any(mask > 0):
    raise ValueError(f"{name}: mask is all zero (no missing pixel) — nothing to inpaint; "
                     "white (1) marks the missing pixels")
  if np.all(mask >= 1):
    raise ValueError(f"{name}: mask is all one (every pixel missing) — nothing is observed; "
                     "white (1) marks the missing pixels, black (0) the known ones")


def center_hole_mask(resolution: int, channels: int = 3) -> np.ndarray:
  """DGP's inpainting hole: ``[b:e, b:e]`` with ``hole = res//3``, ``b = (res − hole)//2``, ``e = res − b``."""
  hole = resolution // 3
  b = (resolution - hole) // 2
  e = resolution - b
  m = np.zeros((resolution, resolution, channels), np.float32)
  m[b:e, b:e] = 1.0
  return m
