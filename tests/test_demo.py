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
  n_img = 3     # two batches, the second padded (test_batches_do_not_change_results: inert)
  rc = main(["demo", "--out", str(out), "--codes", "1,2", "--layers", "2", "--images", str(n_img),
             "--batch", "2", "--steps", "2", "--grid-images", "2", "--vgg-codes", "2",
             "--no-progress"])
  assert rc == 0
  from PIL import Image
  from jaxinv.io.images import to_uint8
  res, shown = 32, 2
  data = demo.load_test_digits(res, n_img)
  gt = to_uint8(data["images"])
  meta = json.loads((out / "config.json").read_text())
  assert meta["config"]["codes"] == [1, 2] and meta["config"]["layers"] == [2]
  assert meta["config"]["objectives"] == ["mse", "mse+vgg"] and meta["config"]["vgg_codes"] == [2]

  def strings(x):
    if isinstance(x, dict):
      return [s for v in x.values() for s in strings(v)]
    if isinstance(x, list):
      return [s for v in x for s in strings(v)]
    return [x] if isinstance(x, str) else []
  # config.json is shareable: no absolute path of this machine (model names, not where they are).
  assert not [s for s in strings(meta) if os.path.isabs(s) or str(tmp_path) in s]
  # Grids: one row per shown digit, labelled; columns ground truth, observation, then one per
  # (objective, layer, N), labelled; PSNR under each result. The recorded layout must locate the
  # pixels: the ground-truth column holds the held-out digits themselves.
  study_cols = ["MSE, layer 2, N=1", "MSE, layer 2, N=2", "MSE+VGG, layer 2, N=2"]
  expected_columns = {
      "grid_reconstruct.png": ["ground truth", "observation"] + study_cols,
      "grid_inpaint.png": ["ground truth", "observation"] + study_cols,
      "grid_super-resolve.png": ["ground truth", "observation"] + study_cols,
      "grid_encoder.png": ["ground truth"] + list(demo.ENCODER_METHODS)}
  for name, columns in expected_columns.items():
    lay = meta["grids"][name]
    assert lay["columns"] == columns, name
    assert lay["rows"] == [f"digit {l} (#{i})" for i, l in
                           zip(data["index"][:shown], data["labels"][:shown])]
    assert lay["cell"] >= 96 and lay["cell"] == res * lay["scale"]
    grid = np.asarray(Image.open(out / name).convert("RGB"))
    (y0, x0), (dy, dx) = lay["origin"], lay["pitch"]
    assert grid.shape[:2] == (y0 + shown * dy, x0 + len(columns) * dx), name
    for i in range(shown):
      cell = grid[y0 + i * dy:y0 + i * dy + lay["cell"], x0:x0 + lay["cell"]]
      np.testing.assert_array_equal(cell[::lay["scale"], ::lay["scale"]], gt[i], err_msg=f"{name} row {i}")
      assert (grid[y0 + i * dy + lay["cell"]:y0 + (i + 1) * dy, x0 + dx:] < 128).any(), "PSNR captions"
  plot = Image.open(out / "psnr_vs_codes.png")
  assert plot.format == "PNG" and plot.size[0] > plot.size[1] > 100
  rows = list(csv.DictReader(open(out / "results.csv")))
  study = [r for r in rows if r["method"] == "mganprior"]
  # tasks × (2 MSE runs + 1 MSE+VGG run) × images, every image of every batch (2 + padded 1)
  assert len(study) == 3 * 3 * n_img
  assert {"method", "objective", "task", "codes", "layer", "image", "psnr", "ssim", "lpips"} <= set(rows[0])
  assert {(r["objective"], r["codes"]) for r in study} == {("mse", "1"), ("mse", "2"), ("mse+vgg", "2")}
  assert {r["task"] for r in study} == {"reconstruct", "inpaint", "super-resolve"}
  assert sorted({int(r["image"]) for r in study}) == sorted(int(i) for i in data["index"])
  assert all(np.isfinite(float(r["psnr"])) and 0 <= float(r["lpips"]) < 1 for r in rows)
  # Encoder comparison: 4 methods × 3 images on reconstruct, at the study's steps (encoder: 0).
  enc = [r for r in rows if r["method"] != "mganprior"]
  assert sorted({r["method"] for r in enc}) == sorted(demo.ENCODER_METHODS) and len(enc) == 4 * n_img
  assert {r["steps"] for r in enc if r["method"] != "encoder"} == {"2"}
  summary = list(csv.DictReader(open(out / "summary.csv")))
  assert {r["method"] for r in summary} == {"mganprior", *demo.ENCODER_METHODS}
  paired = list(csv.DictReader(open(out / "paired.csv")))
  assert [(p["comparison"], p["task"]) for p in paired] == (
      [("N=2 - N=1", t) for t in demo.TASK_NAMES] + [("mse+vgg - mse", t) for t in demo.TASK_NAMES])
  # the summary's spread is the per-image spread of results.csv
  for s in summary:
    vals = [float(r["lpips"]) for r in rows if (r["method"], r["objective"], r["task"], r["layer"],
                                                r["codes"]) == (s["method"], s["objective"], s["task"],
                                                                s["layer"], s["codes"])]
    assert len(vals) == int(s["images"]) == n_img
    np.testing.assert_allclose(float(s["lpips"]), np.mean(vals), atol=1e-4)   # CSV keeps 4 decimals
    np.testing.assert_allclose(float(s["lpips_std"]), np.std(vals, ddof=1), atol=1e-4)


