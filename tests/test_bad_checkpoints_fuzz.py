"""Seeded fuzzing of every file the CLI reads: damaged or hostile files end in one line, exit 2.

Each case runs the CLI in-process and asserts: exit status 2, exactly one stderr line that
names the file, no traceback, nothing created at the destination, and no code from the file
run (hostile payloads try ``os.system`` / ``exec`` / ``eval`` to create a marker file).
Mutated pickle streams may occasionally still decode into a valid checkpoint; then the
conversion must succeed completely (exit 0, a full model directory).
"""

import io
import os
import pickle
import pickletools
import random
import struct
import zipfile

import numpy as np
import pytest

from jaxinv.cli import main

SEED = 20261204


def _run(capsys, argv):
  capsys.readouterr()
  rc = main([str(a) for a in argv])
  out = capsys.readouterr()
  return rc, out.err


def _assert_refused(capsys, argv, named, dest):
  rc, err = _run(capsys, argv)
  lines = err.strip().splitlines()
  assert rc == 2, (argv, rc, err)
  assert len(lines) == 1, (argv, err)
  assert str(named) in lines[0], (named, lines[0])
  assert "Traceback" not in err
  assert not os.path.exists(dest), f"{dest} created by a refused run"
  leftovers = [n for n in os.listdir(os.path.dirname(dest)) if n.startswith(".tmp")]
  assert not leftovers, leftovers
  return lines[0]


def _convert_case(capsys, tmp_path, blob, tag, allow_valid=False):
  src = tmp_path / f"{tag}.pth"
  src.write_bytes(blob)
  dest = tmp_path / f"{tag}-out"
  if allow_valid:
    rc, err = _run(capsys, ["convert", src, dest])
    if rc == 0:
      assert (dest / "config.json").is_file() and (dest / "params").is_dir()
      return "valid"
  _assert_refused(capsys, ["convert", src, dest], src, dest)
  src.unlink()
  return "refused"


def _member_data_offset(data, info):
  name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
  return info.header_offset + 30 + name_len + extra_len


def _rezip(zf, replace):
  out = io.BytesIO()
  with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z2:
    for info in zf.infolist():
      z2.writestr(info.filename, replace.get(info.filename, zf.read(info.filename)))
  return out.getvalue()


def _mutate_pickle(pkl, rng):
  starts = [pos for _, _, pos in pickletools.genops(pkl)]
  b = bytearray(pkl)
  pos = rng.choice(starts)
  kind = rng.randrange(4)
  if kind == 0:                                     # replace an opcode byte
    b[pos] = rng.randrange(256)
  elif kind == 1:                                   # drop a few bytes
    del b[pos:pos + rng.randrange(1, 4)]
  elif kind == 2:                                   # insert a random opcode
    b[pos:pos] = rng.choice(pickletools.opcodes).code.encode("latin1")
  else:                                             # swap two opcodes' positions
    other = rng.choice(starts)
    b[pos], b[other] = b[other], b[pos]
  return bytes(b)


def _checkpoints(golden, tmp_path):
  """(label, bytes) of small fixture checkpoints, plus a legacy (pre-zip) file."""
  mgan = golden("mganprior")
  rosinality = golden("stylegan2_rosinality")
  files = [
      ("stylegan2", mgan.path(mgan.expected["stylegan2"]["checkpoint"]).read_bytes()),
      ("pggan", mgan.path(mgan.expected["pggan"]["checkpoint"]).read_bytes()),
      ("rosinality", rosinality.path(rosinality.expected["checkpoint"]["file"]).read_bytes()),
  ]
  return files


def _legacy_checkpoint(golden, tmp_path):
  torch = pytest.importorskip("torch")
  mgan = golden("mganprior")
  state = torch.load(mgan.path(mgan.expected["stylegan2"]["checkpoint"]), weights_only=True)
  path = tmp_path / "legacy.pth"
  torch.save(state, path, _use_new_zipfile_serialization=False)
  return path.read_bytes()


