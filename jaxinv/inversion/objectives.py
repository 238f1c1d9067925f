"""Loss terms on single images (NHWC ``[H, W, C]`` in nominal [-1, 1]) and their weighted sums.

Every term is a pure function of one rendered image and one observation, so it
can be ``vmap``ped over images without coupling them. The VGG term follows
mGANprior's ``VGGLoss``: ``[-1,1] → [0,1]``, ImageNet normalisation, PyTorch's
legacy ``nearest`` resize to ``size`` (``src = floor(dst · in / out)``),
``features[:num_modules]``, mean L1 (or L2) of the feature difference, × 0.001.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from jaxinv.models import vgg as vgg_lib
from jaxinv.ops import resize as ops_resize

__all__ = ["mse", "l1", "nearest_resize_legacy", "vgg_normalize", "VGGLossConfig", "vgg_loss",
           "LossConfig", "make_objective", "target_vgg_features"]


def mse(x, y):
  return jnp.mean(jnp.square(x - y))


def l1(x, y):
  return jnp.mean(jnp.abs(x - y))


def nearest_resize_legacy(x: jax.Array, size: int | tuple[int, int]) -> jax.Array:
  """Nearest resize of ``[..., H, W, C]`` with PyTorch's legacy (asymmetric) rule."""
  return ops_resize.resize_nearest(x, size)


def vgg_normalize(x: jax.Array) -> jax.Array:
  """``[-1, 1]`` → ImageNet-normalised, as mGANprior's VGGLoss (channel last)."""
  x01 = x * 0.5 + 0.5
  return (x01 - jnp.asarray(vgg_lib.IMAGENET_MEAN, x.dtype)) / jnp.asarray(vgg_lib.IMAGENET_STD,
                                                                            x.dtype)


@dataclasses.dataclass(frozen=True)
class VGGLossConfig:
  num_modules: int = 16      # features[:num_modules] (16 = relu3_3)
  size: int = 256            # resize target (mGANprior's --image_size)
  kind: str = "l1"           # "l1" | "l2" on the features
  weight: float = 0.001      # the official constant factor
  compute_dtype: str = "float32"   # "bfloat16": VGG convs in bf16 (opt-in), features back to f32


def vgg_features(vgg_params, x, cfg: VGGLossConfig):
  """relu features of one or more images ``[..., H, W, 3]`` after normalisation + resize."""
  xr = nearest_resize_legacy(vgg_normalize(x), cfg.size)
  if cfg.compute_dtype != "float32":
    xr = xr.astype(cfg.compute_dtype)
  batched = xr[None] if xr.ndim == 3 else xr
  f = vgg_lib.VGG16Features(cfg.num_modules).apply({"params": vgg_params}, batched)
  if cfg.compute_dtype != "float32":
    f = f.astype(jnp.float32)
  return f[0] if xr.ndim == 3 else f


def vgg_loss(vgg_params, x, y, cfg: VGGLossConfig, y_features=None):
  """mGANprior's perceptual loss between two images (already × ``cfg.weight``).

  ``y_features``: ``vgg_features(vgg_params, y, cfg)`` computed beforehand (the target is fixed
  during an inversion, so its features need not be recomputed every step); ``y`` is then unused.
  """
  if y_features is None:
    y_features = vgg_features(vgg_params, y, cfg)
  d = vgg_features(vgg_params, x, cfg) - y_features
  per = jnp.abs(d) if cfg.kind == "l1" else jnp.square(d)
  return jnp.mean(per) * cfg.weight


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The inversion objective: mGANprior's ``get_loss`` choices.

  ``mse`` / ``l1`` / ``vgg`` use that term alone; ``combine`` is
  ``l1_lambda·L1 + l2_lambda·MSE + vgg_lambda·VGG``; ``lpips`` is LPIPS v0.1 alone
  (:func:`jaxinv.models.lpips.lpips_distance`, net ``lpips_net``).
  """
  loss: str = "combine"
  l1_lambda: float = 0.0
  l2_lambda: float = 1.0
  vgg_lambda: float = 1.0
  vgg: VGGLossConfig = VGGLossConfig()
  lpips_net: str = "alex"    # "alex" | "vgg" (loss "lpips")

  def __post_init__(self):
    if self.loss not in ("mse", "l1", "vgg", "combine", "lpips"):
      raise ValueError(f"unknown loss {self.loss!r}; choose mse, l1, vgg, combine or lpips")
    if self.vgg.kind not in ("l1", "l2"):
      raise ValueError(f"unknown VGG loss kind {self.vgg.kind!r}; choose l1 or l2")

  @property
  def needs_vgg(self) -> bool:
    return self.loss == "vgg" or (self.loss == "combine" and self.vgg_lambda != 0)

  @property
  def needs_lpips(self) -> bool:
    return self.loss == "lpips"


@functools.lru_cache(maxsize=8)
def _vgg_features_fn(cfg: VGGLossConfig):
  return jax.jit(lambda params, y: vgg_features(params, y, cfg))


def target_vgg_features(cfg: LossConfig, vgg_params, targets):
  """VGG features of fixed targets ``[B, H, W, 3]`` for ``y_vgg_features`` (None without VGG term)."""
  if not cfg.needs_vgg:
    return None
  return _vgg_features_fn(cfg.vgg)(vgg_params, jnp.asarray(targets, jnp.float32))


def make_objective(cfg: LossConfig) -> Callable:
  """``objective(x, y, vgg_params) -> (loss, parts)`` for one image pair.

  ``y_vgg_features``: the VGG features of ``y`` when precomputed (:func:`target_vgg_features`).
  ``parts`` holds each computed term unweighted (``mse``, ``l1``, ``vgg``; the VGG
  term includes its 0.001 factor, as the official ``loss_parts``).
  """
  def objective(x, y, vgg_params=None, y_vgg_features=None):
    if cfg.loss == "lpips":  # the perceptual-network slot then holds the LPIPS model's params
      from jaxinv.models.lpips import lpips_distance
      v = lpips_distance(vgg_params, x, y, net=cfg.lpips_net)
      return v, {"lpips": v}
    if cfg.loss == "mse":
      v = mse(x, y)
      return v, {"mse": v}
    if cfg.loss == "l1":
      v = l1(x, y)
      return v, {"l1": v}
    if cfg.loss == "vgg":
      v = vgg_loss(vgg_params, x, y, cfg.vgg, y_vgg_features)
      return v, {"vgg": v}
    parts = {"mse": mse(x, y), "l1": l1(x, y)}
    total = cfg.l1_lambda * parts["l1"] + cfg.l2_lambda * parts["mse"]
    if cfg.needs_vgg:
      parts["vgg"] = vgg_loss(vgg_params, x, y, cfg.vgg, y_vgg_features)
      total = total + cfg.vgg_lambda * parts["vgg"]
    return total, parts
  return objective
