"""Read PyTorch checkpoint files (``torch.save`` output) into NumPy, without PyTorch.

The reader is a restricted unpickler: it knows the handful of globals that a
``torch.save`` of tensors, dicts and plain Python values refers to, and refuses
every other global. A file that carries pickled code (a module class, a lambda,
``os.system``...) is therefore rejected before anything in it runs, the same
guarantee as ``torch.load(weights_only=True)``.

Both container formats are read:

* the zip format (torch >= 1.6): ``<name>/data.pkl`` + ``<name>/data/<key>``;
* the legacy format (torch < 1.6): magic number, protocol, sys-info, the object
  pickle, the storage-key list, then each storage's raw bytes.

``.xz``-compressed checkpoints are decompressed transparently.

Non-tensor objects that training checkpoints carry (``argparse.Namespace``)
come back as :class:`SafeNamespace`, a plain attribute bag.
"""

from __future__ import annotations

import collections
import io
import lzma
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

__all__ = ["CheckpointError", "SafeNamespace", "load", "load_storage_stream", "UnsafeCheckpointError"]


class CheckpointError(ValueError):
  """A checkpoint file cannot be read (truncated, not a checkpoint, wrong format)."""


class UnsafeCheckpointError(CheckpointError):
  """A checkpoint file references code; it is refused and nothing in it ran."""


class SafeNamespace:
  """Stand-in for ``argparse.Namespace`` (and similar attribute bags) in checkpoints."""

  def __init__(self, **kwargs):
    self.__dict__.update(kwargs)

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.__dict__.update(state)

  def __repr__(self):
    return f"SafeNamespace({self.__dict__!r})"


_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

_TORCH_DTYPES = {
    "float64": np.float64, "double": np.float64,
    "float32": np.float32, "float": np.float32,
    "float16": np.float16, "half": np.float16,
    "bfloat16": "bfloat16",
    "int64": np.int64, "long": np.int64,
    "int32": np.int32, "int": np.int32,
    "int16": np.int16, "short": np.int16,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


def _np_dtype(dtype):
  if isinstance(dtype, str) and dtype == "bfloat16":
    import ml_dtypes  # shipped with jax
    return np.dtype(ml_dtypes.bfloat16)
  return np.dtype(dtype)


class _StorageType:
  """What ``torch.FloatStorage`` and friends unpickle to: just a dtype."""

  def __init__(self, name):
    if name not in _STORAGE_DTYPES:
      raise UnsafeCheckpointError(f"unsupported storage type torch.{name}")
    self.name = name
    self.dtype = _np_dtype(_STORAGE_DTYPES[name])


class _TorchDtype:
  def __init__(self, name):
    self.name = name
    self.dtype = _np_dtype(_TORCH_DTYPES[name])


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """``torch._utils._rebuild_tensor_v2`` as a strided view into a flat NumPy storage."""
  size = tuple(int(s) for s in size)
  stride = tuple(int(s) for s in stride)
  itemsize = storage.dtype.itemsize
  if not size:
    return np.array(storage[storage_offset], dtype=storage.dtype)
  extent = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
  if any(n == 0 for n in size):
    return np.zeros(size, storage.dtype)
  if extent > storage.size:
    raise CheckpointError(
        f"tensor of shape {size} needs {extent} elements but its storage has {storage.size}; "
        "the file is truncated or corrupt")
  view = np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride))
  return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  return data


def _ordered_dict(*args):
  return collections.OrderedDict(*args)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("argparse", "Namespace"): SafeNamespace,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
}


class _RestrictedUnpickler(pickle.Unpickler):

  def __init__(self, file, load_storage, rebuild_tensor=_rebuild_tensor):
    super().__init__(file, encoding="latin1")
    self._load_storage = load_storage
    self._rebuild_tensor = rebuild_tensor

  def find_class(self, module, name):
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return self._rebuild_tensor
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    if module == "torch" and name in _TORCH_DTYPES:
      return _TorchDtype(name)
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    raise UnsafeCheckpointError(
        f"the checkpoint references the Python object {module}.{name}; only tensors and plain "
        "containers are read (as torch.load(weights_only=True) does). Re-save the file as a "
        "state_dict: torch.save(model.state_dict(), path)")

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise CheckpointError(f"unknown persistent id {pid!r} in checkpoint")
    return self._load_storage(pid)


def _storage_dtype(storage_type):
  if isinstance(storage_type, _StorageType):
    return storage_type.dtype
  if isinstance(storage_type, _TorchDtype):
    return storage_type.dtype
  raise CheckpointError(f"unknown storage type {storage_type!r}")


