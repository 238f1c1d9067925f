"""experiments.report: CSV, markdown, plots and grids from a synthetic run directory."""

import csv

import numpy as np

from jaxinv.experiments import report, runlog
from jaxinv.io import images as image_io


def _fake_run(run_dir, with_lpips):
  recs = []
  for codes in (2, 4):
    for layer in (2, 4):
      h = f"h{codes}{layer}"
      for img in ("a", "b"):
        r = {"config_hash": h, "image": img, "generator": "g.pth", "task": "reconstruct",
             "codes": codes, "layer": layer, "seed": 0, "steps": 3, "optimizer": "sgd", "lr": 1.0,
             "loss_type": "mse", "loss": 0.1 / codes, "psnr": 10.0 + codes + layer + (img == "b"),
             "ssim": 0.5}
        if with_lpips:
          r["lpips"] = 0.3
        recs.append(r)
        image_io.save_png(str(run_dir / "images" / h / f"{img}.png"), np.zeros((8, 8, 3), np.float32))
  for img in ("a", "b"):
    image_io.save_png(str(run_dir / "images" / "targets" / f"{img}.png"), np.ones((8, 8, 3), np.float32))
  runlog.append_records(str(run_dir / "results.jsonl"), recs[:5])
  runlog.append_records(str(run_dir / "results.jsonl"), recs[5:] + recs[:1])   # a duplicate
  with open(run_dir / "results.jsonl", "ab") as f:
    f.write(b'{"config_hash": "torn')                                            # a torn last line
  return recs


def test_report_files(tmp_path, monkeypatch):
  for d in ("h22", "h24", "h42", "h44", "targets"):
    (tmp_path / "images" / d).mkdir(parents=True)
  recs = _fake_run(tmp_path, with_lpips=True)
  figures = {}
  save_fig = report._save_fig

  def keep(fig, path):
    figures[path.rsplit("/", 1)[-1]] = fig
    save_fig(fig, path)
  monkeypatch.setattr(report, "_save_fig", keep)
  rep = report.write_report(str(tmp_path))
  out = tmp_path / "report"
  assert len(rep["records"]) == len(recs) == 8
  for name in ("results.csv", "summary.csv", "summary.md", "psnr_vs_N.png", "psnr_vs_layer.png",
               "lpips_vs_N.png", "lpips_vs_layer.png", "grid_reconstruct.png"):
    assert (out / name).is_file(), name
  rows = list(csv.DictReader(open(out / "summary.csv")))
  assert len(rows) == 4
  r = next(r for r in rows if r["codes"] == "4" and r["layer"] == "2")
  assert float(r["psnr_mean"]) == 16.5 and r["n"] == "2"
  md = (out / "summary.md").read_text()
  assert "| g.pth | reconstruct | 4 | 2 | 2 |" in md and "lpips" in md
  # PSNR vs N: one line per layer, x = N, y = mean over the two images, error bar = their spread.
  ax = figures["psnr_vs_N.png"].get_axes()[0]
  assert ax.get_xlabel().startswith("N") and ax.get_ylabel() == "PSNR (dB)"
  assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4"] and "2 images" in ax.get_title()
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ℓ=2", "ℓ=4"]
  assert len(ax.containers) == 2
  for bars, layer in zip(ax.containers, (2, 4)):
    line = bars.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [2, 4])
    np.testing.assert_allclose(line.get_ydata(), [10.5 + n + layer for n in (2, 4)])
  ax = figures["psnr_vs_layer.png"].get_axes()[0]
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["N=2", "N=4"]
  for bars, n in zip(ax.containers, (2, 4)):
    line = bars.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [2, 4])
    np.testing.assert_allclose(line.get_ydata(), [10.5 + n + layer for layer in (2, 4)])
  ax = figures["lpips_vs_N.png"].get_axes()[0]
  assert len(ax.containers) == 2
  for bars in ax.containers:
    np.testing.assert_allclose(bars.lines[0].get_ydata(), [0.3, 0.3])
  # Grid: rows images a, b (labelled), columns target + the 4 settings (labelled), PSNR under each
  # result; the target column holds the targets (white), the settings' columns the renders (zeros).
  lay = rep["grids"]["grid_reconstruct.png"]
  assert lay.row_labels == ("a", "b")
  assert lay.col_labels == ("target", "N=2 layer=2", "N=2 layer=4", "N=4 layer=2", "N=4 layer=4")
  assert lay.captions[1][1:] == ("15.00 dB", "17.00 dB", "17.00 dB", "19.00 dB")
  grid = image_io.load_rgb_uint8(str(out / "grid_reconstruct.png"))
  assert grid.shape[:2] == (lay.top(2), lay.left(5))
  zero = image_io.to_uint8(np.zeros((8, 8, 3), np.float32))
  for i in range(2):
    for j in range(5):
      cell = grid[lay.top(i):lay.top(i) + lay.cell:lay.scale, lay.left(j):lay.left(j) + lay.cell:lay.scale]
      np.testing.assert_array_equal(cell, np.full_like(zero, 255) if j == 0 else zero)


