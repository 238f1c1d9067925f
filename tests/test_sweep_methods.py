"""experiments.sweep over other methods than mGANprior: the StyleGAN2 multi-code and DGP schedule
sweeps' test variants run on the golden fixture models, give the driver's numbers, and report."""

import math
import os

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
  return run.run(built.method, [os.path.splitext(os.path.basename(item))[0]], data,
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
  assert "psnr_by_variant.png" in rep["files"]


# A shipped config's variant with some fields replaced (the fixture paths of this case), as a file
# the sweep's command line can load.
OVERRIDE_CONFIG = '''
from jaxinv.experiments.configs import {module} as shipped


def get_config(arg=""):
  c = shipped.get_config({variant!r})
  c.unlock()
  for key, value in {overrides!r}.items():
    c[key] = value
  c.lock()
  return c


def sweep(add):
  shipped.sweep(add)
'''


def _idinvert_config(gd, tmp_path, **overrides):
  files = gd.expected["files"]
  fields = {"generator": str(gd.path(files["generator"])), "encoder": str(gd.path(files["encoder"])),
            "images": str(gd.path(files["images_dir"])), "model_cache": str(tmp_path / "models"),
            **overrides}
  path = tmp_path / "idinvert_config.py"
  path.write_text(OVERRIDE_CONFIG.format(module="idinvert_lambda", variant="test", overrides=fields))
  return str(path)


@pytest.mark.slow   # three / two sweep subprocesses: 40-55 s on 2 shared cores
def test_idinvert_sweep_kill_and_resume(golden, tmp_path):
  """kill -9 while the second λ's batch is in flight, rerun: nothing lost or repeated, the
  uninterrupted table (the durability is the sweep's, whichever method runs)."""
  config = _idinvert_config(golden("idinvert"), tmp_path)
  _, points = sweep.load_config(config)
  sweep.load_model_cached(points[0].generator, points[0].model_cache)   # convert once, up front
  sweep.load_model_cached(points[0].encoder, points[0].model_cache)
  full = tmp_path / "full"
  sweep.run_sweep(points, str(full), progress=False)
  out = tmp_path / "killed"
  H.kill_when(H.sweep_cmd(config, out), lambda: H.sweep_checkpoints(out, finished=1),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3}, timeout=240)
  first = H.raw_lines(out)
  p = H.run_sweep(config, out)
  assert "1 already done, 1 to run" in p.stdout
  assert "resuming" in p.stderr and "at step" in p.stderr
  lines = H.raw_lines(out)
  assert lines[:1] == first and len(lines) == 2
  assert H.table(out) == H.table(full)


@pytest.mark.slow   # three / two sweep subprocesses: 40-55 s on 2 shared cores
def test_idinvert_sweep_two_processes(golden, tmp_path):
  """Two processes split each λ's images and give the one-process table."""
  config = _idinvert_config(golden("idinvert"), tmp_path, max_images=2)
  _, points = sweep.load_config(config)
  single = tmp_path / "single"
  sweep.run_sweep(points, str(single), progress=False)
  multi = tmp_path / "multi"
  H.run_processes(H.sweep_cmd(config, multi))
  images = [{r["image"] for r in H.raw_lines_of(multi / f"results.process-{i}-of-2.jsonl")}
            for i in range(2)]
  assert len(images[0]) == len(images[1]) == 1 and not images[0] & images[1]
  # Each process runs a batch of 1 where the single process ran 2, so XLA may order float sums
  # differently: float32 rounding (~1e-7 relative) of a reconstruction's MSE moves its PSNR by
  # 10/ln(10)·1e-7·(a few sums' growth) — bound 5e-6 dB; measured 5.7e-7 (encoder_psnr), 0 elsewhere.
  a, b = H.table(multi), H.table(single)
  assert [(r["config_hash"], r["image"]) for r in a] == [(r["config_hash"], r["image"]) for r in b]
  worst = 0.0
  for ra, rb in zip(a, b):
    floats = {k for k, v in rb.items() if isinstance(v, float)}
    assert {k: v for k, v in ra.items() if k not in floats} == \
        {k: v for k, v in rb.items() if k not in floats}
    worst = max([worst] + [abs(ra[k] - rb[k]) for k in floats])
  assert worst <= 5e-6, f"two-process vs one-process table: max abs difference {worst:.3g}"


