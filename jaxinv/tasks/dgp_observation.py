"""DGP's observation model: its SR target (PIL Lanczos on uint8) and its ``pre_process`` degradations.

References:
  Pan et al., "Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation", ECCV 2020 (Lanczos downsampler, centre-hole inpainting).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.tasks.degradations import (GRAY_WEIGHTS_DGP, apply_mask, lanczos_downsample, to_gray,
                                       upsample)
from jaxinv.tasks.masks import center_hole_mask

__all__ = ["dgp_sr_target", "dgp_degrade"]


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
