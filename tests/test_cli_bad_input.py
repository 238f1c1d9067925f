"""Bad command-line input: one line on stderr, exit status 2, nothing written, checked before work.

Conversions that keep going (RGBA, 16-bit, a mask of another size) print one warning line that
names the file and says what was converted.
"""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxinv import converters
from jaxinv.cli import main


def _run(capsys, argv):
  capsys.readouterr()
  rc = main([str(a) for a in argv])
  return rc, capsys.readouterr().err.strip().splitlines()


def _refused(capsys, argv, named, out=None):
  rc, err = _run(capsys, argv)
  assert rc == 2, (rc, err)
  assert len(err) == 1, err
  assert str(named) in err[0], err
  if out is not None:
    assert not out.exists(), f"{out} written by a refused run"
  return err[0]


def _png(path, array, mode=None):
  Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
  return path


def _huge_header_png(path, width=100_000, height=100_000):
  """A valid small PNG whose IHDR declares ``width x height`` (CRC fixed, so only size is odd)."""
  import io
  buf = io.BytesIO()
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
  data = bytearray(buf.getvalue())
  ihdr = data.index(b"IHDR")
  data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
  crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
  data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
  path.write_bytes(bytes(data))
  return path


@pytest.fixture(scope="module")
def pggan(golden, tmp_path_factory):
  g = golden("mganprior")
  dest = tmp_path_factory.mktemp("bad_input") / "G"
  converters.convert_file(g.path(g.expected["pggan"]["checkpoint"]), dest)
  return dest


def _multicode_result(tmp_path, generator, codes=2, layer=2):
  from jaxinv.cli.common import load_generator
  from jaxinv.inversion import spaces
  model = load_generator(str(generator), families="pggan")
  space = spaces.MultiCode(model.module, layer, codes)
  rng = np.random.default_rng(0)
  path = tmp_path / "result.npz"
  np.savez(path, z=rng.standard_normal((1, codes, space.z_dim)).astype(np.float32),
           alpha=np.ones((1, codes, space.channels), np.float32), names=np.array(["img"]))
  return path


def test_edit_reads_what_directions_writes(pggan, tmp_path, capsys):
  dirs = tmp_path / "dirs"
  rc, err = _run(capsys, ["directions", "--generator", pggan, "--method", "sefa", "--num", "1",
                          "--strip", "2", "--out", dirs])
  assert rc == 0, err
  result = _multicode_result(tmp_path, pggan)
  out = tmp_path / "edit"
  rc, err = _run(capsys, ["edit", "--generator", pggan, "--result", result, "--layer", "2",
                          "--boundary", dirs / "sefa_00.npz", "--frames", "2", "--strip", "2",
                          "--out", out])
  assert rc == 0, err
  frames = [np.asarray(Image.open(out / "img" / f"frame_{t:03d}.png")) for t in range(2)]
  assert frames[0].shape == (32, 32, 3) and np.abs(frames[0].astype(int) - frames[1]).max() > 0


def test_edit_refusals(pggan, tmp_path, capsys):
  result = _multicode_result(tmp_path, pggan)
  out = tmp_path / "edit"
  common = ["--generator", pggan, "--layer", "2", "--frames", "2", "--out", out]
  missing = tmp_path / "missing.npy"
  _refused(capsys, ["edit", "--mode", "padinv-keep-maps", "--result", result, "--boundary",
                    missing, *common], missing, out)
  _refused(capsys, ["edit", "--result", result, "--boundary", missing, *common], missing, out)
  truncated = tmp_path / "truncated.npz"
  truncated.write_bytes(result.read_bytes()[:200])
  b = tmp_path / "b.npy"
  from jaxinv.cli.common import load_generator
  np.save(b, np.ones((1, load_generator(str(pggan)).config.z_dim), np.float32))
  line = _refused(capsys, ["edit", "--result", truncated, "--boundary", b, *common], truncated,
                  out)
  assert "truncated" in line
  nan = tmp_path / "nan.npz"
  z = np.load(result)["z"].copy()
  z[0, 0, 0] = np.nan
  np.savez(nan, z=z, alpha=np.load(result)["alpha"])
  assert "NaN" in _refused(capsys, ["edit", "--result", nan, "--boundary", b, *common], nan, out)


