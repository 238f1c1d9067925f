"""Memory per image of DGP's batched fine-tuning, from the shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.models import biggan

def state_bytes_per_image(cfg: biggan.BigGANConfig, update_embed: bool = False) -> dict:
  """Per-image optimisation state from the shapes: params copy, Adam mu/nu, gradient (float32).

  Activations are not included (experiments/bench/dgp_memory.py measures them from the compiled step).
  """
  G = biggan.BigGANGenerator(cfg)
  shapes = jax.eval_shape(G.init, jax.random.key(0), jnp.zeros((1, cfg.dim_z)),
                          jnp.zeros((1, cfg.shared_dim)))["params"]
  groups = biggan.trainable_mask(shapes, update_embed)
  sizes = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda s: int(np.prod(s.shape)), shapes))
  gids = jax.tree_util.tree_leaves(groups)
  total = sum(sizes)
  trainable = sum(s for s, g in zip(sizes, gids) if g >= 0)
  return {"params": 4 * total, "trainable": 4 * trainable,
          "adam": 2 * 4 * trainable, "grad": 4 * trainable,
          "total": 4 * total + 3 * 4 * trainable}
