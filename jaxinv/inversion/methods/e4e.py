"""Encoder-only inversion with a pSp / e4e model: images → w+ codes → reconstructions.

The codes are ``encoder(x) + latent_avg`` (pSp's ``start_from_latent_avg``) and the
reconstruction is the decoder's rendering of them with its stored noise, as pSp's
``forward(x, resize=False, randomize_noise=False)``. Images are processed in fixed-size
batches (the last one padded, then trimmed), so one program serves every batch, each batch
sharded over the local devices.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import numpy as np

from jaxinv import sharding
from jaxinv.io import images as image_io

__all__ = ["load_inputs", "encode", "Method"]


def load_inputs(paths: Sequence, model) -> np.ndarray:
  """``[B, R, R, 3]`` in [-1, 1] by pSp's inference transform at the encoder's input size."""
  return image_io.load_images(paths, model.config.encoder.input_size, loader="psp")


def encode(model, images: np.ndarray, batch: int = 8, decode: bool = True) -> dict:
  """Encodes ``images [B, R, R, 3]`` with a loaded ``psp`` model.

  Returns ``{"wp": [B, L, w_dim], "images": [B, R_G, R_G, 3]}`` (``images`` only with
  ``decode``; NHWC, not clamped).
  """
  module, params = model.module, model.params
  n = len(images)
  mesh, batch = sharding.batch_plan(batch, n)

  @jax.jit
  def run(x):
    codes = module.apply({"params": params}, x, method=module.encode)
    if not decode:
      return codes, None
    return codes, module.apply({"params": params}, codes, method=module.decode)

  wp, out = [], []
  for start in range(0, n, batch):
    x, real = sharding.pad_to_multiple(np.asarray(images[start:start + batch]), batch)
    if mesh is not None:
      x = jax.device_put(x, sharding.batch_sharding(mesh))
    codes, img = run(x)
    wp.append(np.asarray(codes)[:real])
    if decode:
      out.append(np.asarray(img)[:real])
  res = {"wp": np.concatenate(wp)}
  if decode:
    res["images"] = np.concatenate(out)
  return res


@functools.lru_cache(maxsize=8)
def _encode_fn(module, decode: bool):
  def run(params, x):
    codes = module.apply({"params": params}, x, method=module.encode)
    return codes, (module.apply({"params": params}, codes, method=module.decode) if decode else None)
  return jax.jit(run)


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """Encoder-only inversion as a driver method: ``image [R, R, 3]`` (pSp's inference transform,
  :func:`load_inputs`) -> ``wp [L, D]`` and the decoder's reconstruction."""
  model: Any
  name = "e4e"

  def settings(self) -> dict:
    return {"encoder": dataclasses.asdict(self.model.config.encoder)}

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run as run_lib
    x = np.asarray(data["image"], np.float32)
    if ctx.mesh is not None:
      x = jax.device_put(x, sharding.batch_sharding(ctx.mesh))
    codes, images = _encode_fn(self.model.module, True)(self.model.params, x)
    return run_lib.BatchOutput({"wp": np.asarray(codes)}, {}, {"": np.asarray(images)})
