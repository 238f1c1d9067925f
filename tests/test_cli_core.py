"""End to end through the CLI: convert → generate → invert on the fixture PGGAN and real images."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxinv.cli import main
from tests.conftest import REPO, assert_close, golden_root

GOLDEN = golden_root() / "mganprior"
CHURCH = golden_root().parent / "data" / "mganprior_examples" / "gan_inversion" / "church"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli")
  exp = json.loads((GOLDEN / "expected.json").read_text())
  assert main(["convert", str(GOLDEN / exp["pggan"]["checkpoint"]), str(root / "G")]) == 0
  assert main(["convert", str(GOLDEN / exp["vgg"]["file"]), str(root / "VGG")]) == 0
  return root


def test_generate_matches_fixture(converted, tmp_path):
  d = np.load(GOLDEN / "pggan.npz")
  np.save(tmp_path / "z.npy", d["z"])
  assert main(["generate", str(converted / "G"), "--latents", str(tmp_path / "z.npy"),
               "--out", str(tmp_path / "img.npy")]) == 0
  out = np.load(tmp_path / "img.npy")
  assert out.dtype == np.float32
  assert_close(out, d["image"], atol=1e-4, what="jaxinv generate")


def test_invert_writes_results(converted, tmp_path):
  out = tmp_path / "out"
  rc = main(["invert", "--generator", str(converted / "G"), "--vgg", str(converted / "VGG"),
             "--vgg-size", "64", "--images", str(CHURCH), "--codes", "3", "--layer", "4",
             "--steps", "6", "--chunk", "3", "--batch", "2", "--out", str(out)])
  assert rc == 0
  n = len([p for p in CHURCH.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")])
  with np.load(out / "result.npz") as r:
    assert r["z"].shape == (n, 3, 512) and r["alpha"].shape == (n, 3, 32)
    assert r["loss"].shape == (6, n) and len(r["names"]) == n
    assert np.all(r["loss"][-1] < r["loss"][0])
  cfg = json.loads((out / "config.json").read_text())
  assert cfg["settings"]["codes"] == 3 and cfg["settings"]["seed"] == 0 and "jax" in cfg["versions"]
  assert len(list(out.glob("*.png"))) == n


def images_alone_and_in_a_list(tmp_path):
  """(the example folder, a folder holding only its last image under the same name, that name)."""
  import shutil
  last = sorted(p for p in CHURCH.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[-1]
  alone = tmp_path / "alone"
  alone.mkdir()
  shutil.copy(last, alone / last.name)
  return CHURCH, alone, last.stem


def assert_same_image_result(full_dir, alone_dir, name, keys):
  """The named image's row of ``result.npz`` is the same alone as inside the list, with other batches.

  Per-image arithmetic is the same; only the vectorised batch width differs, which XLA may round
  differently by an ulp or so of each step (1e-5 after a few Adam/SGD steps of lr <= 1).
  """
  with np.load(full_dir / "result.npz") as a, np.load(alone_dir / "result.npz") as b:
    i = list(a["names"]).index(name)
    assert list(b["names"]) == [name]
    for k in keys:
      assert_close(b[k][0], a[k][i], atol=1e-5, what=f"{name} {k} alone vs in the list")
    assert_close(b["loss"][:, 0], a["loss"][:, i], rtol=1e-5, what=f"{name} loss alone vs in the list")


def test_invert_result_independent_of_batch_and_position(converted, tmp_path):
  full, alone, name = images_alone_and_in_a_list(tmp_path)
  common = ["invert", "--generator", str(converted / "G"), "--loss", "mse",
            "--codes", "2", "--layer", "3", "--steps", "4"]
  assert main(common + ["--images", str(full), "--batch", "3", "--out", str(tmp_path / "a")]) == 0
  assert main(common + ["--images", str(full), "--batch", "1", "--out", str(tmp_path / "b")]) == 0
  assert main(common + ["--images", str(alone), "--batch", "1", "--out", str(tmp_path / "c")]) == 0
  with np.load(tmp_path / "a" / "result.npz") as a, np.load(tmp_path / "b" / "result.npz") as b:
    np.testing.assert_allclose(a["z"], b["z"], atol=1e-5)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    assert np.abs(a["z"][0] - a["z"][1]).max() > 0.1   # distinct images start from distinct codes
  assert_same_image_result(tmp_path / "a", tmp_path / "c", name, ("z", "alpha"))
  cfg = json.loads((tmp_path / "c" / "config.json").read_text())
  assert "crc32(image name)" in cfg["settings"]["image_keys"]


@pytest.mark.parametrize("args, message", [
    (["--loss", "mse", "--images", str(CHURCH), "--layer", "42"], "--layer 42 is outside"),
    (["--loss", "mse", "--images", str(CHURCH), "--codes", "0"], "--codes must be >= 1"),
    (["--loss", "combine", "--vgg", "/nonexistent/vgg", "--images", str(CHURCH)],
     "/nonexistent/vgg is not a converted model"),
    (["--loss", "mse", "--images", "/nonexistent.png"], "no such file"),
])
def test_bad_input_stops_before_writing(converted, tmp_path, args, message):
  out = tmp_path / "out"
  proc = subprocess.run([sys.executable, "-m", "jaxinv", "invert", "--generator", str(converted / "G"),
                         "--out", str(out), "--steps", "1", *args],
                        capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 2, proc.stderr
  assert message in proc.stderr and "Traceback" not in proc.stderr
  assert not out.exists()


def test_empty_and_corrupt_images(converted, tmp_path):
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "corrupt.png").write_bytes(b"\x89PNG garbage")
  for name, message in (("empty.png", "empty file"), ("corrupt.png", "not a readable image")):
    proc = subprocess.run([sys.executable, "-m", "jaxinv", "invert", "--generator",
                           str(converted / "G"), "--loss", "mse", "--images", str(tmp_path / name),
                           "--out", str(tmp_path / "out"), "--steps", "1"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and message in proc.stderr and name in proc.stderr
    assert not (tmp_path / "out").exists()


def test_convert_refuses_unknown_checkpoint(tmp_path):
  torch = pytest.importorskip("torch")
  torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "x.pth")
  proc = subprocess.run([sys.executable, "-m", "jaxinv", "convert", str(tmp_path / "x.pth"),
                         str(tmp_path / "dest")], capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 2 and "unrecognised checkpoint" in proc.stderr
  assert not (tmp_path / "dest").exists()
