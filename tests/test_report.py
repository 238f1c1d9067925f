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


def test_report_files(tmp_path):
  for d in ("h22", "h24", "h42", "h44", "targets"):
    (tmp_path / "images" / d).mkdir(parents=True)
  recs = _fake_run(tmp_path, with_lpips=True)
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
  grid = image_io.load_rgb_uint8(str(out / "grid_reconstruct.png"))
  assert grid.shape[0] > 2 * 8 and grid.shape[1] > 5 * 8     # 2 rows × (target + 4 settings)
