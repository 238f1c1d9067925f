"""experiments.sweep over other methods than mGANprior: the StyleGAN2 multi-code and DGP schedule
sweeps' test variants run on the golden fixture models, give the driver's numbers, and report."""

import math
import os

import numpy as np
import pytest

from jaxinv.experiments import report, sweep
from tests import sweep_helpers as H


def _points(config, golden_models: dict, cache, **execution):
  _, points = sweep.load_config(config)
  for p in points:
    with p.unlocked():
      for k, v in {**golden_models, **execution}.items():
        p[k] = v
      p.model_cache = str(cache)
  return points


def _driver_result(built, point, item):
  """The same point and image through the library driver (:func:`jaxinv.inversion.run.run`)."""
  from jaxinv.inversion import run
  data, gt = built.load([item])
  return run.run(built.method, [os.path.splitext(os.path.basename(item))[0]],
                 lambda idx: {k: np.asarray(v)[idx] for k, v in data.items()},
                 seed=int(point.seed), batch=1, progress=False, chunk=point.chunk), gt


def test_stylegan2_multicode_sweep(golden, tmp_path):
  gd = golden("stylegan2_rosinality")
  points = _points("stylegan2_multicode:test",
                   {"generator": str(gd.path(gd.expected["checkpoint"]["file"]))}, tmp_path / "models")
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert len(recs) == len(points) * len(sweep.list_images(points[0].images, points[0].max_images)) == 2
  assert {(r["method"], r["space"], r["codes"], r["layer"]) for r in recs} == \
      {("style", "multi", p.codes, p.layer) for p in points}
  assert len({r["config_hash"] for r in recs}) == 2
  for r in recs:
    assert r["steps"] == points[0].steps and math.isfinite(r["loss"]) and math.isfinite(r["psnr"])
    assert os.path.isfile(out / "images" / r["config_hash"] / f"{r['image']}.png")
  assert not any((out / "inflight").iterdir())
  # One point through the driver directly gives the sweep's record, bit for bit.
  point = next(p for p in points if p.codes == max(q.codes for q in points))
  rec = next(r for r in recs if r["codes"] == point.codes)
  built = sweep.build(point, str(tmp_path / "models"))
  item = sweep.list_images(point.images, point.max_images)[0]
  result, gt = _driver_result(built, point, item)
  assert result.names == [rec["image"]]
  assert float(result.stepwise["loss"][-1, 0]) == rec["loss"]
  from jaxinv import metrics
  assert float(metrics.psnr(result.images[""][0], gt[0], data_range=2.0)) == rec["psnr"]
  assert result.arrays["codes"].shape[:2] == (1, point.codes)
  # The report groups by method and plots N × ℓ.
  rep = report.write_report(str(out))
  assert [(s["method"], s["codes"], s["layer"]) for s in rep["summary"]] == \
      [("style", n, point.layer) for n in sorted(p.codes for p in points)]
  assert "psnr_vs_N.png" in rep["files"]


# The BigGAN fine-tuning step alone takes ~35 s to compile on 2 shared cores (the whole test 70-100 s).
@pytest.mark.slow
def test_dgp_schedule_sweep(golden, tmp_path):
  from tests.golden import _dgp
  gd = golden("dgp")
  ck = gd.expected["checkpoint"]
  image = _dgp.example_image(gd, next(iter(gd.expected["trajectories"].values()))["image"])
  points = _points("dgp_schedules:test", {"generator": str(gd.path(ck["G_file"])),
                                          "discriminator": str(gd.path(ck["D_file"]))},
                   tmp_path / "models", images=str(image))
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert len(recs) == 2 and {r["seed"] for r in recs} == {0, 1}
  stages = len(sweep._dgp_schedule(points[0]).stages)
  n_classes = sweep.load_model_cached(points[0].generator, str(tmp_path / "models")).config.n_classes
  for r in recs:
    assert r["method"] == "dgp" and r["task"] == "SR" and r["schedule"] == points[0].schedule
    assert r["iterations"] == [1] * stages and r["steps"] == stages and r["select_num"] == 2
    assert math.isfinite(r["loss"]) and math.isfinite(r["psnr"]) and math.isfinite(r["dgp_psnr"])
    # Both PSNRs compare the output with the original over the whole image (SR), on [-1, 1] with
    # range 2 vs on [0, 1] with range 1: the same number up to float32 rounding of the rescale.
    assert abs(r["psnr"] - r["dgp_psnr"]) < 1e-4, (r["psnr"], r["dgp_psnr"])
    assert 0 <= r["class"] < n_classes        # searched with z (the test variant's class is -1)
  # Each seed's candidates come from its own key: the two seeds start from different z.
  assert recs[0]["loss"] != recs[1]["loss"]
  assert not any((out / "inflight").iterdir())
  rep = report.write_report(str(out))
  assert [(s["method"], s["task"], s["n"]) for s in rep["summary"]] == [("dgp", "SR", 2)]


def test_idinvert_lambda_sweep(golden, tmp_path):
  gd = golden("idinvert")
  files = gd.expected["files"]
  image = gd.path(os.path.join(files["images_dir"], gd.expected["images"][0]))
  points = _points("idinvert_lambda:test", {"generator": str(gd.path(files["generator"])),
                                            "encoder": str(gd.path(files["encoder"]))},
                   tmp_path / "models", images=str(image))
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert sorted((r["method"], r["reg_weight"]) for r in recs) == \
      sorted(("idinvert", p.reg_weight) for p in points)
  for r in recs:
    assert r["steps"] == points[0].steps and math.isfinite(r["loss"]) and math.isfinite(r["psnr"])
  # Both start from the same encoder code E(x); λ changes where the optimisation goes.
  assert recs[0]["encoder_psnr"] == recs[1]["encoder_psnr"]
  assert recs[0]["loss"] != recs[1]["loss"]
  # One point through the driver directly gives the sweep's record, bit for bit.
  point = max(points, key=lambda p: p.reg_weight)
  rec = next(r for r in recs if r["reg_weight"] == point.reg_weight)
  built = sweep.build(point, str(tmp_path / "models"))
  result, gt = _driver_result(built, point, sweep.list_images(point.images, point.max_images)[0])
  assert float(result.stepwise["loss"][-1, 0]) == rec["loss"]
  rep = report.write_report(str(out))
  assert [(s["method"], s["variant"]) for s in rep["summary"]] == \
      [("idinvert", f"λ={lam:g}") for lam in sorted(p.reg_weight for p in points)]
