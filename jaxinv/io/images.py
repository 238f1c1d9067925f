"""Reading and writing images: the one place that decides pixel conventions.

Loader conventions are named (``LOADERS``) so that each method's preprocessing
is an explicit, documented choice:

* ``"mganprior"`` (default): PIL ``convert("RGB")`` → bicubic resize to the model
  resolution when the size differs → ``uint8 / 255`` → ``(x - 0.5) · 2``
  (float32, in that order), as mGANprior's scripts.
* ``"psp"``: PIL ``convert("RGB")`` → PIL bilinear resize → ``uint8 / 255 · 2 − 1``, as
  pSp/e4e's ``transform_test`` (``Resize``, ``ToTensor``, ``Normalize(0.5, 0.5)``).
* ``"pti"``: PIL ``convert("RGB")`` → PIL Lanczos resize (PTI's alignment) → ``uint8 / 255 · 2 − 1``.
* ``"idinvert"``: decode to RGB (as ``cv2.imread`` + BGR→RGB) → OpenCV's
  ``cv2.resize`` bilinear (``INTER_LINEAR``: half-pixel centres, no antialiasing
  when shrinking, 8-bit fixed point; bit-exact, :mod:`jaxinv.io.cv2_resize`) to the
  model resolution when the size differs → ``uint8 / 255 · 2 − 1`` (float32), as
  IDInvert's ``invert.py`` + ``StyleGANInverter.preprocess``.

Wherever a path is taken, a prepared TFDS dataset may stand instead
(``tfds:NAME?split=SPLIT``, one example ``…#INDEX``; :mod:`jaxinv.io.datasets`), and
goes through the same loader conventions.

Images in memory are NHWC float32 in [-1, 1]. Saving uses genforce's
``postprocess``: ``uint8 = clip((x + 1) · 127.5 + 0.5, 0, 255)`` truncated.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from typing import Callable, Sequence

import numpy as np

from jaxinv.io import datasets
from jaxinv.io.errors import InputFileError

__all__ = ["ImageError", "IMAGE_EXTENSIONS", "load_rgb_uint8", "load_resized_uint8", "load_image",
           "load_images", "load_psp_uint8", "load_pti_uint8", "load_padinv_uint8",
           "to_uint8", "save_png", "list_images", "image_stem", "LOADERS", "uint8_to_tanh",
           "make_grid", "image_grid"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImageError(InputFileError):
  """An image file cannot be used (unreadable, empty, wrong kind)."""


# Decoding limit: an image whose header declares more pixels than this is refused before its
# pixels are decoded (a decompression bomb, or far larger than any model resolution).
MAX_IMAGE_PIXELS = 8192 * 8192

_CONVERSION_NOTES = {
    "RGBA": "RGBA: alpha channel dropped", "LA": "grey+alpha: alpha dropped, grey repeated to RGB",
    "PA": "palette+alpha: alpha dropped", "I;16": "16-bit grey: scaled to 8 bits, repeated to RGB",
    "I;16B": "16-bit grey: scaled to 8 bits, repeated to RGB",
    "I;16L": "16-bit grey: scaled to 8 bits, repeated to RGB",
    "I": "32-bit integer grey: scaled to 8 bits, repeated to RGB",
    "F": "float grey: clipped to 0-255, repeated to RGB", "CMYK": "CMYK: converted to RGB",
}


def _to_rgb(img, path):
  """Explicit conversions to 8-bit RGB (RGBA drops alpha, palette expands, 16-bit rescales).

  Conversions that lose information (alpha, bit depth, colour model) are announced with a
  warning naming the file.
  """
  from PIL import Image
  mode = img.mode
  if mode == "RGB":
    return img
  if mode in _CONVERSION_NOTES:
    warnings.warn(f"{path}: {_CONVERSION_NOTES[mode]}", stacklevel=3)
  if mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(img, dtype=np.float64)
    hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
    arr = np.clip(np.floor(arr / hi * 255.0 + 0.5), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "L").convert("RGB")
  if mode in ("RGBA", "LA", "P", "PA", "L", "1", "CMYK", "YCbCr", "LAB", "HSV", "F", "RGBX"):
    if mode == "F":
      arr = np.clip(np.asarray(img, np.float64), 0, 255).astype(np.uint8)
      return Image.fromarray(arr, "L").convert("RGB")
    return img.convert("RGB")
  raise ImageError(f"{path}: unsupported image mode {mode}")


def open_image(path):
  """``PIL.Image.open`` (header only) that refuses, as :class:`ImageError`, a declared size over
  :data:`MAX_IMAGE_PIXELS` before any pixel is decoded."""
  from PIL import Image
  try:
    img = Image.open(path)
  except Image.DecompressionBombError as e:
    raise ImageError(f"{path}: declares too many pixels to decode safely ({e}); resize it "
                     "first") from None
  w, h = img.size
  if w * h > MAX_IMAGE_PIXELS:
    img.close()
    raise ImageError(f"{path}: declares {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS} this "
                     "tool decodes; resize it first")
  return img


def load_rgb_uint8(path: str | os.PathLike) -> np.ndarray:
  """Decodes a file (or TFDS example) to ``[H, W, 3]`` uint8 RGB, or raises :class:`ImageError` naming it."""
  from PIL import UnidentifiedImageError
  path = os.fspath(path)
  if datasets.is_tfds(path):
    try:
      return datasets.read_uint8(path)
    except datasets.DatasetError as e:
      raise ImageError(str(e)) from None
  if not os.path.isfile(path):
    raise ImageError(f"{path}: no such file")
  if os.path.getsize(path) == 0:
    raise ImageError(f"{path}: empty file")
  try:
    with open_image(path) as img:
      img.load()
      rgb = _to_rgb(img, path)
      return np.asarray(rgb, dtype=np.uint8).copy()
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    if isinstance(e, ImageError):
      raise
    raise ImageError(f"{path}: not a readable image ({e})") from None


def uint8_to_tanh(u8: np.ndarray) -> np.ndarray:
  """``(u8 / 255 - 0.5) · 2`` in float32, evaluated in that order (bit-equal to the official)."""
  x = u8.astype(np.float32) / np.float32(255.0)
  return (x - np.float32(0.5)) * np.float32(2.0)


def load_resized_uint8(path, resolution: int | None, warn: bool = False) -> np.ndarray:
  """``[R, R, 3]`` uint8: RGB, PIL bicubic resize when the size differs (mGANprior, SAE)."""
  from PIL import Image
  u8 = load_rgb_uint8(path)
  if resolution is not None and u8.shape[:2] != (resolution, resolution):
    if warn:
      warnings.warn(f"{path}: {u8.shape[1]}x{u8.shape[0]} resized (bicubic) to the model's "
                    f"{resolution}x{resolution}", stacklevel=4)
    u8 = np.asarray(Image.fromarray(u8).resize((resolution, resolution), Image.BICUBIC))
  return u8


def _load_mganprior(path, resolution: int | None) -> np.ndarray:
  return uint8_to_tanh(load_resized_uint8(path, resolution, warn=True))


def load_idinvert_uint8(path, resolution: int | None) -> np.ndarray:
  """``[R, R, 3]`` uint8 as IDInvert has it before scaling: RGB, ``cv2.resize`` bilinear."""
  from jaxinv.io.cv2_resize import resize_linear_u8
  u8 = load_rgb_uint8(path)
  if resolution is not None and u8.shape[:2] != (resolution, resolution):
    u8 = resize_linear_u8(u8, (resolution, resolution))
  return u8


def _load_idinvert(path, resolution: int | None) -> np.ndarray:
  u8 = load_idinvert_uint8(path, resolution)
  return (u8.astype(np.float32) / np.float32(255.0)) * np.float32(2.0) - np.float32(1.0)


def load_psp_uint8(path, resolution: int | None) -> np.ndarray:
  """``[R, R, 3]`` uint8 as pSp/e4e's inference transform has it: RGB (alpha dropped), then
  PIL bilinear resize (antialiased when shrinking) to ``R`` (torchvision ``Resize((R, R))``)."""
  from PIL import Image
  u8 = load_rgb_uint8(path)
  if resolution is not None and u8.shape[:2] != (resolution, resolution):
    u8 = np.asarray(Image.fromarray(u8).resize((resolution, resolution), Image.BILINEAR))
  return u8


def _load_psp(path, resolution: int | None) -> np.ndarray:
  return uint8_to_tanh(load_psp_uint8(path, resolution))


def load_pti_uint8(path, resolution: int | None) -> np.ndarray:
  """``[R, R, 3]`` uint8 as PTI's alignment leaves it: RGB, PIL Lanczos resize to ``R``."""
  from PIL import Image
  u8 = load_rgb_uint8(path)
  if resolution is not None and u8.shape[:2] != (resolution, resolution):
    u8 = np.asarray(Image.fromarray(u8).resize((resolution, resolution), Image.LANCZOS))
  return u8