@pytest.mark.slow   # three DGP sweeps, each compiling the BigGAN fine-tuning step: ~4 min
def test_dgp_sweep_kill_and_resume(golden, tmp_path):
  """kill -9 mid-schedule (DGP checkpoints its generator copies and Adam states through the
  sweep's store), rerun: it resumes at the checkpointed step and gives the uninterrupted table."""
  from tests.golden import _dgp
  gd = golden("dgp")
  ck = gd.expected["checkpoint"]
  image = _dgp.example_image(gd, next(iter(gd.expected["trajectories"].values()))["image"])
  fields = {"generator": str(gd.path(ck["G_file"])), "discriminator": str(gd.path(ck["D_file"])),
            "images": str(image), "model_cache": str(tmp_path / "models")}
  config = tmp_path / "dgp_config.py"
  config.write_text(OVERRIDE_CONFIG.format(module="dgp_schedules", variant="test", overrides=fields))
  _, points = sweep.load_config(str(config))
  full = tmp_path / "full"
  sweep.run_sweep(points, str(full), progress=False)
  out = tmp_path / "killed"
  H.kill_when(H.sweep_cmd(str(config), out), lambda: H.sweep_checkpoints(out),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3})
  assert not (out / "results.jsonl").exists() or not H.raw_lines(out)
  p = H.run_sweep(str(config), out, timeout=600)
  assert "0 already done, 2 to run" in p.stdout
  assert "resuming" in p.stderr and "at step" in p.stderr
  assert len(H.raw_lines(out)) == 2
  assert H.table(out) == H.table(full)


