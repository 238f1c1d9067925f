"""DGP's objective (discriminator-feature distance + MSE + z prior) and its two Adam optimisers."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv.models import biggan
from jaxinv.inversion.methods.dgp.schedule import Schedule

def feature_loss(fake_feats: Sequence[jax.Array], real_feats: Sequence[jax.Array],
                 ftr_num: int) -> jax.Array:
  """DGP's ``DiscriminatorLoss``: ``sum_{k=1..ftr_num} mean|h_fake[-k] - h_real[-k]|``."""
  return sum(jnp.mean(jnp.abs(f - jax.lax.stop_gradient(r)))
             for f, r in zip(fake_feats[::-1][:ftr_num], real_feats[::-1][:ftr_num]))


def masked_feature_loss(fake_feats, real_feats, mask):
  """``sum_k mask[k] * mean|fake[k] - real[k]|`` (mask over ``h_list`` order; see :func:`ftr_mask`)."""
  return sum(m * jnp.mean(jnp.abs(f - jax.lax.stop_gradient(r)))
             for m, f, r in zip(mask, fake_feats, real_feats))


def ftr_mask(ftr_num: int, num_features: int) -> np.ndarray:
  """The 0/1 weights over D features that :func:`feature_loss` with ``ftr_num`` sums."""
  return (np.arange(num_features) >= num_features - ftr_num).astype(np.float32)


def objective(variables, data, shared, *, G, D, use_in, degrade):
  """The DGP loss of ONE image (vmapped over images).

  variables: ``{"z": [dim_z], "G": G params}``; data: ``target [H, W, 3]``, ``target_feats``
  (D features of the target), ``y`` (int), ``weights`` ``[3]`` = (w_D, w_mse, w_nll),
  ``ftr_mask`` ``[num_features]`` (:func:`ftr_mask`) and ``in_params`` (or None);
  shared: ``{"D": D params}``.
  """
  z, gp = variables["z"], variables["G"]
  emb = jnp.asarray(gp["shared"]["weight"])[data["y"]][None]
  x = G.apply({"params": gp}, z[None], emb, use_in, data.get("in_params"))
  x_map = degrade(x)
  _, feats = D.apply({"params": shared["D"]}, x_map)
  target = data["target"][None]
  ftr = masked_feature_loss(feats, [f[None] for f in data["target_feats"]], data["ftr_mask"])
  mse = jnp.mean(jnp.square(x_map - target))
  nll = jnp.mean(jnp.square(z)) / 2
  w = data["weights"]
  loss = w[0] * ftr + w[1] * mse + w[2] * nll
  return loss, {"ftr_loss": ftr, "mse_loss": mse, "nll": nll,
                "l1_loss": jnp.mean(jnp.abs(x_map - target)), "loss": loss}


def _labels(g_params, update_embed):
  groups = biggan.trainable_mask(g_params, update_embed)
  return {"z": "z", "G": jax.tree_util.tree_map(lambda g: "frozen" if g < 0 else f"g{g}", groups)}


def make_optimizer(schedule: Schedule, g_params) -> optax.GradientTransformation:
  """DGP's two Adam optimisers (z and G) as one ``optax.multi_transform`` for one image.

  Labels: ``z``, ``g0..g{n}`` (G groups: 0 = ``linear`` [+ ``shared`` with
  ``update_embed``], i = GBlock i-1 with its attention) and ``frozen`` (buffers,
  ``output_layer``, ``shared`` otherwise: never updated, no state). Each trainable label is
  ``scale_by_adam(b1, b2, eps)`` then ``-lr[step]`` from its column of :func:`lr_table`, so
  every group updates its Adam moments every step, also while its lr is 0, as torch's Adam
  does (a later stage unlocking it finds every earlier gradient in its state). The step
  count lives in the optimiser state and runs across stages.

  Cached on (schedule, param structure): equal inputs give the same object, so
  :func:`jaxinv.inversion.optimize.optimize` reuses its compiled program.
  """
  labels = _labels(g_params, schedule.update_embed)
  leaves, treedef = jax.tree_util.tree_flatten(labels)
  return _optimizer(schedule, treedef, tuple(leaves), _num_groups(g_params))


@functools.lru_cache(maxsize=None)
def _optimizer(schedule, treedef, labels, num_groups):
  b1, b2 = schedule.betas
  table = lr_table(schedule, num_groups)

  def adam_lr(col):
    lr = jnp.asarray(table[:, col])
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=schedule.eps),
                       optax.scale_by_schedule(lambda c: -lr[jnp.minimum(c, lr.shape[0] - 1)]))
  transforms = {"z": adam_lr(0), "frozen": optax.set_to_zero()}
  transforms.update({f"g{i}": adam_lr(1 + i) for i in range(num_groups)})
  return optax.multi_transform(transforms, jax.tree_util.tree_unflatten(treedef, list(labels)))


def _num_groups(g_params) -> int:
  return 1 + max(jax.tree_util.tree_leaves(biggan.trainable_mask(g_params, True)))


def lr_table(schedule: Schedule, num_groups: int) -> np.ndarray:
  """``[total_steps, 1 + num_groups]``: column 0 the z lr, column 1 + i G group i's lr."""
  rows = []
  for st in schedule.stages:
    g = st.group_lrs(num_groups) if schedule.update_G else [0.0] * num_groups
    rows += [[st.z_lr] + g] * st.iterations
  return np.asarray(rows, np.float32).reshape(-1, 1 + num_groups)
