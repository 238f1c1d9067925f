"""What an inversion compares with, and what it shows afterwards, for any task.

:func:`observations` turns ground truth into the task's observations (the denoising noise drawn
per image *name*, so it does not depend on the list or the batch); :func:`as_observed` cleans
images that already are observations; :func:`pictures` gives each image's observation,
restoration and labelled grid (restoration vs ground truth with its PSNR).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Folded into the run seed for the denoising noise, so it never equals the init's key stream.
NOISE_STREAM = 0x6E6F6973


def observations(task, ground_truth: np.ndarray, names: Sequence[str], seed: int) -> np.ndarray:
  """``[B, s, s, C]`` observations of ``ground_truth [B, R, R, C]`` (float32)."""
  import jax
  import jax.numpy as jnp
  from jaxinv.inversion import run
  from jaxinv.tasks.degradations import add_noise
  if task.name == "denoise":
    keys = run.image_keys(seed, list(names), stream=NOISE_STREAM)
    obs = jax.vmap(lambda x, k: add_noise(x, task.sigma, k))(jnp.asarray(ground_truth), keys)
  else:
    obs = task.observe(jnp.asarray(ground_truth))
  return np.asarray(obs, np.float32)


def as_observed(task, images: np.ndarray) -> np.ndarray:
  """Images that already are observations, made exact: holes exactly 0, colour made grey."""
  import jax.numpy as jnp
  from jaxinv.tasks.degradations import apply_mask, to_gray
  if task.name == "inpaint":
    return np.asarray(apply_mask(jnp.asarray(images), jnp.asarray(task.mask)))
  if task.name == "colorize":
    return np.asarray(to_gray(jnp.asarray(images)))
  return np.asarray(images)


def pictures(task, name: str, output: np.ndarray, observation: np.ndarray,
             ground_truth: np.ndarray | None) -> dict:
  """``{"observation", "restored", "grid"}`` images of one inverted image (uint8 grid).

  The grid is observation | restoration | ground truth (when known, with the restoration's
  PSNR), labelled; a low-res observation is shown nearest-upsampled to the output size.
  """
  from jaxinv import metrics
  from jaxinv.io import images as image_io
  from jaxinv.tasks.degradations import resize
  obs = np.asarray(observation)
  restored = task.restore(output, ground_truth if ground_truth is not None else obs)
  shown = obs
  if obs.shape[0] != restored.shape[0]:
    shown = np.asarray(resize(obs, restored.shape[:2], "nearest"))
  row = [shown, restored] + ([ground_truth] if ground_truth is not None else [])
  labels = ["observation", f"restored ({task.name})"] + (["ground truth"] if ground_truth is not None else [])
  captions = None
  if ground_truth is not None:
    psnr = metrics.psnr(image_io.to_uint8(restored), image_io.to_uint8(ground_truth), 255.0)
    captions = [["", f"PSNR {psnr:.2f} dB", ""]]
  grid, _ = image_io.labeled_grid([row], [name], labels, captions)
  return {"observation": obs, "restored": restored, "grid": grid}
