"""experiments.sweep: the tiny sweep finishes; kill -9 mid-run and rerun gives the uninterrupted table."""

import os
import shutil

import pytest

from jaxinv.experiments import sweep
from tests import sweep_helpers as H
from tests.conftest import golden_file


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("sweep")
  cache = root / "models"
  config = H.write_config(root, cache)
  _, points = sweep.load_config(config)
  sweep.load_model_cached(points[0].generator, str(cache))   # convert once, before any subprocess
  return root, config


@pytest.fixture(scope="module")
def uninterrupted(setup):
  root, config = setup
  out = root / "full"
  _, points = sweep.load_config(config)
  sweep.run_sweep(points, str(out), progress=False)   # in-process: the subprocess runs compare to it
  return out


def test_tiny_config_defines_a_grid():
  _, points = sweep.load_config(os.path.join(H.REPO, "experiments/configs/tiny.py"))
  hashes = {sweep.config_hash(sweep.setting_of(p)) for p in points}
  assert len(points) == len(hashes) >= 4
  assert {(p.codes, p.layer) for p in points} == {(2, 2), (2, 4), (4, 2), (4, 4)}


def test_sweep_finishes(uninterrupted):
  recs = H.table(uninterrupted)
  assert len(recs) == 4
  for r in recs:
    for k in ("config_hash", "image", "task", "codes", "layer", "seed", "loss", "psnr", "ssim"):
      assert k in r, k
    assert os.path.isfile(uninterrupted / "images" / r["config_hash"] / f"{r['image']}.png")
  assert not any((uninterrupted / "inflight").iterdir())
  # A rerun finds everything done and appends nothing.
  p = H.run_sweep(H.write_config(uninterrupted.parent, uninterrupted.parent / "models"), uninterrupted)
  assert "0 to run" in p.stdout
  assert len(H.raw_lines(uninterrupted)) == 4


def test_kill_and_resume(setup, uninterrupted):
  root, config = setup
  out = root / "killed"
  # Kill when the first batch is finished and the second is mid-inversion (checkpoint on disk).
  H.kill_when(H.sweep_cmd(config, out), lambda: H.sweep_checkpoints(out, finished=2),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3}, timeout=240)
  first = H.raw_lines(out)
  p = H.run_sweep(config, out)
  assert "2 already done, 2 to run" in p.stdout
  assert "resuming" in p.stderr and "at step" in p.stderr
  lines = H.raw_lines(out)
  assert lines[:2] == first and len(lines) == 4          # nothing lost, recomputed or duplicated
  assert H.table(out) == H.table(uninterrupted)         # bit-equal records


@pytest.mark.parametrize("name", ["tiny", "mganprior_ablation", "mganprior_inversion",
                                  "mganprior_colorization", "mganprior_superresolution",
                                  "mganprior_inpainting", "stylegan2_multicode", "dgp_schedules",
                                  "idinvert_lambda", "projector_spaces", "padinv_refine", "pti_steps"])
def test_configs_load(name):
  path = os.path.join(H.REPO, "experiments", "configs", f"{name}.py")
  variants = {"tiny": [""], "stylegan2_multicode": ["", "runlocal", "test"],
              "dgp_schedules": ["", "runlocal", "test"], "idinvert_lambda": ["", "runlocal", "test"],
              "projector_spaces": ["", "runlocal", "test"],
              "padinv_refine": ["", "runlocal", "test"], "pti_steps": ["", "runlocal", "test"]}
  for arg in variants.get(name, ["", "runlocal"]):
    _, points = sweep.load_config(f"{path}:{arg}" if arg else path)
    hashes = {sweep.config_hash(sweep.setting_of(p)) for p in points}
    assert len(hashes) == len(points) >= 1
    if name == "mganprior_ablation":
      assert len(points) == (35 if not arg else 4)
    if name == "stylegan2_multicode":
      assert {sweep.method_of(p) for p in points} == {"style"}
      assert len({(p.codes, p.layer) for p in points}) == {"": 20, "runlocal": 4, "test": 2}[arg]
    if name == "dgp_schedules":
      assert {sweep.method_of(p) for p in points} == {"dgp"}
      assert len({p.schedule for p in points}) == (1 if arg == "test" else 4)
      for p in points:
        sweep._dgp_schedule(p)       # every schedule resolves with the point's overrides
    if name == "idinvert_lambda":
      assert {sweep.method_of(p) for p in points} == {"idinvert"}
      assert len({p.reg_weight for p in points}) == (2 if arg == "test" else 6)
    if name == "padinv_refine":
      assert {sweep.method_of(p) for p in points} == {"padinv"}
      assert len(points) == {"": 5, "runlocal": 5, "test": 2}[arg]
      assert [p.steps for p in points if p.space == "padding"][0] == 0   # the encoder alone first
    if name == "pti_steps":
      assert {sweep.method_of(p) for p in points} == {"pti"}
      assert len(points) == {"": 4, "runlocal": 4, "test": 2}[arg]
    if name.startswith(("tiny", "mganprior")):
      assert all("method" not in p for p in points)   # mGANprior by default: hashes as before


def test_tfds_images_and_lpips_column(setup, tmp_path):
  """A TFDS split in place of the folder gives the folder's numbers; ``lpips`` adds its column."""
  from jaxinv.converters import convert_file
  from jaxinv.io import images as image_io
  from tests import tfds_images
  root, config = setup
  _, points = sweep.load_config(config)
  first = sweep.list_images(points[0].images, 1)[0]
  spec = tfds_images.write_dataset(str(tmp_path / "tfds"),
                                   [("first", image_io.load_rgb_uint8(first))])
  lp = tmp_path / "lpips"
  convert_file(golden_file("metrics", "nets", "alex", "lin_file"), lp,
               backbone=golden_file("metrics", "nets", "alex", "backbone_file"))
  # An image's key comes from its name, so the folder twin carries the dataset example's name.
  name = "jaxinv_test_images-train-000000"
  twin = tmp_path / "twin"
  twin.mkdir()
  shutil.copy(first, twin / (name + os.path.splitext(first)[1]))
  for p in points:
    with p.unlocked():
      p.images, p.max_images = str(twin), 0
  sweep.run_sweep(points, str(tmp_path / "folder"), progress=False)
  folder = {r["seed"]: r for r in H.table(tmp_path / "folder")}
  for p in points:
    with p.unlocked():
      p.images, p.max_images, p.lpips = spec, 0, str(lp)
  out = tmp_path / "run"
  sweep.run_sweep(points, str(out), progress=False)
  recs = H.table(out)
  assert len(recs) == 2 and sorted(folder) == [0, 1]
  for r in recs:
    assert r["image"] == name
    assert os.path.isfile(out / "images" / r["config_hash"] / f"{r['image']}.png")
    ref = folder[r["seed"]]
    assert r["config_hash"] == ref["config_hash"]
    for k in ("loss", "psnr", "ssim"):
      assert abs(r[k] - ref[k]) <= 1e-5 * max(1.0, abs(ref[k])), (k, r[k], ref[k])
    assert 0.0 < r["lpips"] < 2.0 and "lpips" not in ref
