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

:func:`load_numpy_pickle` reads the other common weight format, a plain ``pickle.dump``
of nested dicts of NumPy arrays (what Flax projects ship), with the same guarantee: the
three NumPy globals such a file names are replaced by inert builders that accept only
numeric dtypes and raw bytes.
"""

from __future__ import annotations

import collections
import contextlib
import io
import lzma
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from typing import Any, BinaryIO

import numpy as np

from jaxinv.io.errors import InputFileError, one_line

__all__ = ["CheckpointError", "SafeNamespace", "load", "load_numpy_pickle", "load_storage_stream",
           "UnsafeCheckpointError"]


class CheckpointError(InputFileError):
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


class _Sealed:
  """Refuses pickle's BUILD, so a stream cannot set attributes on what ``find_class`` returned."""

  def __setstate__(self, state):
    raise CheckpointError("the pickle sets state on a type or function; the file is corrupt")


class _AllowedCallable(_Sealed):
  """A fresh, sealed handle on an allow-listed function for each reference in the stream."""

  __slots__ = ("_fn",)

  def __init__(self, fn):
    self._fn = fn

  def __call__(self, *args):
    return self._fn(*args)


class _StorageType(_Sealed):
  """What ``torch.FloatStorage`` and friends unpickle to: just a dtype."""

  def __init__(self, name):
    if name not in _STORAGE_DTYPES:
      raise UnsafeCheckpointError(f"unsupported storage type torch.{name}")
    self.name = name
    self.dtype = _np_dtype(_STORAGE_DTYPES[name])


class _TorchDtype(_Sealed):
  def __init__(self, name):
    self.name = name
    self.dtype = _np_dtype(_TORCH_DTYPES[name])


# An expanded (stride-0) tensor is materialised; a larger one than this is a corrupt size field.
_MAX_BROADCAST_ELEMENTS = 1 << 28


def _index_tuple(value, what):
  if not isinstance(value, (tuple, list)) or not all(
      isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
    raise CheckpointError(f"tensor {what} {one_line(repr(value), 80)} is not a tuple of "
                          "non-negative integers; the file is corrupt")
  return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """``torch._utils._rebuild_tensor_v2`` as a strided view into a flat NumPy storage."""
  if not isinstance(storage, np.ndarray) or storage.ndim != 1:
    raise CheckpointError("a tensor is built from something that is not a storage; "
                          "the file is corrupt")
  (storage_offset,) = _index_tuple((storage_offset,), "offset")
  size = _index_tuple(size, "size")
  stride = _index_tuple(stride, "stride")
  if len(size) != len(stride):
    raise CheckpointError(f"tensor size {size} and stride {stride} differ in length; "
                          "the file is corrupt")
  itemsize = storage.dtype.itemsize
  if not size:
    if storage_offset >= storage.size:
      raise CheckpointError(f"scalar tensor at offset {storage_offset} of a storage of "
                            f"{storage.size} elements; the file is truncated or corrupt")
    return np.array(storage[storage_offset], dtype=storage.dtype)
  extent = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
  if any(n == 0 for n in size):
    return np.zeros(size, storage.dtype)
  numel = int(np.prod(size, dtype=object))
  if numel > storage.size and (0 not in stride or numel > _MAX_BROADCAST_ELEMENTS):
    # Only a stride-0 (expanded) view may hold more elements than its storage.
    raise CheckpointError(f"tensor of shape {size} has {numel} elements but its storage only "
                          f"{storage.size}; the file is corrupt")
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
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
}


def _check_opcodes(f: BinaryIO):
  """Walks one pickle in ``f`` opcode by opcode (without building anything) and rewinds.

  Every opcode must be known and every length it declares must fit in the data, so a damaged
  stream is refused here instead of making the C unpickler allocate what the length claims.
  """
  start = f.tell()
  try:
    for _ in pickletools.genops(f):
      pass
  except (ValueError, EOFError, struct.error, UnicodeDecodeError) as e:
    raise CheckpointError(f"damaged pickle stream ({one_line(e, 160)}); the file is truncated or "
                          "corrupt") from None
  finally:
    f.seek(start)