def test_batches_do_not_change_results():
  """Images are independent: a padded last batch and a different batch size give the same rows."""
  kw = dict(tasks=("reconstruct",), codes=(2,), layers=(4,), images=3, steps=3,
            objectives=("mse",), encoder=None, lpips=None)
  a = demo.run_demo(demo.DemoConfig(batch=3, **kw), progress=False)["rows"]
  b = demo.run_demo(demo.DemoConfig(batch=2, **kw), progress=False)["rows"]
  assert [r["image"] for r in a] == [r["image"] for r in b]
  # Measured: identical (0.0) under AVX-512 and XLA_FLAGS=--xla_cpu_max_isa=AVX2. Bounds: a float32
  # reduction-order difference (batch shape) of ~1e-7 relative in the loss, and on the uint8
  # pictures a one-level flip of a pixel, which moves PSNR by 4.34·(2|e| + 1) / (3072·MSE) dB:
  # < 0.001 dB at the 15-18 dB of these 3-step results (MSE ~ 1000-2000, |e| ≤ 255).
  np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5)
  np.testing.assert_allclose([r["psnr"] for r in a], [r["psnr"] for r in b], atol=5e-3)


def test_summary_spread():
  rows = [{"method": "mganprior", "objective": "mse", "task": "reconstruct", "layer": 2, "codes": 1,
           "image": i, "label": 0, "psnr": v, "ssim": 0.5} for i, v in enumerate([20.0, 22.0, 27.0])]
  (s,) = demo.summarize(rows)
  assert s["images"] == 3 and s["psnr"] == pytest.approx(23.0)
  assert s["psnr_std"] == pytest.approx(np.std([20, 22, 27], ddof=1))
  # Student's t, 2 degrees of freedom: t_0.975 = 4.302653 (tables)
  assert s["psnr_ci95"] == pytest.approx(4.302653 * s["psnr_std"] / np.sqrt(3), rel=1e-6)


def test_paired_differences():
  """Per-image differences: a constant +1 dB shift with image-to-image spread of 5 dB gives
  +1 ± 0 (the spread cancels); comparisons only between runs that exist."""
  base = [20.0, 25.0, 30.0]
  rows = []
  for o, n, shift in (("mse", 1, 0.0), ("mse", 5, 1.0), ("mse", 20, 1.0), ("mse+vgg", 20, 1.5)):
    for i, v in enumerate(base):
      jitter = 0.3 * (i - 1) if n == 20 and o == "mse" else 0.0
      rows.append({"method": "mganprior", "objective": o, "task": "reconstruct", "layer": 4,
                   "codes": n, "image": i, "label": 0, "psnr": v + shift + jitter, "ssim": 0.5})
  rows.append({"method": "encoder", "objective": "mse", "task": "reconstruct", "layer": "",
               "codes": "", "image": 0, "label": 0, "psnr": 1.0, "ssim": 0.1})
  got = {(p["comparison"], p["objective"]): p for p in demo.paired_differences(rows)}
  assert set(got) == {("N=5 - N=1", "mse"), ("N=20 - N=5", "mse"), ("mse+vgg - mse", "mse+vgg")}
  assert got[("N=5 - N=1", "mse")]["psnr"] == pytest.approx(1.0)
  assert got[("N=5 - N=1", "mse")]["psnr_ci95"] == pytest.approx(0.0, abs=1e-12)
  d = got[("N=20 - N=5", "mse")]      # differences -0.3, 0, +0.3: std 0.3, t(2) = 4.302653
  assert d["psnr"] == pytest.approx(0.0, abs=1e-12) and d["images"] == 3
  assert d["psnr_ci95"] == pytest.approx(4.302653 * 0.3 / np.sqrt(3), rel=1e-6)
  v = got[("mse+vgg - mse", "mse+vgg")]   # against mse at the same N = 20
  assert v["codes"] == 20 and v["psnr"] == pytest.approx(0.5)


def test_config_validation():
  with pytest.raises(ValueError, match="objective"):
    demo.DemoConfig(objectives=("mse", "lpips"))
  with pytest.raises(ValueError, match="subset"):
    demo.DemoConfig(codes=(1, 5), vgg_codes=(20,))
  cfg = demo.DemoConfig(codes=(1, 5, 20), layers=(2, 4))
  assert cfg.grid_of("mse+vgg") == [(4, 1), (4, 20)] and len(cfg.grid_of("mse")) == 6
  assert len(cfg.runs()) == 3 * (6 + 2)


