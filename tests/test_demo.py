"""The bundled demo prior (``demo-digits``) and ``jaxinv demo``."""

import csv
import json
import os

import jax
import numpy as np
import pytest

from jaxinv import demo
from jaxinv.models import pggan
from jaxinv.models.registry import BUNDLED, load_model

ASSET = os.path.dirname(BUNDLED["demo-digits"])

# Held-out reconstruction, trained prior vs an untrained generator of the same shape, both through
# the demo's mGANprior settings (Adam lr 0.05, MSE), N 5, layer 4. Measured on 4 digits (PSNR of the
# mean MSE): 100 steps 29.0 vs 12.0 dB, 50 steps 26.6 vs 9.9 dB (a 17 dB gap); the test asks for 10 dB.
CHECK = dict(images=3, codes=5, layer=4, steps=50)
MARGIN_DB = 10.0


@pytest.fixture(scope="module")
def model():
  return load_model("demo-digits", expect_family="pggan")


def test_bundled_prior_loads(model):
  cfg = model.config
  assert (cfg.resolution, cfg.z_dim, cfg.image_channels) == (32, 512, 3)
  manifest = json.load(open(os.path.join(ASSET, "manifest.json")))
  assert manifest["gan_config"]["generator"] == {k: getattr(cfg, k) for k in
                                                 manifest["gan_config"]["generator"]}
  for name in manifest["files"]:
    assert os.path.exists(os.path.join(ASSET, name.rstrip("/"))), name
  z = jax.random.normal(jax.random.key(0), (8, cfg.z_dim))
  x = np.asarray(model.module.apply(model.variables(), z))
  assert x.shape == (8, 32, 32, 3) and np.isfinite(x).all()
  # Gray digits: the three channels mostly agree and most pixels sit near the background value -1.
  assert np.abs(x - x.mean(-1, keepdims=True)).mean() < 0.1
  assert np.median(x) < -0.5


def test_shipped_split_is_the_training_split():
  pytest.importorskip("sklearn")
  from jaxinv.training import digits
  manifest = json.load(open(os.path.join(ASSET, "manifest.json")))
  c = manifest["train_config"]
  split = digits.load_split(c["split_seed"], c["n_test"])
  with np.load(os.path.join(ASSET, "test_digits.npz")) as f:
    np.testing.assert_array_equal(f["index"], split["test_idx"])
    np.testing.assert_array_equal(f["x8"], split["x8"][split["test_idx"]])
  assert manifest["data"]["test_index"] == split["test_idx"].tolist()
  assert not set(split["test_idx"]) & set(split["train_idx"])
  assert len(split["test_idx"]) + len(split["train_idx"]) == 1797


def _mean_psnr(module, params, gt):
  from jaxinv import metrics
  from jaxinv.inversion import objectives
  from jaxinv.inversion.methods import mganprior
  from jaxinv.io.images import to_uint8
  cfg = mganprior.MGANpriorConfig(codes=CHECK["codes"], layer=CHECK["layer"],
                                  loss=objectives.LossConfig(loss="mse"), optimizer="adam",
                                  lr=demo.DemoConfig().lr, steps=CHECK["steps"])
  out = mganprior.invert(module, params, gt, cfg, progress=False)
  return float(np.mean([metrics.psnr(to_uint8(a), to_uint8(b), 255.0)
                        for a, b in zip(out.images, gt)]))


def test_prior_beats_untrained(model):
  gt = demo.load_test_digits(model.config.resolution, CHECK["images"])["images"]
  trained = _mean_psnr(model.module, model.params, gt)
  untrained_params = model.module.init(jax.random.key(1), np.zeros((1, model.config.z_dim)))["params"]
  untrained = _mean_psnr(model.module, untrained_params, gt)
  print(f"held-out PSNR: trained {trained:.2f} dB, untrained {untrained:.2f} dB")
  assert trained - untrained >= MARGIN_DB, (trained, untrained)


