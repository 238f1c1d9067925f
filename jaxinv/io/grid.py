"""Image grids as PNG (NHWC float images in [-1, 1] → one uint8 picture)."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["to_uint8", "image_grid", "save_png"]


def to_uint8(x: np.ndarray) -> np.ndarray:
  """``[..., H, W, C]`` in [-1, 1] → uint8 ``clip((x + 1) · 127.5 + 0.5)`` (genforce postprocess)."""
  return np.clip((np.asarray(x, np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, ncol: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
  """``[B, H, W, C]`` float in [-1, 1] (or uint8) → ``[rows·(H+pad)+pad, ncol·(W+pad)+pad, C]`` uint8.

  Row-major; missing cells at the end stay ``pad_value``.
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = to_uint8(images)
  b, h, w, c = images.shape
  rows = -(-b // ncol)
  out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.uint8)
  for i in range(b):
    r, q = divmod(i, ncol)
    out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = \
        images[i]
  return out


def save_png(path, image: np.ndarray, scale: int = 1):
  """Writes a ``[H, W, C]`` uint8 image atomically (nearest-neighbour ``scale``-× enlarged)."""
  from PIL import Image
  from jaxinv.io.checkpoints import atomic_write_bytes
  image = np.asarray(image)
  if scale > 1:
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
  if image.shape[-1] == 1:
    image = image[..., 0]
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG")
  atomic_write_bytes(path, buf.getvalue())
