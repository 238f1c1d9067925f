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
           "ResultFileError", "read_padinv_result", "read_multicode_result", "read_wp_result",
           "read_pivot_result", "result_setting"]


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


def _names(f, count: int) -> list[str]:
  return [str(n) for n in f["names"]] if "names" in f else [f"{i:04d}" for i in range(count)]


def read_multicode_result(path, what: str = "--result"):
  """``(z [B, N, D], alpha [B, N, C], names)`` of an mGANprior ``result.npz``."""
  from jaxinv.io.arrays import load_npz
  f = load_npz(path, what, required=("z", "alpha"))
  z, alpha = np.asarray(f["z"], np.float32), np.asarray(f["alpha"], np.float32)
  if z.ndim != 3 or alpha.ndim != 3 or z.shape[:2] != alpha.shape[:2]:
    raise ResultFileError(f"{what} {path}: z {z.shape} / alpha {alpha.shape} are not [B,N,D] / "
                          "[B,N,C] (a --method mganprior result.npz)")
  return z, alpha, _names(f, len(z))


def read_wp_result(path, num_layers: int, w_dim: int, what: str = "--result"):
  """``(wp [B, num_layers, w_dim], names)`` of a w+ ``result.npz`` made for this generator."""
  from jaxinv.io.arrays import load_npz
  f = load_npz(path, what, required=("wp",))
  wp = np.asarray(f["wp"], np.float32)
  if wp.ndim != 3 or wp.shape[1:] != (num_layers, w_dim):
    raise ResultFileError(f"{what} {path}: wp {wp.shape} is not [B, {num_layers}, {w_dim}] for "
                          "this generator")
  return wp, _names(f, len(wp))


def read_pivot_result(path, what: str = "--result"):
  """``(codes [B, L, D], names, tuned)`` of a PTI (``w_pivot``, tuned) or w+ (``wp``) result.

  ``tuned`` says the codes are PTI pivots whose generator deltas lie beside the file.
  """
  from jaxinv.io.arrays import load_npz
  f = load_npz(path, what)
  tuned = "w_pivot" in f
  if not tuned and "wp" not in f:
    raise ResultFileError(f"{what} {path}: needs wp or w_pivot [B, L, D] (a PTI or w+ "
                          f"result.npz); it has {sorted(f)}")
  codes = np.asarray(f["w_pivot" if tuned else "wp"], np.float32)
  if codes.ndim != 3:
    raise ResultFileError(f"{what} {path}: codes {codes.shape} are not [B, L, D]")
  if tuned and "names" not in f:
    raise ResultFileError(f"{what} {path}: a PTI result without names (its deltas are stored "
                          "by image name)")
  return codes, _names(f, len(codes)), tuned


def result_setting(result_path, key: str, what: str = "--result"):
  """The resolved setting ``key`` from the ``config.json`` beside a ``result.npz``."""
  import json
  cfg = os.path.join(os.path.dirname(os.path.abspath(result_path)), "config.json")
  try:
    with open(cfg) as f:
      return json.load(f)["settings"][key]
  except (OSError, KeyError, ValueError, TypeError):
    raise ResultFileError(f"{what} {result_path}: cannot read the setting {key!r} from {cfg}"
                          ) from None


def read_padinv_result(path, what: str = "--result"):
  """``(wp [B, n, w], maps {slot: [B, S, S, C]}, names)`` of a PadInv ``result.npz``.

  ``names`` are the stored ``names`` or, when absent, ``"0000"``, ``"0001"``, ...
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
  return wp, maps, _names(f, len(wp))