def test_truncated_checkpoints_are_refused(golden, tmp_path, capsys):
  rng = random.Random(SEED)
  files = _checkpoints(golden, tmp_path) + [("legacy", _legacy_checkpoint(golden, tmp_path))]
  for label, data in files:
    offsets = {0, 1, 4, 30, len(data) - 1, len(data) - 22}
    offsets |= set(rng.sample(range(1, len(data)), 14))
    for off in sorted(offsets):
      _convert_case(capsys, tmp_path, data[:off], f"{label}-trunc{off}")


def test_byte_flips_in_every_zip_member_are_refused(golden, tmp_path, capsys):
  rng = random.Random(SEED + 1)
  for label, data in _checkpoints(golden, tmp_path):
    zf = zipfile.ZipFile(io.BytesIO(data))
    for i, info in enumerate(zf.infolist()):
      if info.compress_size == 0:
        continue
      b = bytearray(data)
      b[_member_data_offset(data, info) + rng.randrange(info.compress_size)] ^= 1 << rng.randrange(8)
      _convert_case(capsys, tmp_path, bytes(b), f"{label}-flip{i}")
    # damaged container structure: a central-directory entry and a later local header's magic
    for pos in (data.rfind(b"PK\x01\x02") + 10, zf.infolist()[1].header_offset + 1):
      b = bytearray(data)
      b[pos] ^= 0xFF
      _convert_case(capsys, tmp_path, bytes(b), f"{label}-dir{pos}")


def test_mutated_pickle_streams_are_refused_or_convert_cleanly(golden, tmp_path, capsys):
  rng = random.Random(SEED + 2)
  outcomes = []
  for label, data in _checkpoints(golden, tmp_path)[:2]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    pkl_name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
    pkl = zf.read(pkl_name)
    for i in range(25):
      blob = _rezip(zf, {pkl_name: _mutate_pickle(pkl, rng)})
      outcomes.append(_convert_case(capsys, tmp_path, blob, f"{label}-mut{i}", allow_valid=True))
  legacy = _legacy_checkpoint(golden, tmp_path)
  stream = io.BytesIO(legacy)
  for _ in range(5):      # magic, protocol, sys info, the object, the storage keys; then raw data
    for _ in pickletools.genops(stream):
      pass
  pickles_end = stream.tell()
  for i in range(25):
    b = bytearray(legacy)
    pos = rng.randrange(pickles_end)
    b[pos] = rng.randrange(256)
    outcomes.append(_convert_case(capsys, tmp_path, bytes(b), f"legacy-mut{i}", allow_valid=True))
  print("mutated checkpoints:", {k: outcomes.count(k) for k in set(outcomes)})
  assert outcomes.count("refused") > len(outcomes) // 2, outcomes


class _Payload:
  """Pickles to ``func(arg)``: what a hostile checkpoint would run on a plain ``pickle.load``."""

  def __init__(self, func, arg):
    self.func, self.arg = func, arg

  def __reduce__(self):
    return (self.func, (self.arg,))


def _hostile_pickles(marker):
  touch = f"open({str(marker)!r}, 'w').close()"
  payloads = [_Payload(os.system, f"touch {marker}"), _Payload(exec, touch), _Payload(eval, touch)]
  out = []
  for p in payloads:
    for proto in (2, 4):
      out.append(pickle.dumps({"weight": p}, protocol=proto))
  # hand-written GLOBAL (protocol 0 text) and STACK_GLOBAL forms of builtins.exec
  out.append(b"cbuiltins\nexec\n(V" + touch.encode() + b"\ntR.")
  out.append(b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93\x8c" + bytes([len(touch)])
             + touch.encode() + b"\x85R.")
  return out