def test_plot_figure_shows_the_summary():
  cfg = demo.DemoConfig(codes=(1, 2, 5), layers=(2, 4), tasks=("reconstruct", "inpaint"), steps=7)
  rows = [{"method": "mganprior", "objective": o, "task": t, "layer": l, "codes": n, "image": i,
           "label": i, "psnr": 20 + n + l / 10 + (t == "inpaint") + i + (o == "mse+vgg") * 3,
           "ssim": 0.5, "lpips": 0.3 - 0.01 * n + 0.01 * i,
           **({"psnr_hole": 10 + n + i} if t == "inpaint" else {})}
          for o in cfg.objectives for t in cfg.tasks for l, n in cfg.grid_of(o) for i in (0, 2)]
  rows.append({"method": "encoder", "objective": "mse", "task": "reconstruct", "layer": "",
               "codes": "", "image": 0, "label": 0, "psnr": 99.0, "ssim": 0.9, "lpips": 0.0,
               "steps": 0})
  curves = {(o, t, l, n): np.linspace(1.0, 0.1, cfg.steps) * n for o in cfg.objectives
            for t in cfg.tasks for l, n in cfg.grid_of(o)}
  fig = demo.plot_figure(demo.summarize(rows), cfg, curves)
  axes = fig.get_axes()
  assert [ax.get_title() for ax in axes] == (list(cfg.tasks) + ["loss per step, MSE"]
                                             + list(cfg.tasks) + ["loss per step, MSE+VGG"])
  title = fig._suptitle.get_text()
  assert "2 held-out digits" in title and "7 Adam steps" in title and "95% CI" in title
  t975_1 = 12.706205  # Student's t, 1 degree of freedom (two images)
  lines = [("mse", 2), ("mse", 4), ("mse+vgg", 4)]
  for row, metric in enumerate(("psnr", "lpips")):
    for ax, task in zip(axes[row * 3:row * 3 + 2], cfg.tasks):
      assert ax.get_xlabel() == "number of codes N"
      assert ax.get_ylabel() == ("PSNR (dB)" if metric == "psnr" else "LPIPS (alex), lower is better")
      hole = task == "inpaint" and metric == "psnr"
      assert len(ax.containers) == len(lines) * (2 if hole else 1)
      bars = iter(ax.containers)
      for objective, layer in lines:
        codes = [n for l, n in cfg.grid_of(objective) if l == layer]
        line = next(bars).lines[0]       # mean over images 0 and 2 = value at image 1
        np.testing.assert_array_equal(line.get_xdata(), codes)
        want = ([21 + n + layer / 10 + (task == "inpaint") + (objective == "mse+vgg") * 3 for n in codes]
                if metric == "psnr" else [0.31 - 0.01 * n for n in codes])
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), want)
        if hole:
          np.testing.assert_allclose(np.asarray(next(bars).lines[0].get_ydata(), float), [11 + n for n in codes])
      segments = ax.containers[0].lines[2][0].get_segments()
      half = 2 ** 0.5 * (1.0 if metric == "psnr" else 0.01)   # sample std of the two images
      np.testing.assert_allclose([seg[1][1] - seg[0][1] for seg in segments],
                                 2 * t975_1 * half / 2 ** 0.5, rtol=1e-5)   # ± 95% CI
      assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "5"]
  mse_loss, vgg_loss = axes[2], axes[5]
  assert len(mse_loss.get_lines()) == len(cfg.tasks) * len(cfg.layers)      # N = 5 at each layer
  assert len(vgg_loss.get_lines()) == len(cfg.tasks)                        # layer 4, N = 5
  np.testing.assert_allclose(mse_loss.get_lines()[0].get_ydata(), np.linspace(1.0, 0.1, 7) * 5)


def test_demo_cli_rejects_bad_layer(tmp_path, capsys):
  from jaxinv.cli import main
  assert main(["demo", "--out", str(tmp_path / "x"), "--layers", "0"]) == 2
  assert "layers" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--vgg", "nowhere"], "--vgg nowhere"), (["--lpips", "squeeze"], "--lpips squeeze"),
    (["--objectives", "mse,l1"], "objective"), (["--vgg-codes", "7"], "subset")])
def test_demo_cli_refuses_bad_models_and_grids(tmp_path, capsys, flags, message):
  from jaxinv.cli import main
  assert main(["demo", "--out", str(tmp_path / "x"), "--no-progress", *flags]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err
  assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_train_tiny(tmp_path):
  pytest.importorskip("sklearn")
  import importlib
  train = importlib.import_module("jaxinv.experiments.train_demo_prior")
  manifest = train.train_and_save(train.get_config("tiny"), str(tmp_path / "prior"), log=lambda s: None)
  m = load_model(str(tmp_path / "prior" / "generator"))
  assert isinstance(m.config, pggan.PGGANConfig) and manifest["steps"] == 4