def test_report_groups_by_method(tmp_path, monkeypatch):
  """Records of several methods (legacy records without ``method`` are mGANprior's): one summary
  row per method × variant × (N, ℓ); N × ℓ plots only for methods that have them; one grid per
  task whose columns name the method."""
  recs = []
  for img in ("a", "b"):
    base = {"image": img, "generator": "g.pth", "task": "reconstruct", "seed": 0, "steps": 3,
            "loss": 0.1, "ssim": 0.5}
    recs.append({**base, "config_hash": "m22", "codes": 2, "layer": 2, "psnr": 10.0})
    recs.append({**base, "config_hash": "s22", "method": "style", "space": "multi",
                 "code_space": "wp", "codes": 2, "layer": 2, "psnr": 12.0})
    recs.append({**base, "config_hash": "s42", "method": "style", "space": "multi",
                 "code_space": "wp", "codes": 4, "layer": 2, "psnr": 13.0})
    recs.append({**base, "config_hash": "dsr", "method": "dgp", "task": "SR",
                 "schedule": "in128_SR_D_biased", "psnr": 20.0 + (img == "b")})
    recs.append({**base, "config_hash": "dcol", "method": "dgp", "task": "colorization",
                 "schedule": "in128_colorization", "psnr": 15.0})
  for r in recs:
    image_io.save_png(str(tmp_path / "images" / r["config_hash"] / f"{r['image']}.png"),
                      np.zeros((8, 8, 3), np.float32))
  for img in ("a", "b"):
    image_io.save_png(str(tmp_path / "images" / "targets" / f"{img}.png"), np.ones((8, 8, 3), np.float32))
  runlog.append_records(str(tmp_path / "results.jsonl"), recs)
  figures = {}
  save_fig = report._save_fig

  def keep(fig, path):
    figures[path.rsplit("/", 1)[-1]] = fig
    save_fig(fig, path)
  monkeypatch.setattr(report, "_save_fig", keep)
  rep = report.write_report(str(tmp_path))
  out = tmp_path / "report"
  keys = [(s["method"], s["variant"], s["task"], s["codes"], s["layer"], s["n"], s["psnr_mean"])
          for s in rep["summary"]]
  assert keys == [("dgp", "in128_SR_D_biased", "SR", None, None, 2, 20.5),
                  ("dgp", "in128_colorization", "colorization", None, None, 2, 15.0),
                  ("mganprior", "", "reconstruct", 2, 2, 2, 10.0),
                  ("style", "multi (wp codes)", "reconstruct", 2, 2, 2, 12.0),
                  ("style", "multi (wp codes)", "reconstruct", 4, 2, 2, 13.0)]
  rows = list(csv.DictReader(open(out / "summary.csv")))
  assert [(r["method"], r["codes"]) for r in rows] == [("dgp", ""), ("dgp", ""), ("mganprior", "2"),
                                                      ("style", "2"), ("style", "4")]
  assert {r["method"] for r in csv.DictReader(open(out / "results.csv"))} == {"mganprior", "style", "dgp"}
  md = (out / "summary.md").read_text()
  assert "| method | variant | generator | task | N | ℓ | n |" in md
  assert "| dgp | in128_SR_D_biased | g.pth | SR |  |  | 2 |" in md
  # N × ℓ plots for mGANprior and the style space only, tagged by method.
  assert "psnr_vs_N_mganprior_g_reconstruct.png" in rep["files"]
  assert "psnr_vs_N_style_multi_g_reconstruct.png" in rep["files"]
  assert not any("dgp" in f for f in rep["files"] if f.endswith(".png") and "_vs_" in f)
  # DGP's schedules side by side: one point per variant, ordered as in the summary.
  assert "psnr_by_variant_dgp.png" in rep["files"] and (out / "psnr_by_variant_dgp.png").is_file()
  ax = figures["psnr_by_variant_dgp.png"].get_axes()[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == ["in128_SR_D_biased\nSR",
                                                          "in128_colorization\ncolorization"]
  np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [20.5, 15.0])
  assert not any("by_variant_mganprior" in f or "by_variant_style" in f for f in rep["files"])
  lay = rep["grids"]["grid_reconstruct.png"]
  assert lay.col_labels == ("target", "mganprior N=2 layer=2", "style multi (wp codes) N=2 layer=2",
                            "style multi (wp codes) N=4 layer=2")
  assert rep["grids"]["grid_SR.png"].col_labels == ("target", "in128_SR_D_biased")
  assert rep["grids"]["grid_SR.png"].captions[1][1:] == ("21.00 dB",)
