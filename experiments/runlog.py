"""A run directory's durable records: ``results*.jsonl`` (append-only) and in-flight checkpoints.

``RUN_DIR/results.jsonl`` holds one JSON object a line, one per finished
(config, image). A batch's lines go to disk in ONE ``write(2)`` on an
``O_APPEND`` descriptor, then ``fsync``: a ``kill -9`` leaves either all of them
or none (at worst a torn last line, which readers skip). Several processes write
``results.process-i-of-P.jsonl`` each (no shared file, no collision);
:func:`read_results` merges every ``results*.jsonl`` and drops duplicates.

``RUN_DIR/inflight/<batch id>/`` holds a batch's optimiser state after its last
finished chunk (:class:`jaxinv.io.inflight.InflightStore`).
"""

from __future__ import annotations

import glob
import json
import os

from jaxinv.io.inflight import InflightStore

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
