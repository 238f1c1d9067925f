"""In-flight checkpoints: the state of a batch that is still running, so a killed run resumes.

``ROOT/<batch id>/`` holds ``meta.json`` (the batch's items) and, after each finished chunk,
``step_<N>.npz``: the state's leaves and what the run recorded up to step N (per-step losses,
…), written to a temporary file and renamed, so it is either complete or absent. Older steps
are removed once a newer one is complete.

The state is NumPy's ``.npz`` rather than an orbax checkpoint: each process of a multi-process
run checkpoints its own batches alone, and orbax writes NumPy leaves from the first process
only (the others' checkpoints would hold no data).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time

import jax
import numpy as np

__all__ = ["InflightStore", "BatchCheckpoint", "PAUSE_ENV"]

_STEP_FILE = re.compile(r"^step_(\d+)\.npz$")
_LEAF, _RECORD = "leaf_", "record/"


def _step_file(step: int) -> str:
  return f"step_{step:08d}.npz"


def _as_dtype_of(got: np.ndarray, like) -> np.ndarray:
  """``.npz`` keeps dtypes NumPy does not know (bfloat16, …) as raw bytes: view them back."""
  want = np.dtype(getattr(like, "dtype", np.asarray(like).dtype))
  if got.dtype.kind == "V" and got.dtype != want and got.dtype.itemsize == want.itemsize:
    return got.view(want)
  return got


class InflightStore:
  """Checkpoints of in-flight batches under ``root`` (e.g. ``RUN_DIR/inflight``)."""

  def __init__(self, run_dir: str, subdir: str = "inflight"):
    self.root = os.path.join(run_dir, subdir)
    os.makedirs(self.root, exist_ok=True)

  def _dir(self, batch_id):
    return os.path.join(self.root, batch_id)

  def save(self, batch_id: str, items: list, state, step: int, records: dict | None = None):
    """Saves ``state`` (any pytree) after ``step`` steps; older steps of the batch are removed.

    ``records``: NumPy arrays recorded so far (restored with the state).
    """
    from jaxinv.io.checkpoints import atomic_write_json, atomic_write_npz
    d = self._dir(batch_id)
    os.makedirs(d, exist_ok=True)
    meta = os.path.join(d, "meta.json")
    if not os.path.exists(meta):
      atomic_write_json(meta, {"items": items})
    arrays = {f"{_LEAF}{i:04d}": np.asarray(x)
              for i, x in enumerate(jax.tree_util.tree_leaves(state))}
    arrays.update({f"{_RECORD}{k}": np.asarray(v) for k, v in (records or {}).items()})
    atomic_write_npz(os.path.join(d, _step_file(step)), arrays)
    for name in os.listdir(d):
      m = _STEP_FILE.match(name)
      stale = not m and name.startswith(("step_", "records_", ".tmp-"))
      if (m and int(m.group(1)) < step) or stale:
        path = os.path.join(d, name)   # older, torn by a kill, or left by an older jaxinv
        if os.path.isdir(path):
          shutil.rmtree(path, ignore_errors=True)
        else:
          with contextlib.suppress(OSError):
            os.remove(path)

  def _steps(self, d):
    if not os.path.isdir(d):
      return []
    return sorted(int(m.group(1)) for m in map(_STEP_FILE.match, os.listdir(d)) if m)

  def restore(self, batch_id: str, like, with_records: bool = False):
    """``(state, step)`` of the latest complete checkpoint, structured as ``like``; else ``None``.

    ``with_records``: ``(state, step, records)``, records ``{}`` when none were saved.
    """
    d = self._dir(batch_id)
    steps = self._steps(d)
    if not steps:
      return None
    leaves, treedef = jax.tree_util.tree_flatten(like)
    path = os.path.join(d, _step_file(steps[-1]))
    with np.load(path, allow_pickle=False) as f:
      stored = {k: f[k] for k in f.files}
    restored = [stored.get(f"{_LEAF}{i:04d}") for i in range(len(leaves))]
    extra = sum(k.startswith(_LEAF) for k in stored) - len(leaves)
    for got, want in zip(restored, leaves):
      if got is None or extra or got.shape != np.shape(want):
        found = "another structure" if got is None or extra else f"shape {got.shape} vs {np.shape(want)}"
        raise ValueError(f"in-flight checkpoint {d} does not match this batch ({found}); "
                         "delete it to start over")
    restored = [_as_dtype_of(got, want) for got, want in zip(restored, leaves)]
    state = jax.tree_util.tree_unflatten(treedef, restored)
    if not with_records:
      return state, steps[-1]
    records = {k[len(_RECORD):]: v for k, v in stored.items() if k.startswith(_RECORD)}
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