class _RestrictedUnpickler(pickle.Unpickler):

  def __init__(self, file, load_storage, rebuild_tensor=_rebuild_tensor):
    _check_opcodes(file)
    super().__init__(file, encoding="latin1")
    self._load_storage = load_storage
    self._rebuild_tensor = rebuild_tensor

  def find_class(self, module, name):
    if module == "__builtin__":        # protocol-2 pickles name Python 2's module
      module = "builtins"
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return _AllowedCallable(self._rebuild_tensor)
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    if module == "torch" and name in _TORCH_DTYPES:
      return _TorchDtype(name)
    if (module, name) == ("argparse", "Namespace"):
      # NEWOBJ needs a class; a fresh subclass keeps BUILD on it from touching SafeNamespace.
      return type("Namespace", (SafeNamespace,), {})
    if (module, name) in _ALLOWED_GLOBALS:
      found = _ALLOWED_GLOBALS[(module, name)]
      # Built-in types stay types (NEWOBJ needs one; their attributes cannot be set).
      return found if isinstance(found, type) else _AllowedCallable(found)
    raise UnsafeCheckpointError(
        f"the checkpoint references the Python object {module}.{name}; only tensors and plain "
        "containers are read (as torch.load(weights_only=True) does). Re-save the file as a "
        "state_dict: torch.save(model.state_dict(), path)")

  def persistent_load(self, pid):
    if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
        or not isinstance(pid[2], str) or not isinstance(pid[4], int) or pid[4] < 0):
      raise CheckpointError(f"unknown persistent id {one_line(repr(pid), 80)} in checkpoint")
    return self._load_storage(pid)


def _storage_dtype(storage_type):
  if isinstance(storage_type, _StorageType):
    return storage_type.dtype
  if isinstance(storage_type, _TorchDtype):
    return storage_type.dtype
  raise CheckpointError(f"unknown storage type {storage_type!r}")


def _load_zip(zf: zipfile.ZipFile):
  try:
    damaged = zf.testzip()
  except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as e:
    raise CheckpointError(f"corrupt zip container ({one_line(e, 160)})") from None
  if damaged is not None:
    raise CheckpointError(f"archive member {damaged} fails its CRC check; the file is corrupt "
                          "(damaged in transfer or on disk?): download or copy it again")
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

  try:
    pickled = zf.read(pkl[0])
  except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as e:
    raise CheckpointError(f"{pkl[0]} cannot be read: {e}") from e
  return _RestrictedUnpickler(io.BytesIO(pickled), load_storage).load()


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
  keys = plain_load()
  if not isinstance(keys, list) or any(k not in storages for k in keys):
    raise CheckpointError("the storage-key list does not match the tensors; the file is corrupt")
  for key in keys:
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
    if obj.key not in storages or storages[obj.key][2] is None:
      raise CheckpointError(f"storage {one_line(repr(obj.key), 40)} is never stored; "
                            "the file is truncated or corrupt")
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


# What a damaged pickle stream or zip container makes the decoder raise. The unpickler only ever
# builds allow-listed objects, so any of these means "corrupt file", never a half-run payload:
# a mutated stream can call a method the object lacks (APPEND on a storage type, ADDITEMS on a
# dict), index past a stack, declare a length larger than memory, or nest without end.
_CORRUPT_STREAM_ERRORS = (
    pickle.UnpicklingError, EOFError, struct.error, ValueError, IndexError, TypeError,
    AttributeError, KeyError, RecursionError, OverflowError, MemoryError,
    zipfile.BadZipFile, zlib.error, NotImplementedError, lzma.LZMAError,
)


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
  data = read_file(path, decompress_xz=True)
  with errors_named(path, "PyTorch checkpoint"):
    if data[:4] == b"PK\x03\x04":
      try:
        zf = zipfile.ZipFile(io.BytesIO(data))
      except zipfile.BadZipFile as e:
        raise CheckpointError(f"truncated or corrupt zip checkpoint ({e})") from e
      with zf:
        return _load_zip(zf)
    return _load_legacy(io.BytesIO(data))


def read_file(path: str, decompress_xz: bool = False) -> bytes:
  """The bytes of a checkpoint file (``.xz``-decompressed when asked); a missing, empty or
  corrupt-``.xz`` file is a :class:`CheckpointError` naming it."""
  if not os.path.isfile(path):
    raise CheckpointError(f"{path}: no such file")
  with open(path, "rb") as f:
    data = f.read()
  if decompress_xz and data[:6] == b"\xfd7zXZ\x00":
    try:
      data = lzma.decompress(data)
    except lzma.LZMAError as e:
      raise CheckpointError(f"{path}: corrupt .xz stream: {e}") from e
  if not data:
    raise CheckpointError(f"{path}: empty file")
  return data


@contextlib.contextmanager
def errors_named(path: str, what: str, unsafe_error: type = UnsafeCheckpointError):
  """Reading inside names ``path`` in every error, one line each: refused globals as
  ``unsafe_error``, format errors as :class:`CheckpointError`, and a truncated or corrupt
  stream (what the unpickler raises) as "not a readable ``what``"."""
  try:
    yield
  except UnsafeCheckpointError as e:
    raise unsafe_error(f"{path}: {one_line(e)}") from None
  except CheckpointError as e:
    raise CheckpointError(f"{path}: {one_line(e)}") from None
  except _CORRUPT_STREAM_ERRORS as e:
    raise CheckpointError(f"{path}: not a readable {what}, the file is truncated or corrupt "
                          f"({type(e).__name__}: {one_line(e, 160)})") from None



