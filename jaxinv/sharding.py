"""Device meshes and shardings: the one place that decides where arrays live.

Inversions are embarrassingly parallel over images: the image axis of the
optimised variables, the per-image data and the optimiser state is sharded over
the mesh axis ``"data"``; generator weights (``shared``) are replicated. No
collective runs inside a step.

Two scales:

* one process: :func:`batch_plan` picks a mesh over the local devices and rounds
  the batch up to a multiple of the device count (``jaxinv invert --batch B``);
* several processes (:mod:`jaxinv.distributed`): each process owns a disjoint
  slice of the work (:func:`process_shard`) and runs it on a mesh over its
  *local* devices. Inversions share nothing across images, so a global mesh
  would only add a lock-step barrier per chunk (one preempted host stalls all);
  :func:`make_mesh` still builds the all-process mesh for callers that want it.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["DATA_AXIS", "make_mesh", "local_mesh", "batch_plan", "batch_sharding", "replicated",
           "place_batch", "pad_to_multiple", "process_shard"]

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def local_mesh() -> Mesh:
  """A 1-D mesh over this process's devices."""
  return make_mesh(jax.local_devices())


def batch_plan(batch: int, num_items: int, devices=None) -> tuple[Mesh | None, int]:
  """``(mesh, batch)`` for running ``num_items`` images in fixed batches over ``devices``.

  The batch is capped at ``num_items``, then rounded up to a multiple of the
  device count so every device gets the same number of images (padding is the
  caller's, see :func:`pad_to_multiple`). Fewer images than devices use as many
  devices as images; one device, or one image, gives ``mesh=None``: plain
  single-device execution.
  """
  devices = jax.local_devices() if devices is None else list(devices)
  if batch < 1:
    raise ValueError(f"batch must be >= 1, got {batch}")
  batch = max(1, min(batch, num_items))
  n = min(len(devices), num_items)
  if n > 1:
    return make_mesh(devices[:n]), -(-batch // n) * n
  return None, batch


def process_shard(items, process_index: int | None = None, process_count: int | None = None):
  """This process's share of ``items``: every ``process_count``-th, starting at its index.

  Deterministic and disjoint; together the processes cover every item once.
  """
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  if not 0 <= pi < pc:
    raise ValueError(f"process index {pi} outside [0, {pc})")
  return list(items)[pi::pc]


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


def map_images(fn, mesh: Mesh | None):
  """``jit(vmap(fn))`` over a leading image axis of every argument and output; with a mesh, each
  device maps over its own images (``shard_map``), so per-image weights (generator copies) are
  never split by the SPMD partitioner (which fails on their grouped convolutions)."""
  batched = jax.vmap(fn)
  if mesh is None:
    return jax.jit(batched)
  spec = P(DATA_AXIS)
  return jax.jit(jax.shard_map(batched, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False))
