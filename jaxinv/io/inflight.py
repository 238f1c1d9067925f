"""In-flight checkpoints: the state of a batch that is still running, so a killed run resumes.

``ROOT/<batch id>/`` holds ``meta.json`` (the batch's items) and, after each finished chunk,
``step_<N>/`` (an orbax checkpoint of the state, written to a temporary directory and renamed,
so it is either complete or absent) with ``records_<N>.npz`` beside it: what the run recorded
up to step N (per-step losses, …), written *before* the state, so a complete ``step_<N>``
always has its records. Older steps are removed once a newer one is complete.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time

import jax
import numpy as np

from jaxinv.io.checkpoints import process_local_checkpointer

__all__ = ["InflightStore", "BatchCheckpoint", "PAUSE_ENV"]

_STEP_DIR = re.compile(r"^step_(\d+)$")


class InflightStore:
  """Orbax checkpoints of in-flight batches under ``root`` (e.g. ``RUN_DIR/inflight``)."""

  def __init__(self, run_dir: str, subdir: str = "inflight"):
    self.root = os.path.join(run_dir, subdir)
    os.makedirs(self.root, exist_ok=True)

  def _dir(self, batch_id):
    return os.path.join(self.root, batch_id)

  def save(self, batch_id: str, items: list, state, step: int, records: dict | None = None):
    """Saves ``state`` (any pytree) after ``step`` steps; older steps of the batch are removed.

    ``records``: NumPy arrays recorded so far (restored with the state).
    """
    from jaxinv.io.checkpoints import atomic_write_bytes, atomic_write_json
    d = self._dir(batch_id)
    os.makedirs(d, exist_ok=True)
    meta = os.path.join(d, "meta.json")
    if not os.path.exists(meta):
      atomic_write_json(meta, {"items": items})
    if records is not None:
      buf = io.BytesIO()
      np.savez(buf, **{k: np.asarray(v) for k, v in records.items()})
      atomic_write_bytes(os.path.join(d, f"records_{step:08d}.npz"), buf.getvalue())
    leaves = jax.tree_util.tree_leaves(state)
    tree = {f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    target = os.path.join(d, f"step_{step:08d}")
    if os.path.exists(target):
      shutil.rmtree(target)
    process_local_checkpointer().save(os.path.abspath(target), tree)
    for name in os.listdir(d):
      m = _STEP_DIR.match(name)
      if (m and int(m.group(1)) < step) or (name.startswith("step_") and not m):
        shutil.rmtree(os.path.join(d, name), ignore_errors=True)   # older, or torn by a kill
      elif name.startswith("records_") and name != f"records_{step:08d}.npz":
        try:
          if int(name[8:16]) < step:
            os.remove(os.path.join(d, name))
        except (ValueError, OSError):
          pass

  def _steps(self, d):
    if not os.path.isdir(d):
      return []
    return sorted(int(m.group(1)) for m in map(_STEP_DIR.match, os.listdir(d)) if m)

  def restore(self, batch_id: str, like, with_records: bool = False):
    """``(state, step)`` of the latest complete checkpoint, structured as ``like``; else ``None``.

    ``with_records``: ``(state, step, records)``, records ``{}`` when none were saved.
    """
    d = self._dir(batch_id)
    steps = self._steps(d)
    if not steps:
      return None
    leaves, treedef = jax.tree_util.tree_flatten(like)
    tree = process_local_checkpointer().restore(
        os.path.abspath(os.path.join(d, f"step_{steps[-1]:08d}")))
    restored = [np.asarray(tree[f"leaf_{i:04d}"]) for i in range(len(leaves))]
    for got, want in zip(restored, leaves):
      if got.shape != np.shape(want):
        raise ValueError(f"in-flight checkpoint {d} does not match this batch "
                         f"(shape {got.shape} vs {np.shape(want)}); delete it to start over")
    state = jax.tree_util.tree_unflatten(treedef, restored)
    if not with_records:
      return state, steps[-1]
    records = {}
    path = os.path.join(d, f"records_{steps[-1]:08d}.npz")
    if os.path.exists(path):
      with np.load(path, allow_pickle=False) as f:
        records = {k: f[k] for k in f.files}
    return state, steps[-1], records

  def remove(self, batch_id: str):
    shutil.rmtree(self._dir(batch_id), ignore_errors=True)

  def remove_finished(self, done: set, suffix: str = ""):
    """Deletes checkpoints (of this process's suffix) whose items all finished already."""
    for name in os.listdir(self.root):
      if not name.endswith(suffix) or (not suffix and ".process-" in name):
        continue
      meta = os.path.join(self.root, name, "meta.json")
      try:
        with open(meta) as f:
          items = json.load(f)["items"]
      except (OSError, ValueError, KeyError):
        continue
      if all(tuple(k) in done for k in items):
        self.remove(name)


#: Seconds to sleep after every in-flight save (tests only: a window for a kill -9).
PAUSE_ENV = "JAXINV_PAUSE_AFTER_CHECKPOINT"


class BatchCheckpoint:
  """One batch's handle on an :class:`InflightStore` (what a method sees)."""

  def __init__(self, store: InflightStore, batch_id: str, items: list):
    self.store, self.batch_id, self.items = store, batch_id, items

  def save(self, state, step: int, records: dict | None = None):
    self.store.save(self.batch_id, self.items, state, step, records)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if pause:
      time.sleep(pause)

  def latest_step(self) -> int | None:
    """The step of the latest complete checkpoint (what :meth:`restore` would continue), or None."""
    steps = self.store._steps(self.store._dir(self.batch_id))
    return steps[-1] if steps else None

  def restore(self, like):
    """``(state, step, records)`` or ``None``."""
    return self.store.restore(self.batch_id, like, with_records=True)
