"""Per-image parameter deltas (PTI: tuned minus original generator parameters) on disk.

``DIR/`` is one orbax checkpoint of the delta tree, every leaf with a leading image axis
``[B, ...]``, plus ``DIR/deltas.json``: ``{"names": [B image names], "sha256": {leaf path:
digest of its float32 bytes}}``. The digests make any change to the stored values an error
instead of a silently different generator. Written atomically (a temporary sibling renamed
into place), so a failed run leaves no partial folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

__all__ = ["DeltaError", "save_deltas", "load_deltas", "INDEX_FILE"]

INDEX_FILE = "deltas.json"
_TREE_SUBDIR = "tree"


class DeltaError(ValueError):
  """DIR is missing, incomplete, corrupt, or does not fit the generator / the result."""


def flatten(tree, prefix=""):
  """Nested dicts -> ``{"a/b": float32 array}``; :func:`nest` inverts it."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}/"))
    else:
      out[prefix + str(k)] = np.asarray(v, np.float32)
  return out


def _digest(a) -> str:
  return hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest()


def save_deltas(path, tree: dict, names) -> str:
  """Writes ``tree`` (nested dicts, leaves ``[B, ...]``) and the ``B`` image ``names`` to ``path``."""
  from jaxinv.io.checkpoints import process_local_checkpointer, publish_mode
  path = os.path.abspath(os.fspath(path))
  flat = flatten(tree)
  names = [str(n) for n in names]
  bad = [k for k, v in flat.items() if v.ndim < 1 or v.shape[0] != len(names)]
  if bad:
    raise ValueError(f"delta leaves {bad[:3]} have no leading axis of {len(names)} images")
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=parent)
  try:
    # Only the first process of a multi-process run writes the result: no cross-process barrier.
    process_local_checkpointer().save(os.path.join(tmp, _TREE_SUBDIR), nest(flat))
    with open(os.path.join(tmp, INDEX_FILE), "w") as f:
      json.dump({"names": names, "sha256": {k: _digest(v) for k, v in flat.items()}}, f, indent=1)
    publish_mode(tmp, directory=True)
    if os.path.exists(path):
      shutil.rmtree(path)
    os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return path


def load_deltas(path, names=None, like: dict | None = None) -> dict:
  """Reads a :func:`save_deltas` folder back as nested dicts of ``[B, ...]`` float32 arrays.

  Args:
    names: the result's image names; the folder must hold deltas for exactly these, in order.
    like: a parameter tree (no image axis) the deltas must fit: same leaf paths, each leaf
      ``[B, *like_leaf.shape]``.
  Raises:
    DeltaError: one line naming the problem.
  """
  from jaxinv.io.checkpoints import process_local_checkpointer
  path = os.fspath(path)
  redo = "rerun jaxinv invert --method pti to write it again"
  index_file = os.path.join(path, INDEX_FILE)
  if not os.path.isdir(path):
    raise DeltaError(f"{path}: the PTI generator deltas are missing (a PTI result keeps them "
                     f"beside its result.npz); {redo}")
  try:
    with open(index_file) as f:
      index = json.load(f)
    stored_names, digests = [str(n) for n in index["names"]], dict(index["sha256"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise DeltaError(f"{path}: unreadable {INDEX_FILE} ({type(e).__name__}); {redo}") from None
  try:
    tree = process_local_checkpointer().restore(os.path.join(path, _TREE_SUBDIR))
  except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types for a damaged folder
    first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    raise DeltaError(f"{path}: the delta checkpoint cannot be read ({first}); {redo}") from None
  flat = flatten(tree) if isinstance(tree, dict) else {}
  if set(flat) != set(digests):
    raise DeltaError(f"{path}: the checkpoint's arrays do not match {INDEX_FILE}; {redo}")
  changed = sorted(k for k, v in flat.items() if _digest(v) != digests[k])
  if changed:
    raise DeltaError(f"{path}: stored values changed since they were written ({changed[0]}"
                     f"{' and more' if len(changed) > 1 else ''}); {redo}")
  if names is not None and [str(n) for n in names] != stored_names:
    raise DeltaError(f"{path}: holds deltas of {stored_names[:3]}... but the result names "
                     f"{[str(n) for n in names][:3]}...; keep each result.npz with its own deltas/")
  if like is not None:
    want = {k: v.shape for k, v in flatten(like).items()}
    if set(want) != set(flat) or any(flat[k].shape != (len(stored_names),) + tuple(want[k])
                                     for k in want):
      raise DeltaError(f"{path}: the deltas do not fit this generator's parameters (made with "
                       "another generator?); edit with the generator the PTI run used")
  return nest(flat)


def nest(flat: dict) -> dict:
  """``{"a/b": array}`` -> nested dicts (inverse of :func:`flatten`)."""
  tree: dict = {}
  for k, v in flat.items():
    *parents, leaf = k.split("/")
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree
