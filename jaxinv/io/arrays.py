"""Reading ``.npy`` / ``.npz`` inputs (latents, boundaries, results) as checked arrays.

Pickled object arrays are never loaded. Every problem — a missing, truncated or corrupt file,
a missing key, a non-numeric or non-finite array — is an :class:`ArrayFileError` whose
message names the file and what is wrong with it.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from jaxinv.io.errors import InputFileError, one_line

__all__ = ["ArrayFileError", "load_npy", "load_npz", "check_finite"]

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError,
                NotImplementedError, MemoryError)


class ArrayFileError(InputFileError):
  """A ``.npy``/``.npz`` input that cannot be used."""


def _label(path, what):
  return f"{what} {path}" if what else str(path)


def check_finite(array, path, what: str = "", key: str | None = None) -> np.ndarray:
  """Returns ``array`` if it is numeric and finite, else raises :class:`ArrayFileError`."""
  name = _label(path, what) + (f" [{key}]" if key else "")
  if array.dtype.kind not in "biuf":
    raise ArrayFileError(f"{name}: holds {array.dtype} values, expected numbers")
  if array.dtype.kind == "f" and not np.isfinite(array).all():
    bad = int((~np.isfinite(array)).sum())
    raise ArrayFileError(f"{name}: {bad} of {array.size} values are NaN or infinite")
  return array


def load_npy(path, what: str = "", finite: bool = True) -> np.ndarray:
  """One ``.npy`` array (numeric; finite unless ``finite=False``)."""
  path = os.fspath(path)
  label = _label(path, what)
  if not os.path.isfile(path):
    raise ArrayFileError(f"{label}: no such file")
  try:
    array = np.load(path, allow_pickle=False)
  except _READ_ERRORS as e:
    raise ArrayFileError(f"{label}: not a readable .npy array, the file is truncated, corrupt "
                         f"or holds pickled objects ({one_line(e, 160)})") from None
  if isinstance(array, np.lib.npyio.NpzFile):
    array.close()
    raise ArrayFileError(f"{label}: is an .npz archive, expected a single .npy array")
  return check_finite(array, path, what) if finite else array


def load_npz(path, what: str = "", required=(), finite: bool = True) -> dict[str, np.ndarray]:
  """Every array of an ``.npz`` archive (all read and checked now; ``required`` keys must exist)."""
  path = os.fspath(path)
  label = _label(path, what)
  if not os.path.isfile(path):
    raise ArrayFileError(f"{label}: no such file")
  try:
    archive = np.load(path, allow_pickle=False)
    if not isinstance(archive, np.lib.npyio.NpzFile):
      raise ArrayFileError(f"{label}: is a single .npy array, expected an .npz archive")
    with archive:
      arrays = {k: archive[k] for k in archive.files}
  except ArrayFileError:
    raise
  except _READ_ERRORS as e:
    raise ArrayFileError(f"{label}: not a readable .npz archive, the file is truncated, corrupt "
                         f"or holds pickled objects ({one_line(e, 160)})") from None
  missing = [k for k in required if k not in arrays]
  if missing:
    raise ArrayFileError(f"{label}: lacks the arrays {missing} (it has {sorted(arrays)})")
  if finite:
    for k, v in arrays.items():
      if v.dtype.kind in "biuf":
        check_finite(v, path, what, k)
  return arrays
