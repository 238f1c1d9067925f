"""Output hygiene: --out ownership (refuse another run's folder unless --overwrite, the same run
may rerun), file modes from the umask with atomic writes, and nothing left by refused runs."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from jaxinv.cli import main
from jaxinv.cli.outputs import MARKER
from jaxinv.io import checkpoints


@pytest.fixture()
def umask():
  old = os.umask(0o022)
  yield lambda m: os.umask(m)
  os.umask(old)


def _mode(path):
  return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_and_model_dirs_follow_the_umask(tmp_path, umask):
  checkpoints.atomic_write_bytes(tmp_path / "a.bin", b"x")
  assert _mode(tmp_path / "a.bin") == 0o644
  umask(0o027)
  checkpoints.atomic_write_bytes(tmp_path / "b.bin", b"y")
  assert _mode(tmp_path / "b.bin") == 0o640
  umask(0o022)
  checkpoints.save_model(tmp_path / "m", "vgg16", {"num_modules": 2},
                         {"features": {"0": {"weight": np.zeros((3, 3, 3, 64), np.float32),
                                             "bias": np.zeros((64,), np.float32)}}})
  assert _mode(tmp_path / "m") == 0o755 and _mode(tmp_path / "m" / "config.json") == 0o644
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]  # renames, no leftovers


def _images(tmp_path):
  d = tmp_path / "imgs"
  d.mkdir()
  rng = np.random.RandomState(0)
  for i in range(2):
    Image.fromarray(rng.randint(0, 256, (32, 32, 3)).astype(np.uint8)).save(d / f"im{i}.png")
  return d


def test_out_folder_ownership(tmp_path, umask, capsys):
  images = _images(tmp_path)
  out = tmp_path / "out"
  base = ["invert", "--generator", "demo-digits", "--images", str(images), "--loss", "mse",
          "--steps", "1", "--codes", "1", "--out", str(out)]
  assert main(base) == 0
  files = sorted(os.listdir(out))
  assert MARKER in files and "result.npz" in files
  assert all(_mode(out / f) == 0o644 for f in files)
  assert main(base) == 0                          # the same run again is fine
  (out / "im0_stale.png").write_bytes(b"old")
  capsys.readouterr()
  assert main(base + ["--seed", "1"]) == 2        # another run: refused, nothing touched
  err = capsys.readouterr().err
  assert "another run" in err and "--overwrite" in err and (out / "im0_stale.png").exists()
  assert main(base + ["--seed", "1", "--overwrite"]) == 0
  assert not (out / "im0_stale.png").exists() and sorted(os.listdir(out)) == files
  foreign = tmp_path / "photos"
  foreign.mkdir()
  (foreign / "mine.jpg").write_bytes(b"precious")
  for extra in ([], ["--overwrite"]):
    argv = base[:-1] + [str(foreign)] + extra
    assert main(argv) == 2
    assert (foreign / "mine.jpg").read_bytes() == b"precious" and len(os.listdir(foreign)) == 1
  assert "not a jaxinv output folder" in capsys.readouterr().err


def test_refused_run_leaves_no_folder(tmp_path):
  out = tmp_path / "new"
  assert main(["invert", "--generator", "demo-digits", "--images", str(tmp_path / "missing"),
               "--loss", "mse", "--out", str(out)]) == 2
  assert not out.exists()


def test_file_outputs_need_overwrite(tmp_path, capsys):
  z = tmp_path / "z.npy"
  np.save(z, np.zeros((1, 512), np.float32))
  out = tmp_path / "x.npy"
  out.write_bytes(b"keep")
  assert main(["generate", "demo-digits", "--latents", str(z), "--out", str(out)]) == 2
  assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep"
  assert main(["generate", "demo-digits", "--latents", str(z), "--out", str(out), "--overwrite"]) == 0
  assert np.load(out).ndim == 4


def test_evaluate_reads_invert_task_output_and_subset(tmp_path, capsys):
  import csv
  from jaxinv import metrics
  gt = _images(tmp_path)
  out = tmp_path / "run"
  hole = np.zeros((32, 32), np.uint8)
  hole[8:20, 8:20] = 255
  Image.fromarray(hole).save(tmp_path / "mask.png")
  assert main(["invert", "--generator", "demo-digits", "--images", str(gt), "--task", "inpaint",
               "--mask", str(tmp_path / "mask.png"), "--loss", "mse", "--steps", "1", "--codes", "1", "--out", str(out)]) == 0
  names = os.listdir(out)
  assert {"im0.png", "im0_restored.png", "im0_observation.png", "im0_grid.png"} <= set(names)
  csv_path = tmp_path / "m.csv"
  assert main(["evaluate", str(out), str(gt), "--lpips", "none", "--out", str(csv_path)]) == 0
  rows = list(csv.DictReader(open(csv_path)))
  assert [r["name"] for r in rows] == ["im0", "im1", "mean"]
  restored = np.asarray(Image.open(out / "im1_restored.png").convert("RGB"))
  truth = np.asarray(Image.open(gt / "im1.png").convert("RGB"))
  assert float(rows[1]["psnr"]) == pytest.approx(metrics.psnr(restored, truth, 255), abs=1e-5)
  # a ground-truth folder with more images: refused, unless --subset scores what is there
  Image.fromarray(truth).save(gt / "im2.png")
  assert main(["evaluate", str(out), str(gt), "--lpips", "none", "--out", str(tmp_path / "s.csv")]) == 2
  assert "--subset" in capsys.readouterr().err and not (tmp_path / "s.csv").exists()
  assert main(["evaluate", str(out), str(gt), "--lpips", "none", "--subset",
               "--out", str(tmp_path / "s.csv")]) == 0
  assert [r["name"] for r in csv.DictReader(open(tmp_path / "s.csv"))] == ["im0", "im1", "mean"]
