"""Inversion spaces on layered generators: how variables are initialised and rendered.

A space is a pair of pure functions for ONE image:

* ``init(key, num_images) -> variables`` (leaves ``[B, ...]``),
* ``render(variables_i, generator_params) -> image [H, W, C]``.

:class:`MultiCode` is mGANprior's space: N latent codes ``z [N, D]`` each give the
feature map ``F_ℓ(z_n)`` of layer ℓ; the maps are weighted per channel by
``alpha [N, C]`` and averaged, and layers ``[ℓ, end)`` render the image::

  image = G_[ℓ:]( (1/N) Σ_n  alpha_n ⊙ G_[:ℓ](z_n) )

It works for any generator module exposing ``__call__(x, start, stop)`` and
``config.feature_shapes()`` (see :mod:`jaxinv.models.pggan`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["MultiCode", "INIT_TYPES", "COMPUTE_DTYPES", "cast_floating", "ENCODER_INIT_NOISE",
           "ENCODER_INIT_ALPHA"]

INIT_TYPES = ("normal", "zero")
# --init encoder: every code = E(x) + ENCODER_INIT_NOISE · N(0, 1), alpha = ENCODER_INIT_ALPHA.
# Chosen on 8 demo training digits (experiments/demo_encoder_study.py init-dev; layer 4, N 10):
# noise 0 / 0.1 / 0.3 / 0.5 / 1.0 gave 29.1 / 29.2 / 29.4 / 29.7 / 29.5 dB after 50 steps and
# 31.5 (0.1) / 31.9 / 32.2 / 31.9 after 150 (normal init: 27.3, 30.8); alpha 1/N lost ~1.4 dB.
ENCODER_INIT_NOISE = 0.5
ENCODER_INIT_ALPHA = 1.0
COMPUTE_DTYPES = ("float32", "bfloat16")


def cast_floating(tree, dtype):
  """Casts every floating leaf of ``tree`` to ``dtype`` (a no-op for float32 trees to float32)."""
  return jax.tree_util.tree_map(
      lambda x: x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x, tree)



def compose(features, alpha):
  """mGANprior's composition of N codes' features at a layer: ``(1/N) Σ_n alpha_n ⊙ F_n`` —
  features ``[N, H, W, C]``, channel importances alpha ``[N, C]`` → ``[1, H, W, C]``."""
  return _sum_codes(features * alpha[:, None, None, :])[None] / features.shape[0]


@jax.custom_vjp
def _sum_codes(weighted):
  """``Σ_n weighted[n]``, summed code by code: on XLA:CPU the reduce over the code axis (and its
  alpha gradient) of N = 20 codes at 16²×512 took 14.8 ms forward + backward, the unrolled sum
  3.7 ms. Its gradient is the cotangent broadcast to every code (autodiff of the unrolled sum
  would pad each code's slice to the full stack and add the N pads: N² slices' work, 38 ms per
  batch-8 step of the speed benchmark; the same bits)."""
  total = weighted[0]
  for n in range(1, weighted.shape[0]):
    total = total + weighted[n]
  return total


def _sum_codes_fwd(weighted):
  return _sum_codes(weighted), weighted.shape[0]


def _sum_codes_bwd(codes, g):
  return (jnp.broadcast_to(g, (codes,) + g.shape),)


_sum_codes.defvjp(_sum_codes_fwd, _sum_codes_bwd)


def _variables(params):
  """Flax variables from a generator's params or from :meth:`MultiCode.prepare`'s
  ``{"params": …, "prepared": …}`` (no generator names a top-level layer ``params``)."""
  return params if "params" in params else {"params": params}


@dataclasses.dataclass(frozen=True)
class MultiCode:
  """mGANprior's multi-code space at composing layer ``layer`` with ``codes`` latents."""
  generator: Any          # a layered Flax generator module (hashable, static)
  layer: int              # composing layer ℓ
  codes: int              # N
  compute_dtype: str = "float32"   # "bfloat16": generator runs in bf16 (opt-in; variables stay f32)

  def __post_init__(self):
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"unknown compute_dtype {self.compute_dtype!r}; choose one of {COMPUTE_DTYPES}")
    if self.codes < 1:
      raise ValueError(f"the number of codes N must be >= 1, got {self.codes}")
    self.generator.config.check_layer(self.layer)

  @property
  def z_dim(self) -> int:
    return self.generator.config.feature_shapes()[0][-1]

  @property
  def channels(self) -> int:
    return self.generator.config.feature_shapes()[self.layer][-1]

  def init(self, key, num_images: int, init_type: str = "normal") -> dict:
    """z ~ N(0, 1) (or zeros) ``[B, N, D]`` and alpha = 1/N ``[B, N, C]``, as the official init."""
    shape = (num_images, self.codes, self.z_dim)
    if init_type == "normal":
      z = jax.random.normal(key, shape, jnp.float32)
    elif init_type == "zero":
      z = jnp.zeros(shape, jnp.float32)
    else:
      raise ValueError(f"unknown init {init_type!r}; choose one of {INIT_TYPES} or give --init")
    alpha = jnp.full((num_images, self.codes, self.channels), 1.0 / self.codes, jnp.float32)
    return {"z": z, "alpha": alpha}

  def init_from_code(self, key, code, noise_std: float = ENCODER_INIT_NOISE,
                     alpha: float = ENCODER_INIT_ALPHA) -> dict:
    """Seeds the N codes of each image from one encoded code ``code [B, D]`` (``--init encoder``).

    ``z_n = code + noise_std · ε_n`` (ε ~ N(0, 1), independent per code, so the codes can
    diverge; ``z_1 = code`` exactly when N = 1 or ``noise_std = 0``) and ``alpha = alpha``
    for every channel. With the default ``alpha = 1`` the composed feature map,
    ``(1/N) Σ alpha_n ⊙ F_ℓ(z_n)``, is the mean of the N perturbed ``F_ℓ(E(x))``, so the start
    renders ≈ ``G(E(x))``; the official ``alpha = 1/N`` would scale it by 1/N.
    """
    code = jnp.asarray(code, jnp.float32)
    if code.ndim != 2 or code.shape[1] != self.z_dim:
      raise ValueError(f"encoded codes must be [B, {self.z_dim}], got {tuple(code.shape)}")
    b = code.shape[0]
    eps = jax.random.normal(key, (b, self.codes, self.z_dim), jnp.float32)
    if self.codes == 1:
      eps = jnp.zeros_like(eps)
    z = code[:, None, :] + noise_std * eps
    return {"z": z, "alpha": jnp.full((b, self.codes, self.channels), alpha, jnp.float32)}

  def prepare(self, params):
    """What a loop over this frozen generator passes as its params: with the kernels already
    transformed into the form its convolutions run on (PGGAN:
    :func:`jaxinv.models.pggan.prepare_variables`), once rather than at every step; ``params``
    itself for other generators. :meth:`render` takes either and gives the same image."""
    from jaxinv.models import pggan
    if isinstance(self.generator, pggan.PGGANGenerator):
      return pggan.prepare_variables(self.generator, params)
    return params

  def features(self, z, params):
    """``F_ℓ(z_n)`` for ``z [N, D]`` → ``[N, H, W, C]``."""
    return self.generator.apply(_variables(params), z, 0, self.layer)

  def compose(self, features, alpha):
    """:func:`compose` of the N codes' features."""
    return compose(features, alpha)

  def render(self, variables, params):
    """One image ``[H, W, C]`` from ``{"z": [N, D], "alpha": [N, C]}``.

    With ``compute_dtype="bfloat16"`` the generator params, latents and activations are
    cast to bf16 and the image is returned as float32 (gradients flow back to the float32
    variables through the casts). The default path is untouched.
    """
    if self.compute_dtype != "float32":
      dt = jnp.dtype(self.compute_dtype)
      params, variables = cast_floating(params, dt), cast_floating(variables, dt)
    fused = self.compose(self.features(variables["z"], params), variables["alpha"])
    image = self.generator.apply(_variables(params), fused, self.layer, None)[0]
    return image if self.compute_dtype == "float32" else image.astype(jnp.float32)
