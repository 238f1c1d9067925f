"""A run directory's durable records: ``results*.jsonl`` (append-only) and in-flight checkpoints.

``RUN_DIR/results.jsonl`` holds one JSON object a line, one per finished
(config, image). A batch's lines go to disk in ONE ``write(2)`` on an
``O_APPEND`` descriptor, then ``fsync``: a ``kill -9`` leaves either all of them
or none (at worst a torn last line, which readers skip). Several processes write
``results.process-i-of-P.jsonl`` each (no shared file, no collision);
:func:`read_results` merges every ``results*.jsonl`` and drops duplicates.

``RUN_DIR/inflight/<batch id>/`` holds a batch's optimiser state after its last
finished chunk (orbax, written to a temporary directory and renamed, so a
checkpoint is either complete or absent) and ``meta.json`` naming its items.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

import jax
import numpy as np

__all__ = ["append_records", "read_results", "result_key", "InflightStore"]


def result_key(rec: dict) -> tuple[str, str]:
  return rec["config_hash"], rec["image"]


def append_records(path: str, records: list[dict]):
  """Appends ``records`` as JSON lines with one ``write`` + ``fsync`` (all or nothing)."""
  if not records:
    return
  data = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records).encode()
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    written = os.write(fd, data)
    if written != len(data):
      raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    os.fsync(fd)
  finally:
    os.close(fd)


def read_results(run_dir: str) -> list[dict]:
  """Every finished record of the run (all processes' files), first occurrence of each key kept.

  Sorted by ``(config_hash, image)`` so two runs of one sweep compare equal.
  """
  seen, out = set(), []
  for path in sorted(glob.glob(os.path.join(run_dir, "results*.jsonl"))):
    with open(path, "rb") as f:
      data = f.read()
    for line in data.split(b"\n")[:-1]:       # the part after the last newline is torn or empty
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError:
        continue
      k = result_key(rec)
      if k not in seen:
        seen.add(k)
        out.append(rec)
  return sorted(out, key=result_key)


_STEP_DIR = re.compile(r"^step_(\d+)$")


class InflightStore:
  """Orbax checkpoints of in-flight batches under ``RUN_DIR/inflight``."""

  def __init__(self, run_dir: str):
    self.root = os.path.join(run_dir, "inflight")
    os.makedirs(self.root, exist_ok=True)

  def _dir(self, batch_id):
    return os.path.join(self.root, batch_id)

  def save(self, batch_id: str, items: list, state, step: int):
    """Saves ``state`` (any pytree) after ``step`` steps; older steps of the batch are removed."""
    import orbax.checkpoint as ocp
    d = self._dir(batch_id)
    os.makedirs(d, exist_ok=True)
    meta = os.path.join(d, "meta.json")
    if not os.path.exists(meta):
      from jaxinv.io.checkpoints import atomic_write_json
      atomic_write_json(meta, {"items": items})
    leaves = jax.tree_util.tree_leaves(state)
    tree = {f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    target = os.path.join(d, f"step_{step:08d}")
    if os.path.exists(target):
      shutil.rmtree(target)
    ocp.PyTreeCheckpointer().save(os.path.abspath(target), tree)
    for name in os.listdir(d):
      m = _STEP_DIR.match(name)
      if (m and int(m.group(1)) < step) or (name.startswith("step_") and not m):
        shutil.rmtree(os.path.join(d, name), ignore_errors=True)   # older, or torn by a kill

  def _steps(self, d):
    if not os.path.isdir(d):
      return []
    return sorted(int(m.group(1)) for m in map(_STEP_DIR.match, os.listdir(d)) if m)

  def restore(self, batch_id: str, like):
    """``(state, step)`` of the latest complete checkpoint, structured as ``like``; else ``None``."""
    import orbax.checkpoint as ocp
    d = self._dir(batch_id)
    steps = self._steps(d)
    if not steps:
      return None
    leaves, treedef = jax.tree_util.tree_flatten(like)
    tree = ocp.PyTreeCheckpointer().restore(os.path.abspath(os.path.join(d, f"step_{steps[-1]:08d}")))
    restored = [np.asarray(tree[f"leaf_{i:04d}"]) for i in range(len(leaves))]
    for got, want in zip(restored, leaves):
      if got.shape != np.shape(want):
        raise ValueError(f"in-flight checkpoint {d} does not match this batch "
                         f"(shape {got.shape} vs {np.shape(want)}); delete it to start over")
    return jax.tree_util.tree_unflatten(treedef, restored), steps[-1]

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
