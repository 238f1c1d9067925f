"""Minibatch standard deviation (StyleGAN's discriminator feature): one copy for the project."""

import jax.numpy as jnp


def minibatch_stddev(x, group_size: int = 4, num_features: int = 1, eps: float = 1e-8):
  """Appends ``num_features`` stddev channels to NHWC ``x [B, H, W, C]`` → ``[B, H, W, C + F]``.

  ``G = min(B, group_size)`` must divide B; sample ``n`` belongs to sub-group ``n mod (B/G)``,
  whose members share the statistic: the biased variance over the G members, sqrt(+eps), averaged
  over C/F, H and W (StyleGAN2 / rosinality / PadInv grouping; ``group_size = B``: one statistic).
  """
  b, h, w, c = x.shape
  g = min(b, group_size)
  if b % g:
    raise ValueError(f"minibatch stddev: batch {b} is not divisible by the group size {g}")
  y = x.reshape(g, b // g, h, w, num_features, c // num_features)
  y = jnp.sqrt(jnp.var(y, axis=0) + eps)                  # [B/G, H, W, F, C/F]
  y = jnp.mean(y, axis=(1, 2, 4))                          # [B/G, F]
  y = jnp.tile(y, (g, 1))[:, None, None, :]
  return jnp.concatenate([x, jnp.broadcast_to(y, (b, h, w, num_features))], axis=-1)
