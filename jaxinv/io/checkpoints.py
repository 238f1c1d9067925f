"""The converted-model directory: ``DEST/config.json`` + ``DEST/params`` (an orbax checkpoint).

``config.json`` holds ``{"family": NAME, "config": {...architecture...}, "extras": {...},
"source": ..., "jaxinv_version": ...}``. ``family`` names an entry of
:data:`jaxinv.models.registry.FAMILIES`, which rebuilds the Flax module from
``config``. ``params`` is the parameter pytree (nested dicts of float32 arrays,
names mirroring the source checkpoint's keys).

Writes are atomic: everything goes to a temporary sibling directory that is
renamed into place at the end, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

__all__ = ["ModelDirError", "save_model", "load_model_dir", "read_config", "atomic_file",
           "atomic_write_bytes", "atomic_write_json", "atomic_write_npz", "publish_mode",
           "current_umask", "process_local_checkpointer"]

PARAMS_SUBDIR = "params"
CONFIG_FILE = "config.json"


class ModelDirError(ValueError):
  """DEST is not a converted-model directory."""


def _to_numpy_tree(tree):
  if isinstance(tree, dict):
    return {str(k): _to_numpy_tree(v) for k, v in tree.items()}
  return np.asarray(tree)


def save_model(dest: str | os.PathLike, family: str, config: Any, params: dict,
               extras: dict | None = None, source: str | None = None, overwrite: bool = False):
  """Writes a converted model to ``dest`` atomically.

  Args:
    dest: target directory; must not exist unless ``overwrite``.
    family: model family name (key of ``jaxinv.models.registry.FAMILIES``).
    config: the family's architecture config (a dataclass or a JSON-able dict).
    params: parameter pytree (nested dicts of arrays).
    extras: other JSON-able settings (truncation defaults, noise mode, ...).
    source: where the weights came from (recorded, not used).
    overwrite: replace an existing ``dest``.
  """
  from jaxinv import __version__

  dest = os.path.abspath(os.fspath(dest))
  if os.path.exists(dest) and not overwrite:
    raise ModelDirError(f"{dest} already exists; pass --overwrite or choose another DEST")
  if dataclasses.is_dataclass(config):
    config = dataclasses.asdict(config)
  parent = os.path.dirname(dest) or "."
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(dest) + "-", dir=parent)
  try:
    process_local_checkpointer().save(os.path.join(tmp, PARAMS_SUBDIR), _to_numpy_tree(params))
    meta = {"family": family, "config": config, "extras": extras or {}, "source": source,
            "jaxinv_version": __version__}
    with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
      json.dump(meta, f, indent=1, sort_keys=True)
    publish_mode(tmp, directory=True)
    if os.path.exists(dest):
      shutil.rmtree(dest)
    os.replace(tmp, dest)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def read_config(dest: str | os.PathLike) -> dict:
  """Returns the parsed ``config.json`` of a converted-model directory."""
  dest = os.fspath(dest)
  path = os.path.join(dest, CONFIG_FILE)
  if not os.path.isfile(path):
    raise ModelDirError(
        f"{dest} is not a converted model (no {CONFIG_FILE}); convert a checkpoint first: "
        f"jaxinv convert CHECKPOINT.pth {dest}")
  with open(path) as f:
    return json.load(f)


def load_model_dir(dest: str | os.PathLike) -> tuple[dict, dict]:
  """Reads a converted-model directory.

  Returns:
    ``(meta, params)``: the ``config.json`` dict and the parameter pytree (NumPy arrays).
  """
  import orbax.checkpoint as ocp

  meta = read_config(dest)
  params_dir = os.path.join(os.path.abspath(os.fspath(dest)), PARAMS_SUBDIR)
  if not os.path.isdir(params_dir):
    raise ModelDirError(f"{dest}: missing {PARAMS_SUBDIR}/ (incomplete conversion?)")
  params = ocp.PyTreeCheckpointer().restore(params_dir)
  params = _to_numpy_tree(params)
  return meta, params


def current_umask() -> int:
  """The process umask, read without changing it where the OS allows (Linux /proc)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def publish_mode(path: str | os.PathLike, directory: bool = False):
  """Gives a temporary file (0600) or directory (0700) the mode a plain ``open`` / ``mkdir``
  would have given it: 0666 / 0777 less the umask (so 0644 / 0755 under the usual 022)."""
  os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ""):
  """A binary file object whose contents appear at ``path`` only when the block ends without an
  error (a temporary file beside it, then a rename; mode 0666 & ~umask)."""
  path = os.fspath(path)
  d = os.path.dirname(os.path.abspath(path))
  os.makedirs(d, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=d)
  try:
    with os.fdopen(fd, "wb") as f:
      yield f
    publish_mode(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes):
  """Writes ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
  with atomic_file(path) as f:
    f.write(data)


def atomic_write_npz(path: str | os.PathLike, arrays: dict):
  """Writes ``arrays`` as an uncompressed ``.npz`` atomically, streamed (no second in-memory copy)."""
  with atomic_file(path, suffix=".npz") as f:
    np.savez(f, **arrays)


def atomic_write_json(path: str | os.PathLike, obj: Any):
  atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default)
                            + "\n").encode())


def _json_default(o):
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  if dataclasses.is_dataclass(o):
    return dataclasses.asdict(o)
  return str(o)


def process_local_checkpointer():
  """An orbax checkpointer that involves this process only. Orbax's default synchronises every
  save with all processes of a ``jax.distributed`` job, so a save that one process makes alone
  (its in-flight batch, the first process's outputs) would wait for the others forever."""
  import jax
  import orbax.checkpoint as ocp
  if jax.process_count() == 1:
    return ocp.PyTreeCheckpointer()
  me = jax.process_index()
  options = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                               barrier_sync_key_prefix=f"jaxinv-local-{me}")
  return ocp.Checkpointer(ocp.PyTreeCheckpointHandler(multiprocessing_options=options),
                          multiprocessing_options=options)