def test_nan_latents_are_refused(pggan, tmp_path, capsys):
  from jaxinv.cli.common import load_generator
  z = np.zeros((2, load_generator(str(pggan)).config.z_dim), np.float32)
  z[1, 0] = np.nan
  np.save(tmp_path / "z.npy", z)
  line = _refused(capsys, ["generate", pggan, "--latents", tmp_path / "z.npy", "--out",
                           tmp_path / "x.npy"], tmp_path / "z.npy", tmp_path / "x.npy")
  assert "NaN" in line


def test_out_must_be_writable_before_any_work(tmp_path, capsys):
  img = _png(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
  existing = tmp_path / "existing.txt"
  existing.write_text("keep")
  invert = ["invert", "--generator", "demo-digits", "--loss", "mse", "--images", img,
            "--steps", "1"]
  assert "existing file" in _refused(capsys, invert + ["--out", existing], existing)
  assert existing.read_text() == "keep"
  _refused(capsys, invert + ["--out", existing / "sub"], existing)
  readonly = "/proc/jaxinv-out"        # a read-only place even for root
  _refused(capsys, invert + ["--out", readonly], readonly)
  gt = tmp_path / "gt"
  gt.mkdir()
  _png(gt / "a.png", np.zeros((16, 16, 3), np.uint8))
  folder = tmp_path / "metrics"
  folder.mkdir()
  assert "is a folder" in _refused(capsys, ["evaluate", tmp_path / "a.png", gt, "--out", folder],
                                   folder)
  assert list(folder.iterdir()) == []


def test_huge_image_header_is_an_input_error(tmp_path, capsys):
  pred, gt = tmp_path / "pred", tmp_path / "gt"
  pred.mkdir()
  gt.mkdir()
  bomb = _huge_header_png(pred / "a.png")
  _png(gt / "a.png", np.zeros((16, 16, 3), np.uint8))
  out = tmp_path / "m.csv"
  assert "pixels" in _refused(capsys, ["evaluate", pred, gt, "--out", out], bomb, out)
  inv = tmp_path / "inv"
  _refused(capsys, ["invert", "--generator", "demo-digits", "--loss", "mse", "--images", bomb,
                    "--steps", "1", "--out", inv], bomb, inv)
  from jaxinv import swapping
  from jaxinv.io.images import ImageError
  with pytest.raises(ImageError, match="pixels"):
    swapping.load_images([str(bomb)], 16)
  with pytest.raises(ImageError, match="pixels"):
    swapping.load_mask(str(bomb), 16)


def test_conversions_are_announced_on_one_line(tmp_path, capsys):
  pred, gt = tmp_path / "pred", tmp_path / "gt"
  pred.mkdir()
  gt.mkdir()
  rng = np.random.default_rng(0)
  rgba = _png(pred / "a.png", rng.integers(0, 256, (32, 32, 4), dtype=np.uint8))
  deep = pred / "b.png"
  Image.fromarray(rng.integers(0, 65536, (32, 32), dtype=np.uint16).astype(np.uint16)).save(deep)
  assert Image.open(deep).mode.startswith("I;16")
  for name in ("a.png", "b.png"):
    _png(gt / name, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
  mask = tmp_path / "mask.png"
  m = np.zeros((16, 16), np.uint8)
  m[4:12, 4:12] = 255
  _png(mask, m)
  with pytest.warns(UserWarning) as record:
    rc, err = _run(capsys, ["evaluate", pred, gt, "--mask", mask, "--lpips", "none",
                            "--out", tmp_path / "m.csv"])
  assert rc == 0, err
  notes = [str(w.message) for w in record]
  assert any(str(rgba) in n and "alpha" in n for n in notes), notes
  assert any(str(deep) in n and "16-bit" in n for n in notes), notes
  assert any(str(mask) in n and "16x16 resized" in n for n in notes), notes
  from jaxinv.cli import warning_line
  shown = warning_line("evaluate")(record[0].message, UserWarning, "f.py", 1)
  assert shown == f"jaxinv evaluate: warning: {record[0].message}\n" and shown.count("\n") == 1


def test_sweep_override_error_is_one_line(capsys):
  from jaxinv.experiments import sweep
  with pytest.raises(SystemExit) as e:
    sweep.main(["--config", "experiments/configs/mganprior_inpainting.py:runlocal,stepz=3",
                "--out", "/nonexistent/never-made"])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "stepz" in err[0], err