class _DtypeBuilder:
  """Stands in for ``numpy.dtype(name, align, copy)``; only plain numeric/bool dtypes pass."""

  def __init__(self, name, *unused):
    if not isinstance(name, str):
      raise UnsafeCheckpointError(f"dtype spec {name!r} is not a plain type code")
    try:
      dtype = np.dtype(name)
    except TypeError as e:
      raise CheckpointError(f"unknown dtype {name!r}") from e
    if dtype.kind not in "biuf" or dtype.fields is not None:
      raise UnsafeCheckpointError(f"arrays of dtype {dtype} are refused (numeric arrays only)")
    self.dtype = dtype

  def __setstate__(self, state):
    # (version, byte order, subarray, names, fields, elsize, alignment, flags)
    if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
      raise CheckpointError(f"malformed dtype state {state!r}")
    if any(part is not None for part in state[2:5]):
      raise UnsafeCheckpointError("structured or sub-array dtypes are refused")
    if state[1] in "<>":
      self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayBuilder:
  """Stands in for ``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``; its
  ``__setstate__`` receives ``(version, shape, dtype, fortran_order, raw bytes)``."""

  def __init__(self, cls, shape, typecode):
    if cls is not _NDARRAY:
      raise UnsafeCheckpointError("only numpy.ndarray may be reconstructed")
    self.array = None

  def __setstate__(self, state):
    if not isinstance(state, tuple) or len(state) != 5:
      raise CheckpointError(f"malformed ndarray state ({type(state).__name__})")
    _, shape, dtype, fortran, raw = state
    if not isinstance(dtype, _DtypeBuilder):
      raise CheckpointError("ndarray state without a dtype")
    if not isinstance(raw, (bytes, bytearray)):
      raise UnsafeCheckpointError("ndarray data is not raw bytes (object arrays are refused)")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
      raise CheckpointError(f"malformed ndarray shape {shape!r}")
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * dtype.dtype.itemsize:
      raise CheckpointError(f"ndarray of shape {shape} {dtype.dtype} holds {len(raw)} bytes "
                            "(truncated or corrupt)")
    arr = np.frombuffer(raw, dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C")
    self.array = np.ascontiguousarray(arr.astype(dtype.dtype.newbyteorder("=")))


_NDARRAY = object()  # the token ``numpy.ndarray`` unpickles to

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _ArrayBuilder,
    ("numpy._core.multiarray", "_reconstruct"): _ArrayBuilder,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeBuilder,
}


class _NumpyUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) in _NUMPY_GLOBALS:
      return _NUMPY_GLOBALS[(module, name)]
    raise UnsafeCheckpointError(
        f"the file references the Python object {module}.{name}; only NumPy arrays in plain "
        "containers are read")

  def persistent_load(self, pid):
    raise CheckpointError(f"unexpected persistent id {pid!r} (a torch.save file? use load())")


def _arrays_of(obj):
  if isinstance(obj, _ArrayBuilder):
    if obj.array is None:
      raise CheckpointError("ndarray without data")
    return obj.array
  if isinstance(obj, _DtypeBuilder) or obj is _NDARRAY:
    raise CheckpointError("a bare NumPy type where data was expected")
  if isinstance(obj, dict):
    return {k: _arrays_of(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_arrays_of(v) for v in obj)
  return obj


def load_numpy_pickle(path: str | os.PathLike) -> Any:
  """Loads a ``pickle.dump`` of nested dicts/lists of NumPy arrays, executing nothing.

  Raises:
    CheckpointError: missing, truncated or malformed file.
    UnsafeCheckpointError: the file names any global besides the NumPy array builders, or
      holds object / structured arrays.
  """
  path = os.fspath(path)
  data = read_file(path)
  with errors_named(path, "NumPy pickle"):
    return _arrays_of(_NumpyUnpickler(io.BytesIO(data), encoding="latin1").load())


def flatten_state_dict(obj, prefix: str = "") -> dict[str, np.ndarray]:
  """Flattens nested dicts of arrays into ``{"a.b.c": array}`` (state_dict style)."""
  out = {}
  if isinstance(obj, dict):
    for k, v in obj.items():
      out.update(flatten_state_dict(v, f"{prefix}{k}."))
  elif isinstance(obj, np.ndarray):
    out[prefix[:-1]] = obj
  return out