@pytest.mark.slow   # a sweep subprocess on 2 forced devices: 25-50 s on 2 shared cores
def test_idinvert_sweep_on_two_forced_devices(golden, tmp_path):
  """The sweep hands its mesh to the method: 2 forced CPU devices (a batch of 2 split in 1 + 1)
  give the one-device table."""
  import subprocess
  config = _idinvert_config(golden("idinvert"), tmp_path, max_images=2)
  _, points = sweep.load_config(config)
  single = tmp_path / "single"
  sweep.run_sweep(points, str(single), progress=False)
  two = tmp_path / "two"
  p = subprocess.run(H.sweep_cmd(config, two), cwd=H.REPO, capture_output=True, text=True,
                     timeout=300, env=H.env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  assert p.returncode == 0, p.stderr[-4000:]
  a, b = H.table(two), H.table(single)
  assert [(r["config_hash"], r["image"]) for r in a] == [(r["config_hash"], r["image"]) for r in b]
  # Per-device batches of 1 vs a batch of 2 on one device: float order only, as in the
  # two-process test (bound 5e-6 dB on a PSNR; losses measured equal).
  worst = max(abs(ra[k] - rb[k]) for ra, rb in zip(a, b) for k, v in rb.items() if isinstance(v, float))
  assert worst <= 5e-6, worst
  print(f"2 forced devices vs 1: max abs difference {worst:.3g}")


def _check_refused(tmp_path, capsys, module, fields, message):
  """The sweep of ``module``'s test variant with ``fields`` exits 2 with one line naming
  ``message`` before it writes a record."""
  config = tmp_path / "bad_config.py"
  config.write_text(OVERRIDE_CONFIG.format(module=module, variant="test", overrides=fields))
  with pytest.raises(SystemExit) as e:
    sweep.main(["--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err
  assert not H.raw_lines(tmp_path / "run")


@pytest.mark.parametrize("overrides,message", [
    ({"method": "nonexistent"}, "unknown method 'nonexistent'"),
    ({"space": "bogus"}, "space must be one of"),
    ({"noise": "random"}, "inversion noise must be"),
])
def test_bad_point_is_refused_before_anything_runs(golden, tmp_path, capsys, overrides, message):
  gd = golden("stylegan2_rosinality")
  fields = {"generator": str(gd.path(gd.expected["checkpoint"]["file"])),
            "model_cache": str(tmp_path / "models"), **overrides}
  _check_refused(tmp_path, capsys, "stylegan2_multicode", fields, message)


def test_projector_sweep(golden, tmp_path):
  """w vs w+ projector points: one record each, the driver's numbers bit for bit, a report."""
  gd = golden("stylegan2_rosinality")
  points = _points("projector_spaces:test",
                   {"generator": str(gd.path(gd.expected["checkpoint"]["file"]))}, tmp_path / "models")
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert {(r["method"], r["space"], r["image_loss"]) for r in recs} == \
      {("projector", p.space, p.image_loss) for p in points} and len(recs) == 2
  point = next(p for p in points if p.space == "wp")
  rec = next(r for r in recs if r["space"] == "wp")
  built = sweep.build(point, str(tmp_path / "models"))
  result, gt = _driver_result(built, point, sweep.list_images(point.images, point.max_images)[0])
  assert float(result.stepwise["loss"][-1, 0]) == rec["loss"]
  assert result.arrays["latent"].ndim == 3          # w+: [B, L, D]
  rep = report.write_report(str(out))
  assert sorted(s["variant"] for s in rep["summary"]) == ["w mse", "wp mse"]


def _padinv_images(gd):
  """The PadInv case's images (config.json), beside the golden folder as the fixture README says."""
  import json
  from tests.conftest import optional_path
  cfg = json.loads(gd.path("config.json").read_text())
  return [str(optional_path(gd.dir, f"../../data/{im['file']}", f"PadInv case image {im['file']}"))
          for im in cfg["images"]]


def _padinv_models(gd):
  """The sweep's PadInv model fields for this fixture folder (files recognised by detection)."""
  from tests.golden import padinv_common
  found = padinv_common._checkpoints(gd.dir)
  lpips = {}
  for name in gd.expected["checkpoint_keys"]:
    from jaxinv import converters
    from jaxinv.io import torch_pickle
    obj = torch_pickle.load(gd.path(name))
    if converters.FORMATS["lpips"].detect(obj):
      lpips["lpips_net"] = str(gd.path(name))
    elif converters.FORMATS["torchvision-alexnet"].detect(obj):
      lpips["lpips_backbone"] = str(gd.path(name))
  return {"generator": str(gd.path(found["padinv-generator"][0])),
          "encoder": str(gd.path(found["padinv-encoder"][0])), **lpips}


def test_padinv_sweep(golden, tmp_path):
  """Encoder only vs 3 refinement steps: one record each, the driver's numbers bit for bit, a
  report grouped by method."""
  gd = golden("padinv")
  points = _points("padinv_refine:test", _padinv_models(gd), tmp_path / "models",
                   images=_padinv_images(gd)[0])
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert sorted((r["method"], r["steps"]) for r in recs) == sorted(("padinv", p.steps) for p in points)
  assert len(recs) == 2 and all(math.isfinite(r["psnr"]) for r in recs)
  encoder_only = next(r for r in recs if r["steps"] == 0)
  refined = next(r for r in recs if r["steps"] > 0)
  assert math.isnan(encoder_only["loss"]) and math.isfinite(refined["loss"])
  assert refined["lpips_weight"] == points[0].lpips_weight > 0 and refined["encoder"]
  # One point through the driver directly gives the sweep's record, bit for bit.
  point = next(p for p in points if p.steps > 0)
  built = sweep.build(point, str(tmp_path / "models"))
  result, gt = _driver_result(built, point, sweep.list_images(point.images, point.max_images)[0])
  assert result.names == [refined["image"]] and result.stepwise["loss"].shape == (point.steps, 1)
  assert float(result.stepwise["loss"][-1, 0]) == refined["loss"]
  from jaxinv import metrics
  assert float(metrics.psnr(built.restored(result, gt)[0], gt[0], data_range=2.0)) == refined["psnr"]
  rep = report.write_report(str(out))
  assert [(s["method"], s["variant"]) for s in rep["summary"]] == \
      [("padinv", "encoder + padding 3 steps"), ("padinv", "encoder only")]


@pytest.mark.parametrize("overrides,message", [
    ({"space": "bogus"}, "space must be 'padding' or 'wp'"),
    ({"encoder": ""}, "without an encoder PadInv starts from the average w"),
    ({"lpips_backbone": ""}, "backbone"),
])
def test_bad_padinv_point_is_refused_before_anything_runs(golden, tmp_path, capsys, overrides,
                                                          message):
  gd = golden("padinv")
  fields = {**_padinv_models(gd), "images": _padinv_images(gd)[0],
            "model_cache": str(tmp_path / "models"), **overrides}
  _check_refused(tmp_path, capsys, "padinv_refine", fields, message)


# Each point compiles both PTI phases (projector + per-image generator tuning with LPIPS): 32 s on
# 2 shared cores (the driver check reuses the sweep's program).
@pytest.mark.slow
def test_pti_sweep(golden, tmp_path):
  """Two tuning lengths from one pivot: one record each, the driver's numbers bit for bit, a report."""
  gd = golden("e4e_pti")
  lp = gd.expected["pti"]["build"]["lpips"]
  lpips = {"lpips_net": str(gd.path(lp["lin_file"])), "lpips_backbone": str(gd.path(lp["backbone_file"]))}
  from tests.conftest import golden_root
  image = golden_root().parent.parent / gd.expected["case_config"]["pti"]["image"]
  points = _points("pti_steps:test",
                   {"generator": str(gd.path(gd.expected["e4e"]["rosinality_conversion"]["file"])),
                    **lpips, "projector_lpips": lpips["lpips_net"],
                    "projector_lpips_backbone": lpips["lpips_backbone"]},
                   tmp_path / "models", images=str(image))
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert sorted((r["method"], r["projector_steps"], r["pti_steps"]) for r in recs) == \
      sorted(("pti", p.projector_steps, p.pti_steps) for p in points) and len(recs) == 2
  for r in recs:
    assert r["steps"] == r["projector_steps"] + r["pti_steps"]
    assert 1 <= r["pti_steps_run"] <= r["pti_steps"]
    assert math.isfinite(r["loss"]) and math.isfinite(r["psnr"])
  point = max(points, key=lambda p: p.pti_steps)
  rec = next(r for r in recs if r["pti_steps"] == point.pti_steps)
  built = sweep.build(point, str(tmp_path / "models"))
  result, gt = _driver_result(built, point, sweep.list_images(point.images, point.max_images)[0])
  assert result.names == [rec["image"]]
  assert float(result.stepwise["loss"][-1, 0]) == rec["loss"]
  from jaxinv import metrics
  assert float(metrics.psnr(result.images[""][0], gt[0], data_range=2.0)) == rec["psnr"]
  rep = report.write_report(str(out))
  assert [(s["method"], s["variant"]) for s in rep["summary"]] == \
      [("pti", f"{p.projector_steps}+{p.pti_steps} steps") for p in sorted(points, key=lambda p: p.pti_steps)]


def test_bad_pti_point_is_refused_before_anything_runs(golden, tmp_path, capsys):
  gd = golden("e4e_pti")
  fields = {"generator": str(gd.path(gd.expected["e4e"]["rosinality_conversion"]["file"])),
            "model_cache": str(tmp_path / "models"), "pti_lr": 0.0}
  _check_refused(tmp_path, capsys, "pti_steps", fields, "pti_lr > 0; got 3, 1, 0.0")


@pytest.mark.slow   # ~30 s: compiles the StyleGAN2 and the StyleGAN3 projector
def test_nvidia_projector_sweep(golden, tmp_path):
  """NVIDIA's projector on the case's unconditional StyleGAN2 and StyleGAN3 pickles: one record per
  generator, each the driver's number bit for bit."""
  g = golden("nvidia_stylegan")
  found = {}
  for tag, m in g.expected["models"].items():
    if m.get("projector") and not m.get("c_dim"):
      found.setdefault("stylegan3" if m["kind"] == "sg3" else "stylegan2",
                       str(g.path(m["pickle"]["file"])))
  if not found:
    pytest.skip("the nvidia_stylegan case has no unconditional projector model")
  arg = ",".join(["test"] + [f"{k}={found.get(k, '')}" for k in ("stylegan2", "stylegan3")])
  points = _points(f"nvidia_projector_models:{arg}", {}, tmp_path / "models")
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert sorted((r["method"], r["family"]) for r in recs) == sorted(
      ("nvidia-projector", k) for k in found)
  for point in points:
    rec = next(r for r in recs if r["config_hash"] == sweep.config_hash(sweep.setting_of(point)))
    built = sweep.build(point, str(tmp_path / "models"))
    result, _ = _driver_result(built, point, sweep.list_images(point.images, point.max_images)[0])
    assert float(result.stepwise["loss"][-1, 0]) == rec["loss"]
    assert result.arrays["w"].ndim == 3