def _load_zip(zf: zipfile.ZipFile):
  names = zf.namelist()
  pkl = [n for n in names if n.endswith("data.pkl")]
  if not pkl:
    raise CheckpointError("zip archive without data.pkl: not a torch.save checkpoint")
  prefix = pkl[0][: -len("data.pkl")]
  cache = {}

  def load_storage(pid):
    _, storage_type, key, _location, numel = pid[:5]
    if key not in cache:
      dtype = _storage_dtype(storage_type)
      try:
        raw = zf.read(f"{prefix}data/{key}")
      except KeyError as e:
        raise CheckpointError(f"storage {key} missing from the archive (truncated file?)") from e
      except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(f"storage {key} cannot be read: {e}") from e
      arr = np.frombuffer(raw, dtype=dtype)
      if arr.size < int(numel):
        raise CheckpointError(f"storage {key} holds {arr.size} of {numel} elements (truncated file)")
      cache[key] = arr
    return cache[key]

  with zf.open(pkl[0]) as f:
    return _RestrictedUnpickler(io.BytesIO(f.read()), load_storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _load_legacy(f: BinaryIO):
  obj, storages = _read_legacy(f)
  return _resolve(obj, storages)


def load_storage_stream(data: bytes) -> np.ndarray:
  """The flat array of a legacy ``torch.save`` stream holding one bare storage.

  NVIDIA network pickles embed each tensor's storage this way
  (``torch.storage._load_from_bytes``); the stream is read by the same
  restricted unpickler as a whole checkpoint.
  """
  obj, storages = _read_legacy(io.BytesIO(data))
  if not isinstance(obj, str) or obj not in storages or len(storages) != 1:
    raise CheckpointError("embedded storage stream does not hold exactly one storage")
  return storages[obj][2]


def _read_legacy(f: BinaryIO):
  def plain_load():
    return _RestrictedUnpickler(f, _no_storage).load()

  magic = plain_load()
  if magic != _LEGACY_MAGIC:
    raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
  plain_load()  # protocol version
  plain_load()  # sys info
  storages = {}
  lazy_tensors = []

  def load_storage(pid):
    _, storage_type, key, _location, numel, *unused_view = pid
    storages.setdefault(key, [_storage_dtype(storage_type), int(numel), None])
    return key

  def rebuild(key, offset, size, stride, *unused):
    tensor = _LazyTensor(key, offset, size, stride)
    lazy_tensors.append(tensor)
    return tensor

  obj = _RestrictedUnpickler(f, load_storage, rebuild).load()
  for key in plain_load():
    dtype, numel, _ = storages[key]
    (n,) = struct.unpack("<q", f.read(8))
    raw = f.read(n * dtype.itemsize)
    if len(raw) < n * dtype.itemsize or n < numel:
      raise CheckpointError(f"storage {key} truncated")
    storages[key][2] = np.frombuffer(raw, dtype=dtype)
  return obj, storages


class _LazyTensor:
  """A tensor of a legacy-format file, whose storage bytes come after the pickle."""

  def __init__(self, key, offset, size, stride):
    self.key, self.offset, self.size, self.stride = key, offset, size, stride


def _resolve(obj, storages):
  if isinstance(obj, _LazyTensor):
    return _rebuild_tensor(storages[obj.key][2], obj.offset, obj.size, obj.stride)
  if isinstance(obj, dict):
    return type(obj)((k, _resolve(v, storages)) for k, v in obj.items())
  if isinstance(obj, list):
    return [_resolve(v, storages) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_resolve(v, storages) for v in obj)
  if isinstance(obj, SafeNamespace):
    obj.__dict__.update({k: _resolve(v, storages) for k, v in obj.__dict__.items()})
  return obj


def _no_storage(pid):
  raise CheckpointError("unexpected storage reference in checkpoint header")


def load(path: str | os.PathLike) -> Any:
  """Loads a ``torch.save`` file as nested Python containers of NumPy arrays.

  Args:
    path: a ``.pth``/``.pt`` file (zip or legacy format), optionally ``.xz``-compressed.

  Returns:
    The saved object with every tensor replaced by a contiguous ``np.ndarray`` in
    PyTorch's layout (e.g. conv weights OIHW).

  Raises:
    CheckpointError: the file is missing, truncated or not a torch checkpoint.
    UnsafeCheckpointError: the file references Python code (it is never executed).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: no such file")
  with open(path, "rb") as f:
    data = f.read()
  if data[:6] == b"\xfd7zXZ\x00":
    try:
      data = lzma.decompress(data)
    except lzma.LZMAError as e:
      raise CheckpointError(f"{path}: corrupt .xz stream: {e}") from e
  if not data:
    raise CheckpointError(f"{path}: empty file")
  try:
    if data[:4] == b"PK\x03\x04":
      try:
        zf = zipfile.ZipFile(io.BytesIO(data))
      except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: truncated or corrupt zip checkpoint ({e})") from e
      with zf:
        return _load_zip(zf)
    return _load_legacy(io.BytesIO(data))
  except UnsafeCheckpointError as e:
    raise UnsafeCheckpointError(f"{path}: {e}") from None
  except CheckpointError as e:
    raise CheckpointError(f"{path}: {e}") from None
  except (pickle.UnpicklingError, EOFError, struct.error, ValueError, IndexError, TypeError) as e:
    raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def flatten_state_dict(obj, prefix: str = "") -> dict[str, np.ndarray]:
  """Flattens nested dicts of arrays into ``{"a.b.c": array}`` (state_dict style)."""
  out = {}
  if isinstance(obj, dict):
    for k, v in obj.items():
      out.update(flatten_state_dict(v, f"{prefix}{k}."))
  elif isinstance(obj, np.ndarray):
    out[prefix[:-1]] = obj
  return out
