"""Run records: ``config.json`` (every setting, seed, versions, devices) and ``result.npz``, written atomically."""

from __future__ import annotations

import csv
import datetime
import io
import math
import os
import platform
import sys

import numpy as np

from jaxinv.io.checkpoints import atomic_write_bytes, atomic_write_json
from jaxinv.io.errors import InputFileError

__all__ = ["run_metadata", "write_config", "write_npz", "prepare_out_dir", "write_metrics_csv",
           "ResultFileError", "read_padinv_result"]


def run_metadata() -> dict:
  """Package versions, devices and the command line, for reproducibility."""
  import jax
  versions = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "PIL"):
    try:
      mod = __import__(name, fromlist=["__version__"])
      versions[name] = getattr(mod, "__version__", "?")
    except ImportError:
      pass
  from jaxinv import __version__
  versions["jaxinv"] = __version__
  devices = jax.devices()
  return {
      "versions": versions,
      "device_kind": devices[0].device_kind,
      "platform": devices[0].platform,
      "device_count": len(devices),
      "process_count": jax.process_count(),
      "argv": sys.argv,
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def write_config(out_dir, settings: dict):
  atomic_write_json(os.path.join(out_dir, "config.json"), {"settings": settings, **run_metadata()})


def write_npz(path, **arrays):
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  atomic_write_bytes(path, buf.getvalue())


def prepare_out_dir(path) -> str:
  os.makedirs(path, exist_ok=True)
  return path


def write_metrics_csv(path, rows, columns):
  """Writes ``rows`` (``{"name": str, <column>: float}``) atomically as CSV: a header ``name,
  <columns>``, one line per row, floats with 6 decimals (``inf`` for a non-finite value)."""
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["name", *columns])
  for r in rows:
    w.writerow([r["name"]] + [f"{r[c]:.6f}" if math.isfinite(r[c]) else "inf" for c in columns])
  atomic_write_bytes(path, buf.getvalue().encode())


class ResultFileError(InputFileError):
  """A ``result.npz`` is not the kind of result the reader needs."""


def read_padinv_result(path, what: str = "--result"):
  """``(wp [B, n, w], maps {slot: [B, S, S, C]}, names)`` of a PadInv ``result.npz``.

  ``names`` are the stored ``names`` or, when absent, ``"0"``, ``"1"``, ...
  """
  from jaxinv.io.arrays import load_npz
  f = load_npz(path, what, required=("wp",))
  try:
    maps = {int(k[len("map_slot"):]): np.asarray(f[k], np.float32) for k in f
            if k.startswith("map_slot")}
  except ValueError:
    maps = {}
  if not maps:
    raise ResultFileError(f"{what} {path}: not a --method padinv result.npz (no map_slot<N> arrays)")
  wp = np.asarray(f["wp"], np.float32)
  names = [str(n) for n in f["names"]] if "names" in f else [str(i) for i in range(len(wp))]
  return wp, maps, names
