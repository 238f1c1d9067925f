"""Image-restoration tasks: pure, differentiable degradations and their observation/restore rules.

Every operator works on NHWC images in [-1, 1] whose last three axes are ``[H, W, C]``; any
leading axes (none for one image, ``[B]`` for a batch) pass through unchanged. Resampling is
written as fixed per-axis interpolation matrices built in NumPy from the static sizes, so the
operators are linear, jit/vmap/grad-friendly and reproduce PyTorch's index rules exactly:

- ``F.interpolate(mode="bilinear"|"bicubic", align_corners=False)`` without antialiasing:
  source coordinate ``(dst + 0.5)·scale − 0.5`` (bilinear clamps it at 0; bicubic uses Keys'
  kernel a = −0.75 with border-clamped taps),
- ``mode="nearest"``: the legacy asymmetric rule ``src = min(floor(dst·scale), in − 1)``,
- ``mode="area"`` (adaptive average pooling): mean over ``[floor(i·in/out), ceil((i+1)·in/out))``,
- DGP's ``Downsampler(kernel_type="lanczos2", phase=0.5, preserve_size=True)``: replication pad,
  then a stride-f correlation with the separable 4f-tap Lanczos-2 kernel.

A :class:`Task` bundles what an inversion needs: ``degrade`` (applied to the generator output
inside the loss: loss = base(degrade(G(v)), observation)), ``observe`` (what the tool makes from
ground truth, as the official scripts do) and ``restore`` (the post-processing of the output).

References:
  Gu et al., "Image Processing Using Multi-Code GAN Prior", CVPR 2020 (tasks, §4).
  Pan et al., "Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation", ECCV 2020 (Lanczos downsampler, centre-hole inpainting).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import warnings
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.ops import resize as ops_resize
from jaxinv.ops.resize import apply_axes, resize_matrix

__all__ = [
    "TASKS", "DOWNSAMPLE_MODES", "GRAY_WEIGHTS", "GRAY_WEIGHTS_DGP",
    "to_gray", "resize_matrix", "resize", "downsample", "upsample", "lanczos_kernel",
    "lanczos_downsample", "apply_mask", "load_mask", "resize_mask", "add_noise",
    "center_hole_mask", "check_mask", "colorize_restore01", "dgp_sr_target", "dgp_degrade",
    "dgp_colorization_restore", "boundary_frames", "Task", "make_task",
]

TASKS = ("reconstruct", "colorize", "super-resolve", "inpaint", "denoise")
DOWNSAMPLE_MODES = ("bilinear", "nearest", "area", "bicubic", "lanczos")

#: ITU-R 601 luma weights as mGANprior's ``Color_loss`` writes them (R, G, B).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
#: The same weights as DGP's ``pre_process`` writes them.
GRAY_WEIGHTS_DGP = (0.2989, 0.5870, 0.1140)



# ----------------------------------------------------------------------------- grayscale

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


def _check_factor(n: int, factor: int) -> None:
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
  _check_factor(h, factor)
  _check_factor(w, factor)
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


def add_noise(x: jax.Array, sigma: float, key: jax.Array) -> jax.Array:
  """``x + sigma·N(0, 1)`` from an explicit key (the denoising observation)."""
  return x + sigma * jax.random.normal(key, x.shape, x.dtype)


# ----------------------------------------------------------------------------- restore / DGP target

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


def dgp_sr_target(x: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
  """DGP's observed-image path for SR (not differentiable): returns ``(lr_uint8, upsampled)``.

  ``u = floor(clip((x+1)/2·255, 0, 255))`` in float32, PIL ``resize((W/f, H/f), LANCZOS)``,
  then ``lr/255·2 − 1`` bilinearly upsampled ×f. ``x``: ``[H, W, 3]`` float32 in [-1, 1].
  """
  from PIL import Image
  x = np.asarray(x, np.float32)
  u = np.floor(np.clip((x + np.float32(1)) / np.float32(2) * np.float32(255), 0, 255)).astype(np.uint8)
  h, w = u.shape[:2]
  lr = np.asarray(Image.fromarray(u, "RGB").resize((w // factor, h // factor), Image.LANCZOS), np.uint8)
  lrf = lr.astype(np.float32) / np.float32(255) * np.float32(2) - np.float32(1)
  return lr, np.asarray(upsample(jnp.asarray(lrf), factor, "bilinear"))


def dgp_degrade(x: jax.Array, mode: str, factor: int = 4) -> jax.Array:
  """DGP's ``pre_process`` on a generator output (differentiable), ``[..., H, W, 3]`` in [-1, 1].

  ``SR``: Lanczos downsample by ``factor`` then bilinear ×factor back to H×W; ``colorization``:
  DGP's grey weights repeated to 3 channels; ``inpainting``: :func:`center_hole_mask` set to 0;
  ``hybrid``: SR, then grey, then the hole (DGP uses factor 2 there).
  """
  res = x.shape[-3]
  if mode in ("SR", "hybrid"):
    x = upsample(lanczos_downsample(x, factor), factor, "bilinear")
  if mode in ("colorization", "hybrid"):
    x = to_gray(x, GRAY_WEIGHTS_DGP)
  if mode in ("inpainting", "hybrid"):
    x = apply_mask(x, jnp.asarray(center_hole_mask(res, x.shape[-1]), x.dtype))
  if mode not in ("SR", "colorization", "inpainting", "hybrid"):
    raise ValueError(f"unknown DGP degradation {mode!r}; expected SR, colorization, inpainting or hybrid")
  return x


def dgp_colorization_restore(x: np.ndarray, target: np.ndarray) -> np.ndarray:
  """DGP's colorization result for metrics: L of the target with a, b of ``x`` (CIE Lab, skimage).

  ``x, target``: ``[H, W, 3]`` float in [-1, 1]; returns ``lab2rgb([L_t, a_x, b_x])·2 − 1``.
  Needs scikit-image (imported here only).
  """
  from skimage import color
  lt = color.rgb2lab((np.asarray(target, np.float64) + 1) / 2)
  lx = color.rgb2lab((np.asarray(x, np.float64) + 1) / 2)
  return color.lab2rgb(np.concatenate([lt[..., :1], lx[..., 1:]], axis=-1)) * 2 - 1


# ----------------------------------------------------------------------------- semantic editing

def boundary_frames(z: jax.Array, boundary: jax.Array, max_step: float, frames: int) -> jax.Array:
  """Codes moved along a semantic boundary as mGANprior's face-editing script does.

  ``z_t = z + (l_t − 1)·max_step·n`` for ``l_t = linspace(0, 2, frames)``: every code is moved by
  the same offset, from ``−max_step`` to ``+max_step`` along ``n``.

  Args:
    z: ``[..., N, D]`` latent codes (any leading axes).
    boundary: ``[D]`` or ``[1, D]`` (InterFaceGAN unit normal).
    max_step: the largest distance along ``n``.
    frames: number of steps F (≥ 2).
  Returns:
    ``[F, ..., N, D]``.
  """
  n = jnp.reshape(jnp.asarray(boundary, z.dtype), (-1,))
  if n.shape[0] != z.shape[-1]:
    raise ValueError(f"boundary has {n.shape[0]} dimensions; the codes have {z.shape[-1]}")
  if frames < 2:
    raise ValueError(f"frames must be >= 2, got {frames}")
  lt = jnp.linspace(0.0, 2.0, frames, dtype=z.dtype)
  offsets = (lt - 1.0) * max_step
  return z[None] + offsets.reshape((frames,) + (1,) * z.ndim) * n


# ----------------------------------------------------------------------------- Task

@dataclasses.dataclass(frozen=True, eq=False)
class Task:
  """One restoration task at one resolution (all images NHWC in [-1, 1], leading axes free).

  ``observe`` applies the same operator as ``degrade`` (mGANprior's convention: target and
  output go through one function). DGP instead makes its SR target with PIL's Lanczos on
  uint8 (:func:`dgp_sr_target`) and compares at full size (:func:`dgp_degrade`).

  Attributes:
    name: one of :data:`TASKS`.
    resolution: generator output size (square).
    factor: super-resolution factor (``super-resolve`` only).
    downsample: resampling mode of ``super-resolve`` (:data:`DOWNSAMPLE_MODES`).
    mask: ``[res, res, 3]`` float32, 1 = missing (``inpaint`` only).
    sigma: noise std on the [-1, 1] scale (``denoise`` only).
    key: PRNG key of the denoising noise (``denoise`` only).
  """
  name: str
  resolution: int
  factor: Optional[int] = None
  downsample: str = "bilinear"
  mask: Optional[np.ndarray] = None
  sigma: Optional[float] = None
  key: Optional[jax.Array] = None

  @property
  def observation_size(self) -> int:
    """Side of an observation (``res / factor`` for super-resolution, else ``res``)."""
    return self.resolution // self.factor if self.name == "super-resolve" else self.resolution

  def degrade(self, x: jax.Array) -> jax.Array:
    """What the loss compares: ``[..., res, res, 3] → [..., s, s, 3]`` (pure, differentiable)."""
    if self.name == "colorize":
      return to_gray(x)
    if self.name == "super-resolve":
      return downsample(x, self.factor, self.downsample)
    if self.name == "inpaint":
      return apply_mask(x, jnp.asarray(self.mask, x.dtype))
    return x

  def observe(self, gt: jax.Array) -> jax.Array:
    """The observation made from ground truth (denoise: ``gt + sigma·N(0,1)`` from ``key``)."""
    if self.name == "denoise":
      return add_noise(jnp.asarray(gt), self.sigma, self.key)
    return self.degrade(jnp.asarray(gt))

  def restore(self, output: jax.Array, observation: jax.Array) -> np.ndarray:
    """Post-processed result, float32 ``[..., res, res, 3]`` in [-1, 1].

    Colorization recombines Y of ``observation`` (pass the colour target when known, as the
    official script does; a grey observation has the same Y) with Cb, Cr of ``output`` through
    PIL, giving ``u8/255·2 − 1``. Every other task returns the generator output unchanged.
    """
    out = np.asarray(output, np.float32)
    if self.name != "colorize":
      return out
    obs = np.asarray(observation, np.float32)
    u8 = colorize_restore01(out * 0.5 + 0.5, obs * 0.5 + 0.5)
    return (u8.astype(np.float32) / np.float32(255) - np.float32(0.5)) * np.float32(2)


def make_task(name: str, resolution: int, factor: Optional[int] = None, downsample: str = "bilinear",
              mask=None, sigma: Optional[float] = None, key: Optional[jax.Array] = None) -> Task:
  """Validate and build a :class:`Task`.

  Args:
    name: ``reconstruct`` | ``colorize`` | ``super-resolve`` | ``inpaint`` | ``denoise``.
    resolution: generator resolution.
    factor: integer dividing ``resolution`` (super-resolve).
    downsample: one of :data:`DOWNSAMPLE_MODES` (super-resolve).
    mask: a file path or an array ``[H, W]`` / ``[H, W, C]`` (1 = missing), resized nearest to
      the resolution (inpaint).
    sigma: noise std on the [-1, 1] scale (denoise).
    key: PRNG key for the denoising noise (denoise; required there).

  Examples:
    >>> t = make_task("super-resolve", 32, factor=4)
    >>> t.degrade(jnp.zeros((32, 32, 3))).shape
    (8, 8, 3)
  """
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
  if name == "super-resolve":
    if factor is None:
      raise ValueError("super-resolve needs a factor (e.g. --factor 4)")
    _check_factor(resolution, factor)
    if resolution // factor < MIN_OBSERVATION:
      sensible = [f for f in range(1, resolution + 1)
                  if resolution % f == 0 and resolution // f >= MIN_OBSERVATION]
      raise ValueError(
          f"factor {factor} leaves a {resolution // factor}x{resolution // factor} observation of "
          f"the {resolution} px image (under {MIN_OBSERVATION} px there is almost nothing to "
          f"restore from); the largest sensible factor here is {max(sensible)} (--factor)")
    if downsample not in DOWNSAMPLE_MODES:
      raise ValueError(f"unknown downsample mode {downsample!r}; expected one of {DOWNSAMPLE_MODES}")
    return Task(name, resolution, factor=int(factor), downsample=downsample)
  if name == "inpaint":
    if mask is None:
      raise ValueError("inpaint needs a mask (white = missing pixels, e.g. --mask masks/mask-2.png)")
    if isinstance(mask, (str, pathlib.Path)):
      m = load_mask(mask, resolution)
    else:
      m = np.asarray(mask, np.float32)
      if m.ndim == 2:
        m = m[..., None]
      if m.shape[-1] == 1:
        m = np.repeat(m, 3, axis=-1)
      if m.shape[:2] != (resolution, resolution):
        m = resize_mask(m, resolution)
      check_mask(m)
    return Task(name, resolution, mask=m)
  if name == "denoise":
    if sigma is None or not sigma > 0:
      raise ValueError(f"denoise needs a positive sigma (noise std on [-1, 1]), got {sigma!r}")
    if key is None:
      raise ValueError("denoise needs an explicit PRNG key for the observation noise")
    return Task(name, resolution, sigma=float(sigma), key=key)
  return Task(name, resolution)
