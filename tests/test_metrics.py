"""Unit tests for jaxinv.metrics and ``jaxinv evaluate`` (pairing, refusals, masks, CSV)."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from jaxinv import metrics


def _rand_u8(shape, seed):
  return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def test_psnr_identities():
  a = _rand_u8((16, 16, 3), 0)
  assert metrics.psnr(a, a, 255) == float("inf")
  b = a.astype(np.int16) + 5
  b = np.clip(b, 0, 255).astype(np.uint8)
  err = np.mean((a.astype(float) - b) ** 2)
  assert metrics.psnr(a, b, 255) == pytest.approx(10 * np.log10(255 ** 2 / err))
  with pytest.raises(ValueError, match="data_range"):
    metrics.psnr(a, b, None)
  with pytest.raises(ValueError, match="shape"):
    metrics.ssim(a, b[:8], 255)


def test_ssim_identity_and_range_dependence():
  a = _rand_u8((24, 24, 3), 1)
  assert metrics.ssim(a, a, 255) == pytest.approx(1.0)
  assert metrics.ssim_skimage(a, a, 255) == pytest.approx(1.0)
  b = _rand_u8((24, 24, 3), 2)
  assert metrics.ssim(a, b, 255) != pytest.approx(metrics.ssim(a, b, 2.0))


def test_skimage_parity_when_available():
  sk = pytest.importorskip("skimage.metrics")
  a, b = _rand_u8((40, 33, 3), 3), _rand_u8((40, 33, 3), 4)
  want = sk.structural_similarity(a, b, data_range=255, channel_axis=-1)
  assert metrics.ssim_skimage(a, b, 255) == pytest.approx(want, abs=1e-7)
  want = sk.structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False)
  assert metrics.ssim(a, b, 255) == pytest.approx(want, abs=1e-7)


def test_masked_metrics_are_hole_only():
  gt = _rand_u8((30, 30, 3), 5)
  pred = gt.copy()
  mask = np.zeros((30, 30), np.float32)
  mask[8:20, 5:25] = 1
  pred[mask == 0] = 0  # damage outside the hole only: hole metrics stay perfect
  out = metrics.image_metrics(pred, gt, mask=mask)
  assert out["psnr"] == float("inf") and out["ssim"] == pytest.approx(1.0)
  assert metrics.hole_box(mask) == (8, 20, 5, 25)


# ----------------------------------------------------------------------------- CLI

def _save(path, arr, mode=None):
  im = Image.fromarray(arr)
  if mode:
    im = im.convert(mode)
  im.save(path)


@pytest.fixture()
def dirs(tmp_path):
  pred, gt = tmp_path / "pred", tmp_path / "gt"
  pred.mkdir(), gt.mkdir()
  for i in range(3):
    g = _rand_u8((32, 32, 3), 10 + i)
    _save(gt / f"{i:04d}.png", g)
    p = np.clip(g.astype(int) + np.random.RandomState(i).randint(-20, 20, g.shape), 0, 255).astype(np.uint8)
    _save(pred / f"{i:04d}.jpg" if i == 0 else pred / f"{i:04d}.png", p)
  return pred, gt, tmp_path


def _run(*argv):
  from jaxinv.cli import main
  return main([str(a) for a in argv])


def _read(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_evaluate_writes_rows_and_mean(dirs):
  pred, gt, tmp = dirs
  out = tmp / "m.csv"
  assert _run("evaluate", pred, gt, "--out", out) == 0
  rows = _read(out)
  assert [r["name"] for r in rows] == ["0000", "0001", "0002", "mean"]
  assert list(rows[0]) == ["name", "psnr", "ssim", "ssim_skimage", "lpips"]  # built-in AlexNet LPIPS
  from jaxinv.models.registry import load_model
  p = np.asarray(Image.open(pred / "0001.png")).astype(np.float32) / 255 * 2 - 1
  g = np.asarray(Image.open(gt / "0001.png")).astype(np.float32) / 255 * 2 - 1
  # same model, same code path up to the CSV's float formatting
  assert float(rows[1]["lpips"]) == pytest.approx(float(metrics.lpips(load_model("lpips-alex"), p, g)),
                                                  abs=1e-6)
  assert _run("evaluate", pred, gt, "--lpips", "none", "--out", out, "--overwrite") == 0
  rows = _read(out)
  assert list(rows[0]) == ["name", "psnr", "ssim", "ssim_skimage"]
  vals = np.array([[float(r[k]) for k in ("psnr", "ssim", "ssim_skimage")] for r in rows])
  np.testing.assert_allclose(vals[-1], vals[:-1].mean(0), atol=2e-6)
  p1 = np.asarray(Image.open(pred / "0001.png"))
  g1 = np.asarray(Image.open(gt / "0001.png"))
  assert float(rows[1]["psnr"]) == pytest.approx(metrics.psnr(p1, g1, 255), abs=1e-5)


def test_evaluate_converts_modes_and_resizes_with_warning(dirs):
  pred, gt, tmp = dirs
  g = np.asarray(Image.open(gt / "0002.png"))
  _save(pred / "0002.png", g, "RGBA")  # RGBA: alpha dropped explicitly
  _save(pred / "0001.png", np.asarray(Image.fromarray(g).resize((48, 48))))
  with pytest.warns(UserWarning, match=r"48x48.*32x32"):
    assert _run("evaluate", pred, gt, "--lpips", "none", "--out", tmp / "m.csv") == 0
  rows = _read(tmp / "m.csv")
  assert rows[2]["psnr"] == "inf"


def test_evaluate_refusals(dirs, capsys):
  pred, gt, tmp = dirs
  out = tmp / "m.csv"
  os.remove(gt / "0002.png")
  assert _run("evaluate", pred, gt, "--lpips", "none", "--out", out) == 2
  assert "do not pair up" in capsys.readouterr().err and not out.exists()
  _save(gt / "0002.png", _rand_u8((32, 32, 3), 0))
  (pred / "0001.png").write_bytes(b"")
  assert _run("evaluate", pred, gt, "--lpips", "none", "--out", out) == 2
  err = capsys.readouterr().err
  assert "0001.png" in err and "empty" in err and not out.exists()
  (pred / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  assert _run("evaluate", pred, gt, "--lpips", "none", "--out", out) == 2
  assert "0001.png" in capsys.readouterr().err and not out.exists()


def test_evaluate_mask_refusals_and_hole(dirs, capsys):
  pred, gt, tmp = dirs
  zero = tmp / "zero.png"
  _save(zero, np.zeros((64, 64), np.uint8))
  assert _run("evaluate", pred, gt, "--lpips", "none", "--mask", zero, "--out", tmp / "m.csv") == 2
  assert "all zero" in capsys.readouterr().err
  ones = tmp / "ones.png"
  _save(ones, np.full((64, 64), 255, np.uint8))
  assert _run("evaluate", pred, gt, "--lpips", "none", "--mask", ones, "--out", tmp / "m.csv") == 2
  assert "all one" in capsys.readouterr().err
  hole = np.zeros((64, 64), np.uint8)
  hole[16:48, 16:48] = 255
  mpath = tmp / "hole.png"
  _save(mpath, hole)
  assert _run("evaluate", pred, gt, "--lpips", "none", "--mask", mpath, "--out", tmp / "m.csv") == 0
  rows = _read(tmp / "m.csv")
  p = np.asarray(Image.open(pred / "0001.png"))[8:24, 8:24]
  g = np.asarray(Image.open(gt / "0001.png"))[8:24, 8:24]
  assert float(rows[1]["psnr"]) == pytest.approx(metrics.psnr(p, g, 255), abs=1e-5)
  assert float(rows[1]["ssim_skimage"]) == pytest.approx(metrics.ssim_skimage(p, g, 255), abs=1e-5)


@pytest.mark.slow  # compiles AlexNet's backward pass (~1 min on the shared CPUs)
def test_invert_with_lpips_loss(tmp_path):
  from jaxinv import converters
  from tests.conftest import golden_file
  lp = tmp_path / "lpips"
  converters.convert_file(golden_file("metrics", "nets", "alex", "lin_file"), lp,
                          backbone=golden_file("metrics", "nets", "alex", "backbone_file"))
  gen = tmp_path / "pggan"
  converters.convert_file(golden_file("mganprior", "pggan", "checkpoint"), gen)
  img = tmp_path / "a.png"
  _save(img, _rand_u8((32, 32, 3), 0))
  out = tmp_path / "out"
  assert _run("invert", "--generator", gen, "--images", img, "--loss", "lpips", "--lpips", lp,
              "--steps", "3", "--codes", "2", "--layer", "4", "--lr", "0.1", "--out", out) == 0
  loss = np.load(out / "result.npz")["loss"]
  assert loss.shape == (3, 1) and np.all(np.isfinite(loss)) and loss[-1, 0] < loss[0, 0]


def test_evaluate_lpips_column(dirs):
  from jaxinv import converters
  from jaxinv.models.registry import load_model
  from tests.conftest import golden_file
  pred, gt, tmp = dirs
  lp = tmp / "lpips"
  converters.convert_file(golden_file("metrics", "nets", "alex", "lin_file"), lp,
                          backbone=golden_file("metrics", "nets", "alex", "backbone_file"))
  assert _run("evaluate", pred, gt, "--lpips", lp, "--out", tmp / "m.csv") == 0
  rows = _read(tmp / "m.csv")
  assert list(rows[0])[-1] == "lpips"
  p = np.asarray(Image.open(pred / "0001.png")).astype(np.float32) / 255 * 2 - 1
  g = np.asarray(Image.open(gt / "0001.png")).astype(np.float32) / 255 * 2 - 1
  want = float(metrics.lpips(load_model(lp), p, g))
  assert float(rows[1]["lpips"]) == pytest.approx(want, abs=1e-5)
  assert float(rows[-1]["lpips"]) == pytest.approx(np.mean([float(r["lpips"]) for r in rows[:-1]]), abs=2e-6)


def test_evaluate_small_mask_region_drops_default_lpips(dirs, capsys):
  """A hole under 32 px: the default LPIPS is left out with a one-line warning (PSNR / SSIM still
  written, exit 0); an LPIPS asked for by name is refused, nothing written."""
  pred, gt, tmp = dirs
  hole = np.zeros((32, 32), np.uint8)
  hole[8:24, 8:24] = 255            # 16 px box at the images' 32 px
  mpath = tmp / "hole.png"
  _save(mpath, hole)
  out = tmp / "m.csv"
  assert _run("evaluate", pred, gt, "--mask", mpath, "--out", out) == 0
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "no LPIPS column" in err[0] and "16 px" in err[0] and "--lpips none" in err[0]
  rows = _read(out)
  assert list(rows[0]) == ["name", "psnr", "ssim", "ssim_skimage"] and len(rows) == 4
  p = np.asarray(Image.open(pred / "0001.png"))[8:24, 8:24]
  g = np.asarray(Image.open(gt / "0001.png"))[8:24, 8:24]
  assert float(rows[1]["psnr"]) == pytest.approx(metrics.psnr(p, g, 255), abs=1e-5)
  out2 = tmp / "m2.csv"
  for net in ("alex", "vgg"):
    assert _run("evaluate", pred, gt, "--mask", mpath, "--lpips", net, "--out", out2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--lpips {net}" in err[0] and "32x32" in err[0] and "--lpips none" in err[0]
    assert not out2.exists()
  assert _run("evaluate", pred, gt, "--mask", mpath, "--lpips", "none", "--out", out2) == 0
  assert capsys.readouterr().err == ""


def test_evaluate_default_lpips_kept_on_a_large_enough_hole(tmp_path, capsys):
  rng = np.random.RandomState(0)
  pred, gt = tmp_path / "pred", tmp_path / "gt"
  pred.mkdir(), gt.mkdir()
  g = rng.randint(0, 256, (48, 48, 3)).astype(np.uint8)
  _save(gt / "a.png", g)
  _save(pred / "a.png", np.clip(g.astype(int) + rng.randint(-30, 30, g.shape), 0, 255).astype(np.uint8))
  hole = np.zeros((48, 48), np.uint8)
  hole[4:40, 6:44] = 255            # 36 x 38 box: LPIPS can score it
  _save(tmp_path / "hole.png", hole)
  assert _run("evaluate", pred, gt, "--mask", tmp_path / "hole.png", "--out", tmp_path / "m.csv") == 0
  assert "warning" not in capsys.readouterr().err
  rows = _read(tmp_path / "m.csv")
  assert list(rows[0])[-1] == "lpips" and float(rows[0]["lpips"]) > 0
