"""Run records: ``config.json`` (every setting, seed, versions, devices) and ``result.npz``, written atomically."""

from __future__ import annotations

import datetime
import io
import os
import platform
import sys

import numpy as np

from jaxinv.io.checkpoints import atomic_write_bytes, atomic_write_json

__all__ = ["run_metadata", "write_config", "write_npz", "prepare_out_dir"]


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
