"""The restoration tasks: :class:`Task` bundles what an inversion needs for one of :data:`TASKS`.

``degrade`` is applied to the generator output inside the loss (loss = base(degrade(G(v)),
observation)), ``observe`` is what the tool makes from ground truth (as the official scripts do)
and ``restore`` the post-processing of the output.

References:
  Gu et al., "Image Processing Using Multi-Code GAN Prior", CVPR 2020 (tasks, §4).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.tasks.degradations import (DOWNSAMPLE_MODES, MIN_OBSERVATION, add_noise, apply_mask,
                                       check_factor, downsample, to_gray)
from jaxinv.tasks.masks import check_mask, load_mask, resize_mask
from jaxinv.tasks.restoration import colorize_restore01

__all__ = ["TASKS", "Task", "make_task"]

TASKS = ("reconstruct", "colorize", "super-resolve", "inpaint", "denoise")


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
    check_factor(resolution, factor)
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
