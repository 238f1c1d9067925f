"""Device meshes and shardings: the one place that decides where arrays live.

Inversions are embarrassingly parallel over images: the image axis of the
optimised variables, the per-image data and the optimiser state is sharded over
the mesh axis ``"data"``; generator weights (``shared``) are replicated. No
collective runs inside a step.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["DATA_AXIS", "make_mesh", "batch_sharding", "replicated", "place_batch",
           "pad_to_multiple"]

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def place_batch(mesh: Mesh, batched, *replicated_trees):
  """Shards ``batched`` (leading image axis) over the mesh; replicates the others."""
  n = mesh.devices.size
  for leaf in jax.tree_util.tree_leaves(batched):
    if np.ndim(leaf) and np.shape(leaf)[0] % n:
      raise ValueError(f"batch of {np.shape(leaf)[0]} images does not divide over {n} devices; "
                       "pad it with pad_to_multiple or choose --batch as a multiple of the device count")
  bs, rep = batch_sharding(mesh), replicated(mesh)
  put_batched = lambda x: jax.device_put(x, bs) if np.ndim(x) else jax.device_put(x, rep)
  out = [jax.tree_util.tree_map(put_batched, batched)]
  out += [jax.tree_util.tree_map(lambda x: jax.device_put(x, rep), t) for t in replicated_trees]
  return tuple(out)


def pad_to_multiple(tree, multiple: int):
  """Pads the leading axis of every leaf to a multiple by repeating the last entry.

  Returns ``(padded_tree, original_size)``.
  """
  n = int(np.shape(jax.tree_util.tree_leaves(tree)[0])[0])
  target = -(-n // multiple) * multiple
  if target == n:
    return tree, n
  pad = lambda x: np.concatenate([np.asarray(x), np.repeat(np.asarray(x)[-1:], target - n, 0)], 0)
  return jax.tree_util.tree_map(pad, tree), n