def test_demo_cli_end_to_end(tmp_path):
  from jaxinv.cli import main
  out = tmp_path / "demo"
  rc = main(["demo", "--out", str(out), "--codes", "1", "--layers", "2", "--images", "2",
             "--steps", "2", "--no-progress"])
  assert rc == 0
  from PIL import Image
  from jaxinv.io.images import to_uint8
  res, n_img = 32, 2
  data = demo.load_test_digits(res, n_img)
  gt = to_uint8(data["images"])
  meta = json.loads((out / "config.json").read_text())
  assert meta["config"]["codes"] == [1] and meta["config"]["layers"] == [2]
  # Grids: one row per held-out digit, labelled; columns ground truth, observation, then one per
  # (layer, N), labelled; PSNR under each result. The recorded layout must locate the pixels: the
  # ground-truth column holds the held-out digits themselves, each result cell the PSNR it reports.
  expected_columns = {
      "grid_reconstruct.png": ["ground truth", "observation", "layer 2, N=1"],
      "grid_inpaint.png": ["ground truth", "observation", "layer 2, N=1"],
      "grid_super-resolve.png": ["ground truth", "observation", "layer 2, N=1"],
      "grid_encoder.png": ["ground truth"] + list(demo.ENCODER_METHODS)}
  for name, columns in expected_columns.items():
    lay = meta["grids"][name]
    assert lay["columns"] == columns, name
    assert lay["rows"] == [f"digit {l} (#{i})" for i, l in zip(data["index"], data["labels"])]
    assert lay["cell"] >= 96 and lay["cell"] == res * lay["scale"]
    grid = np.asarray(Image.open(out / name).convert("RGB"))
    (y0, x0), (dy, dx) = lay["origin"], lay["pitch"]
    assert grid.shape[:2] == (y0 + n_img * dy, x0 + len(columns) * dx), name
    for i in range(n_img):
      cell = grid[y0 + i * dy:y0 + i * dy + lay["cell"], x0:x0 + lay["cell"]]
      np.testing.assert_array_equal(cell[::lay["scale"], ::lay["scale"]], gt[i], err_msg=f"{name} row {i}")
      assert (grid[y0 + i * dy + lay["cell"]:y0 + (i + 1) * dy, x0 + dx:] < 128).any(), "PSNR captions"
  plot = Image.open(out / "psnr_vs_codes.png")
  assert plot.format == "PNG" and plot.size[0] > plot.size[1] > 100
  rows = list(csv.DictReader(open(out / "results.csv")))
  study = [r for r in rows if r["method"] == "mganprior"]
  assert len(study) == 3 * 1 * 1 * 2  # tasks × N × layers × images
  assert {"method", "task", "codes", "layer", "image", "psnr", "ssim"} <= set(rows[0])
  assert {r["task"] for r in study} == {"reconstruct", "inpaint", "super-resolve"}
  assert all(np.isfinite(float(r["psnr"])) for r in rows)
  # Encoder comparison: 4 methods × 2 images on reconstruct, at the study's steps (encoder: 0).
  enc = [r for r in rows if r["method"] != "mganprior"]
  assert sorted({r["method"] for r in enc}) == sorted(demo.ENCODER_METHODS) and len(enc) == 8
  assert {r["steps"] for r in enc if r["method"] != "encoder"} == {"2"}
  summary = list(csv.DictReader(open(out / "summary.csv")))
  assert {r["method"] for r in summary} == {"mganprior", *demo.ENCODER_METHODS}


def test_plot_figure_shows_the_summary():
  cfg = demo.DemoConfig(codes=(1, 2, 5), layers=(2, 4), tasks=("reconstruct", "inpaint"), steps=7)
  rows = [{"method": "mganprior", "task": t, "layer": l, "codes": n, "image": i, "label": i,
           "psnr": 20 + n + l / 10 + (t == "inpaint") + i, "ssim": 0.5,
           **({"psnr_hole": 10 + n + i} if t == "inpaint" else {})}
          for t in cfg.tasks for l in cfg.layers for n in cfg.codes for i in (0, 2)]
  rows.append({"method": "encoder", "task": "reconstruct", "layer": "", "codes": "", "image": 0,
               "label": 0, "psnr": 99.0, "ssim": 0.9, "steps": 0})
  curves = {(t, l, n): np.linspace(1.0, 0.1, cfg.steps) * n for t in cfg.tasks for l in cfg.layers
            for n in cfg.codes}
  fig = demo.plot_figure(demo.summarize(rows), cfg, curves)
  axes = fig.get_axes()
  assert [ax.get_title() for ax in axes] == list(cfg.tasks) + ["loss per step, N=5"]
  assert "2 held-out digits" in fig._suptitle.get_text() and "7 Adam steps" in fig._suptitle.get_text()
  for ax, task in zip(axes, cfg.tasks):
    assert ax.get_xlabel() == "number of codes N" and ax.get_ylabel() == "PSNR (dB)"
    hole = task == "inpaint"
    assert len(ax.containers) == len(cfg.layers) * (2 if hole else 1)
    bars = iter(ax.containers)
    for layer in cfg.layers:
      line = next(bars).lines[0]       # mean over images 0 and 2 = value at image 1; std 1 dB
      np.testing.assert_array_equal(line.get_xdata(), cfg.codes)
      np.testing.assert_allclose(np.asarray(line.get_ydata(), float), [21 + n + layer / 10 + hole for n in cfg.codes])
      if hole:
        np.testing.assert_allclose(np.asarray(next(bars).lines[0].get_ydata(), float), [11 + n for n in cfg.codes])
    segments = ax.containers[0].lines[2][0].get_segments()
    np.testing.assert_allclose([seg[1][1] - seg[0][1] for seg in segments], 2.0)   # ± 1 dB
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "5"]
  loss_ax = axes[-1]
  assert len(loss_ax.get_lines()) == len(cfg.tasks) * len(cfg.layers)
  np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), np.linspace(1.0, 0.1, 7) * 5)


def test_demo_cli_rejects_bad_layer(tmp_path, capsys):
  from jaxinv.cli import main
  assert main(["demo", "--out", str(tmp_path / "x"), "--layers", "0"]) == 2
  assert "layers" in capsys.readouterr().err


@pytest.mark.slow
def test_train_tiny(tmp_path):
  pytest.importorskip("sklearn")
  import importlib
  train = importlib.import_module("jaxinv.experiments.train_demo_prior")
  manifest = train.train_and_save(train.get_config("tiny"), str(tmp_path / "prior"), log=lambda s: None)
  m = load_model(str(tmp_path / "prior" / "generator"))
  assert isinstance(m.config, pggan.PGGANConfig) and manifest["steps"] == 4
