"""``--out`` ownership: a command never mixes its outputs with another run's.

A folder output gets a marker ``.jaxinv-run.json`` (command + settings) before anything is
written into it. An existing ``--out`` is used as is when it is empty or when its marker
names the same command and settings (the same run, rerun or resumed); otherwise it is refused
unless ``--overwrite``, which empties it first — only if the marker shows it is a jaxinv
output folder, so a folder of the user's own files is never deleted. A file output (a CSV,
an ``.npy``) that exists is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil

from jaxinv.cli.common import UserError

__all__ = ["MARKER", "FILE_OUTPUTS", "add_overwrite_flags", "claim", "release_unused"]

MARKER = ".jaxinv-run.json"
#: commands whose --out is a single file
FILE_OUTPUTS = ("evaluate", "generate")
# Settings that do not change what a run writes.
_NOT_SETTINGS = ("func", "overwrite", "no_progress")


def add_overwrite_flags(subparsers_action):
  """``--overwrite`` on every subcommand with an ``--out`` that does not define it itself."""
  for name, p in subparsers_action.choices.items():
    opts = {s for a in p._actions for s in a.option_strings}
    if "--out" in opts and "--overwrite" not in opts:
      what = "file" if name in FILE_OUTPUTS else "folder's outputs of another run"
      p.add_argument("--overwrite", action="store_true",
                     help=f"replace an existing --out {what} (default: refuse)")


def _signature(args) -> dict:
  settings = {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_SETTINGS}
  return json.loads(json.dumps({"command": args.command, "settings": settings}, default=str))


def claim(args):
  """Checks (and for folders marks) ``args.out`` before the command writes anything.

  Returns what :func:`release_unused` needs to undo the claim of a run that wrote nothing.
  """
  out = getattr(args, "out", None)
  if out is None or not hasattr(args, "overwrite"):
    return None
  out = os.fspath(out)
  if args.command in FILE_OUTPUTS:
    if os.path.isdir(out):
      raise UserError(f"--out {out} is a folder; name the file to write")
    if os.path.exists(out) and not args.overwrite:
      raise UserError(f"--out {out} already exists; pass --overwrite to replace it or choose "
                      "another file")
    return None
  if os.path.exists(out) and not os.path.isdir(out):
    raise UserError(f"--out {out} is a file; name a folder")
  sig = _signature(args)
  marker = os.path.join(out, MARKER)
  if _other_process():
    return _wait_for_claim(out, marker, sig)
  entries = os.listdir(out) if os.path.isdir(out) else []
  if entries:
    previous = _read_marker(marker)
    if previous == sig:
      return None  # the same run again: its files are replaced one by one
    if not args.overwrite:
      what = (f"another run (jaxinv {previous.get('command')} with other settings)"
              if previous else f"{len(entries)} file(s) of something else")
      raise UserError(f"--out {out} holds {what}; pass --overwrite to replace it or choose "
                      "another folder")
    if previous is None:
      raise UserError(f"--out {out} is not a jaxinv output folder (no {MARKER}); --overwrite "
                      "only empties jaxinv's own folders: choose another folder")
    for e in entries:
      path = os.path.join(out, e)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
  from jaxinv.io.checkpoints import atomic_write_json
  created = not os.path.exists(out)
  try:
    os.makedirs(out, exist_ok=True)
    atomic_write_json(marker, sig)
  except OSError as e:
    raise UserError(f"--out {out}: cannot write there ({e.strerror}); choose a writable folder") \
        from None
  return out, created


def _other_process() -> bool:
  """Whether this is a multi-process run's process other than the first (which claims --out)."""
  from jaxinv import distributed
  if distributed.ENV_ADDRESS not in os.environ and not distributed._auto_cluster(os.environ):
    return False
  return distributed.process_info().index != 0


def _wait_for_claim(out, marker, sig, timeout_s: float = 300.0):
  """The other processes share the first one's --out: they wait for its marker and check it
  names the same command and settings."""
  import time
  deadline = time.time() + timeout_s
  while _read_marker(marker) is None:
    if time.time() > deadline:
      raise UserError(f"--out {out}: the first process never claimed it (no {MARKER} after "
                      f"{timeout_s:.0f}s); start every process with the same command")
    time.sleep(0.2)
  if _read_marker(marker) != sig:
    raise UserError(f"--out {out} was claimed by another command or settings; start every "
                    "process with the same command")
  return None


def release_unused(claimed):
  """After a refused run: removes the marker (and the folder, if the claim made it) when the
  command wrote nothing else, so bad input leaves nothing behind."""
  if not claimed:
    return
  out, created = claimed
  try:
    if os.listdir(out) == [MARKER]:
      os.remove(os.path.join(out, MARKER))
      if created:
        os.rmdir(out)
  except OSError:
    pass


def _read_marker(path):
  try:
    with open(path) as f:
      obj = json.load(f)
  except (OSError, ValueError):
    return None
  return obj if isinstance(obj, dict) else None