def test_hostile_checkpoints_are_refused_without_running_code(tmp_path, capsys):
  marker = tmp_path / "payload-ran"
  for i, pkl in enumerate(_hostile_pickles(marker)):
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
      zf.writestr("archive/data.pkl", pkl)
      zf.writestr("archive/version", b"3\n")
    legacy = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pkl
    for kind, blob in (("zip", zipped.getvalue()), ("plain", pkl), ("legacy", legacy)):
      src = tmp_path / f"hostile{i}-{kind}.pth"
      src.write_bytes(blob)
      line = _assert_refused(capsys, ["convert", src, tmp_path / f"out{i}{kind}"], src,
                             tmp_path / f"out{i}{kind}")
      assert not marker.exists(), f"payload ran for {src}"
      assert "refer" in line or "corrupt" in line or "checkpoint" in line, line


# --- .npy / .npz inputs -------------------------------------------------------------------------

def _npy_bytes(array, allow_pickle=False):
  buf = io.BytesIO()
  np.save(buf, array, allow_pickle=allow_pickle)
  return buf.getvalue()


def _npz_bytes(**arrays):
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  return buf.getvalue()


def _damaged_variants(data, rng, n_trunc=10, n_flip=6):
  out = [data[:off] for off in sorted(rng.sample(range(0, len(data)), n_trunc))]
  for _ in range(n_flip):
    b = bytearray(data)
    b[rng.randrange(len(b))] ^= 0xFF
    out.append(bytes(b))
  return out


def _hostile_npy(marker):
  arr = np.empty((), dtype=object)
  arr[()] = _Payload(os.system, f"touch {marker}")
  return _npy_bytes(arr, allow_pickle=True)


def test_damaged_and_hostile_arrays_are_refused(tmp_path, capsys):
  """latents (generate), result.npz and boundaries (edit), PadInv boundaries: one line each."""
  rng = random.Random(SEED + 3)
  marker = tmp_path / "payload-ran"
  good_z = _npy_bytes(np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32))
  good_boundary = _npy_bytes(np.ones((1, 8), np.float32))
  result = _npz_bytes(z=np.zeros((1, 2, 8), np.float32), alpha=np.ones((1, 2, 4), np.float32),
                      names=np.array(["a"]))
  nan_z = np.zeros((2, 8), np.float32)
  nan_z[1, 3] = np.nan
  (tmp_path / "b.npy").write_bytes(good_boundary)
  out = tmp_path / "dest"

  def commands(path):
    return [
        ["generate", "demo-digits", "--latents", path, "--out", out / "x.npy"],
        ["edit", "--generator", "demo-digits", "--result", path, "--boundary", tmp_path / "b.npy",
         "--out", out],
        ["edit", "--generator", "demo-digits", "--result", tmp_path / "r.npz", "--boundary", path,
         "--out", out],
        ["edit", "--mode", "padinv-keep-maps", "--generator", "demo-digits", "--result",
         tmp_path / "r.npz", "--boundary", path, "--out", out],
    ]

  (tmp_path / "r.npz").write_bytes(result)
  # (blob, whether it is certainly unreadable): byte flips may land in array data and leave a
  # readable file, which must then fail later, still on one line (shape / model checks).
  blobs = [(b, True) for b in _damaged_variants(good_z, rng, n_flip=0)]
  blobs += [(b, True) for b in _damaged_variants(result, rng, n_flip=0)]
  blobs += [(b, False) for b in _damaged_variants(good_z, rng, n_trunc=0)]
  blobs += [(b, False) for b in _damaged_variants(result, rng, n_trunc=0)]
  blobs += [(_hostile_npy(marker), True), (_npy_bytes(nan_z), True), (b"", True),
            (b"not an array", True)]
  for i, (blob, unreadable) in enumerate(blobs):
    path = tmp_path / f"in{i}.npy"
    path.write_bytes(blob)
    for argv in commands(path):
      rc, err = _run(capsys, argv)
      lines = err.strip().splitlines()
      assert not marker.exists(), f"payload ran for {argv}"
      assert "Traceback" not in err, (argv, err)
      assert rc == 2, (argv, rc, err)
      assert len(lines) == 1, (argv, err)
      if unreadable:
        assert str(path) in lines[0], (argv, lines[0])
      assert not out.exists(), (argv, "output created")
