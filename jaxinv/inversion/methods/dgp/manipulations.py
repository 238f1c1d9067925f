"""DGP's manipulations with a fine-tuned generator: morphing, jitter, category transfer."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.inversion.methods.dgp.search import generate_fn

def interpolate_params(a, b, alpha: float):
  """``alpha * a + (1 - alpha) * b`` over every leaf (DGP's morphing: weights, u0, BN stats)."""
  return jax.tree_util.tree_map(lambda p, q: alpha * jnp.asarray(p) + (1 - alpha) * jnp.asarray(q),
                                a, b)


def morph(G, params_a, params_b, z1, z2, y1, y2, alphas: Sequence[float]) -> np.ndarray:
  """DGP's ``example.py`` morphing between two reconstructions ``[len(alphas), H, W, 3]``.

  For each alpha: G with interpolated params, ``z = a z1 + (1-a) z2`` and
  ``emb = a * shared_a(y1) + (1-a) * shared_b(y2)``. z: ``[1, dim_z]``, y: ``[1]``.
  """
  ea = biggan_embed(G, params_a, y1)
  eb = biggan_embed(G, params_b, y2)

  @jax.jit
  def one(alpha):
    p = interpolate_params(params_a, params_b, alpha)
    return G.apply({"params": p}, alpha * z1 + (1 - alpha) * z2, alpha * ea + (1 - alpha) * eb)
  return np.concatenate([np.asarray(one(jnp.float32(a))) for a in alphas])


def biggan_embed(G, params, y):
  return G.apply({"params": params}, jnp.asarray(y), method="embed")


def jitter(G, params, z, y, noise, stds: Sequence[float]) -> np.ndarray:
  """DGP's random jittering: ``G(z + std * noise, shared(y))`` for each std, ``[S*N, H, W, 3]``.

  z ``[1, dim_z]``; noise ``[N, dim_z]`` (DGP: 30 N(0, I) draws per std).
  """
  n = noise.shape[0]
  y = jnp.broadcast_to(jnp.asarray(y, jnp.int32), (n,))
  return np.concatenate([np.asarray(generate_fn(G)(params, jnp.asarray(z) + s * jnp.asarray(noise), y))
                         for s in stds])


def category_transfer(G, params, z, classes) -> np.ndarray:
  """DGP's category transfer: ``G(z, shared(c))`` for every class c, ``[C, H, W, 3]``."""
  c = jnp.asarray(classes, jnp.int32)
  return np.asarray(generate_fn(G)(params, jnp.broadcast_to(jnp.asarray(z), (c.shape[0], z.shape[-1])),
                               c))