def _load_pti(path, resolution: int | None) -> np.ndarray:
  return uint8_to_tanh(load_pti_uint8(path, resolution))


def load_padinv_uint8(path, resolution: int | None) -> np.ndarray:
  """``[R, R, 3]`` uint8 as PadInv reads images: RGB, centre square crop, area resize to ``R``.

  (OpenCV INTER_AREA is a box average for integer factors; PIL's BOX resize is used.)
  """
  from PIL import Image
  u8 = load_rgb_uint8(path)
  h, w = u8.shape[:2]
  s = min(h, w)
  u8 = u8[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
  if resolution is not None and s != resolution:
    u8 = np.asarray(Image.fromarray(u8).resize((resolution, resolution), Image.BOX))
  return u8


def _load_padinv(path, resolution: int | None) -> np.ndarray:
  return load_padinv_uint8(path, resolution).astype(np.float32) / 255 * 2.0 + (-1.0)


LOADERS: dict[str, Callable[[str, int | None], np.ndarray]] = {
    "mganprior": _load_mganprior,
    "idinvert": _load_idinvert,
    "psp": _load_psp,
    "pti": _load_pti,
    "padinv": _load_padinv,
}


def load_image(path, resolution: int | None = None, loader: str = "mganprior") -> np.ndarray:
  """One image as ``[H, W, 3]`` float32 in [-1, 1] by the named loader convention."""
  if loader not in LOADERS:
    raise ValueError(f"unknown loader {loader!r}; known: {', '.join(LOADERS)}")
  return LOADERS[loader](os.fspath(path), resolution)


def load_images(paths: Sequence, resolution: int | None = None, loader: str = "mganprior"
                ) -> np.ndarray:
  """Several images as ``[B, H, W, 3]`` (all checked before any is returned)."""
  return np.stack([load_image(p, resolution, loader) for p in paths])


def list_images(paths: Sequence[str | os.PathLike], limit: int | None = None,
                recursive: bool = False) -> list[str]:
  """Expands folders into their image files (sorted; with ``recursive``, those of every
  subfolder too) and TFDS splits into their examples (in order); files are kept as given.
  ``limit`` keeps the first ``limit`` of the whole list."""
  out = []
  for p in paths:
    if limit and len(out) >= limit:
      break
    p = os.fspath(p)
    if datasets.is_tfds(p):
      try:
        out.extend(datasets.list_examples(p, limit and limit - len(out)))
      except datasets.DatasetError as e:
        raise ImageError(str(e)) from None
    elif os.path.isdir(p):
      if recursive:
        found = sorted(os.path.join(d, f) for d, _, files in os.walk(p) for f in files
                       if f.lower().endswith(IMAGE_EXTENSIONS))
      else:
        found = sorted(os.path.join(p, f) for f in os.listdir(p)
                       if f.lower().endswith(IMAGE_EXTENSIONS))
      if not found:
        raise ImageError(f"{p}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
      out.extend(found)
    else:
      out.append(p)
  if not out:
    raise ImageError("no images given")
  return out[:limit] if limit else out


def image_stem(path: str) -> str:
  """The name outputs take from an input: the file stem, or ``NAME-SPLIT-INDEX`` for TFDS."""
  if datasets.is_tfds(path):
    return datasets.stem(path)
  return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def to_uint8(x: np.ndarray) -> np.ndarray:
  """``[-1, 1]`` float → uint8 as genforce's ``postprocess`` (clip, +0.5, truncate)."""
  x = np.asarray(x, np.float32)
  return np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def save_png(path, image: np.ndarray, scale: int = 1):
  """Writes ``[H, W, 3]`` (float in [-1, 1], or uint8) atomically as PNG, nearest-neighbour
  enlarged ``scale`` times."""
  from PIL import Image
  from jaxinv.io.checkpoints import atomic_write_bytes
  image = np.asarray(image)
  arr = image if image.dtype == np.uint8 else to_uint8(image)
  if scale > 1:
    arr = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
  if arr.ndim == 3 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="PNG")
  atomic_write_bytes(path, buf.getvalue())


def make_grid(rows: Sequence[Sequence[np.ndarray | None]], pad: int = 2) -> np.ndarray:
  """Tiles ``rows[r][c]`` images (``[H, W, 3]``, float [-1,1] or uint8; None = blank) into one
  uint8 grid on white."""
  tiles = [[t if t is None or t.dtype == np.uint8 else to_uint8(t) for t in row] for row in rows]
  h = max(t.shape[0] for row in tiles for t in row if t is not None)
  w = max(t.shape[1] for row in tiles for t in row if t is not None)
  ncol = max(len(r) for r in tiles)
  grid = np.full((len(tiles) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
  for i, row in enumerate(tiles):
    for j, t in enumerate(row):
      if t is None:
        continue
      if t.ndim == 2:
        t = np.repeat(t[..., None], 3, -1)
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      grid[y:y + t.shape[0], x:x + t.shape[1]] = t[..., :3]
  return grid


def image_grid(images: np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
  """``[B, H, W, 3]`` (float [-1, 1] or uint8) → a row-major grid of ``ncol`` columns."""
  images = np.asarray(images)
  return make_grid([list(images[i:i + ncol]) for i in range(0, len(images), ncol)], pad)


@dataclasses.dataclass(frozen=True)
class GridLayout:
  """Where :func:`labeled_grid` put things: cell ``(r, c)`` spans rows ``top(r) … top(r) + cell``
  and columns ``left(c) … left(c) + cell`` of the picture, each input pixel ``scale`` × ``scale``."""
  cell: int
  scale: int
  origin: tuple          # (y, x) of cell (0, 0)
  pitch: tuple           # (dy, dx) from one cell to the next
  row_labels: tuple
  col_labels: tuple
  captions: tuple        # per row, per column ('' = none)

  def top(self, r: int) -> int:
    return self.origin[0] + r * self.pitch[0]

  def left(self, c: int) -> int:
    return self.origin[1] + c * self.pitch[1]


def labeled_grid(rows: Sequence[Sequence[np.ndarray | None]], row_labels: Sequence[str],
                 col_labels: Sequence[str], captions: Sequence[Sequence[str]] | None = None,
                 min_cell: int = 96, pad: int = 6, font_size: int = 12):
  """Tiles ``rows[r][c]`` (``[H, W, 3]`` float [-1, 1] or uint8; None = blank) into a picture that
  explains itself: column labels on top, row labels on the left, an optional caption (e.g. PSNR)
  under each cell; small images are enlarged by an integer factor (nearest) to at least
  ``min_cell`` pixels. Returns ``(uint8 [H, W, 3], GridLayout)``."""
  from PIL import Image, ImageDraw, ImageFont
  tiles = [[t if t is None or t.dtype == np.uint8 else to_uint8(t) for t in row] for row in rows]
  side = max(max(t.shape[0], t.shape[1]) for row in tiles for t in row if t is not None)
  scale = max(1, -(-min_cell // side))
  cell = side * scale
  ncol = max(len(r) for r in tiles)
  if len(row_labels) != len(tiles) or len(col_labels) != ncol:
    raise ValueError(f"labeled_grid: {len(tiles)}x{ncol} cells but {len(row_labels)} row labels "
                     f"and {len(col_labels)} column labels")
  captions = [list(c) + [""] * (ncol - len(c)) for c in captions] if captions else [[""] * ncol] * len(tiles)
  font = ImageFont.load_default(size=font_size)
  probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  text_w = lambda s: probe.textbbox((0, 0), s, font=font)[2] if s else 0
  line = font_size + 4
  col_w = max([cell] + [text_w(s) for s in col_labels] + [text_w(s) for row in captions for s in row])
  left = max(text_w(s) for s in row_labels) + 2 * pad
  caption_h = line if any(s for row in captions for s in row) else 0
  origin = (line + pad, left)
  pitch = (cell + caption_h + pad, col_w + pad)
  height = origin[0] + len(tiles) * pitch[0]
  width = origin[1] + ncol * pitch[1]
  canvas = Image.new("RGB", (width, height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for c, s in enumerate(col_labels):
    draw.text((origin[1] + c * pitch[1], pad // 2), s, fill=(0, 0, 0), font=font)
  for r, row in enumerate(tiles):
    y = origin[0] + r * pitch[0]
    draw.text((pad, y + cell // 2 - line // 2), row_labels[r], fill=(0, 0, 0), font=font)
    for c, t in enumerate(row):
      x = origin[1] + c * pitch[1]
      if t is not None:
        t = np.repeat(t[..., None], 3, -1) if t.ndim == 2 else t[..., :3]
        big = np.repeat(np.repeat(t, scale, axis=0), scale, axis=1)
        canvas.paste(Image.fromarray(big), (x, y))
      if captions[r][c]:
        draw.text((x, y + cell + 2), captions[r][c], fill=(0, 0, 0), font=font)
  layout = GridLayout(cell=cell, scale=scale, origin=origin, pitch=pitch,
                      row_labels=tuple(row_labels), col_labels=tuple(col_labels),
                      captions=tuple(tuple(c) for c in captions))
  return np.asarray(canvas), layout
