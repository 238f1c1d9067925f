"""IDInvert on the driver (``jaxinv invert --method idinvert``, ``jaxinv diffuse``): an image's
result does not depend on its position, its batch or the device count; a second batch compiles
nothing.

Tiny case: the idinvert fixture's 32 px generator and encoder, its example images, 3 steps.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxinv import converters
from jaxinv.inversion.methods import idinvert as M
from tests import driver_helpers, sweep_helpers as H
from tests.conftest import check_adam_bulk

# The bound after 3 steps. The same image in a batch of 1, 2 or 3 runs the same per-image
# arithmetic over another batch width: XLA:CPU may order float sums differently (~1e-7 relative of
# activations whose range is ~10-30 after the encoder's residual blocks), and the 3 Adam steps
# (lr 0.01) carry that start difference along without amplifying it. Measured: init_wp and wp
# 3.3e-6, renderings 5.6e-6, losses 1e-6 relative; diffusion: wp 2.7e-6, renderings 3.9e-6, losses
# 1e-6 relative.
SAME_IMAGE_ATOL = 1e-5
# Diffusion losses, other batch width: measured 1.3e-6 relative (loss_feat); 10x for other machines.
DIFFUSE_LOSS_RTOL = 1e-5
STEPS = 3


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  g = golden("idinvert")
  root = tmp_path_factory.mktemp("idinvert_driver")
  for key in ("generator", "encoder", "perceptual"):
    converters.convert_file(g.path(g.expected["files"][key]), root / key)
  images = [str(g.path(os.path.join(g.expected["files"]["images_dir"], n)))
            for n in g.expected["images"]]
  if len(images) < 3:
    pytest.skip("this case has fewer than 3 example images")
  return root, images


def test_same_image_same_result_and_second_batch_compiles_nothing(setup):
  from jaxinv.io import images as image_io
  from jaxinv.models import registry
  root, paths = setup
  load = lambda k, fam: registry.load_model(root / k, expect_family=fam)
  # No perceptual term here (it only adds compile time: the VGG features are per image too); the
  # CLI test below runs the full loss.
  models = M.models_from(load("generator", ("stylegan", "pggan")),
                         load("encoder", "idinvert-encoder"))
  method = M.Method(models, M.IDInvertSettings(steps=STEPS, feat_weight=0.0))
  data = {"names": [image_io.image_stem(p) for p in paths],
          "x": image_io.load_images(paths, models.resolution, loader="idinvert")}
  worst = driver_helpers.check_identity_and_compiles(method, data, SAME_IMAGE_ATOL)
  print("idinvert same-image max differences:", worst)


def test_interrupted_run_resumes_to_the_uninterrupted_result(setup, tmp_path, capsys):
  from jaxinv.io import images as image_io
  from jaxinv.models import registry
  root, paths = setup
  load = lambda k, fam: registry.load_model(root / k, expect_family=fam)
  models = M.models_from(load("generator", ("stylegan", "pggan")),
                         load("encoder", "idinvert-encoder"))
  method = M.Method(models, M.IDInvertSettings(steps=STEPS, feat_weight=0.0))
  data = {"names": [image_io.image_stem(p) for p in paths],
          "x": image_io.load_images(paths, models.resolution, loader="idinvert")}
  driver_helpers.check_resume(method, data, tmp_path / "work")
  assert "at step 2/3" in capsys.readouterr().err


def test_diffusion_same_context_same_result_and_second_batch_compiles_nothing(setup):
  from jaxinv.io import images as image_io
  from jaxinv.models import registry
  root, paths = setup
  load = lambda k, fam: registry.load_model(root / k, expect_family=fam)
  models = M.models_from(load("generator", ("stylegan", "pggan")), load("encoder", "idinvert-encoder"),
                         load("perceptual", "keras-vgg16"))
  x = image_io.load_images(paths, models.resolution, loader="idinvert")
  r = models.resolution
  cfg = M.DiffuseSettings(steps=STEPS, center_x=r // 2, center_y=r // 2, crop_x=r // 2,
                          crop_y=r // 2)
  method = M.DiffuseMethod(models, cfg, x[0])
  data = {"names": [image_io.image_stem(p) for p in paths], "context": x}
  worst = driver_helpers.check_identity_and_compiles(method, data, SAME_IMAGE_ATOL)
  print("diffuse same-context max differences:", worst)


def _cli(setup, out, batch, **env):
  root, paths = setup
  cmd = [sys.executable, "-m", "jaxinv", "invert", "--method", "idinvert", "--generator",
         str(root / "generator"), "--encoder", str(root / "encoder"), "--perceptual",
         str(root / "perceptual"), "--images", *paths, "--steps", str(STEPS), "--batch",
         str(batch), "--out", str(out)]
  p = subprocess.run(cmd, cwd=H.REPO, env=H.env(**env), capture_output=True, text=True, timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow   # two subprocesses compiling E∘G∘VGG backward (~1-2 min on 2 shared cores)
def test_cli_on_8_devices_equals_1(setup, tmp_path):
  one = _cli(setup, tmp_path / "one", 1)
  eight = _cli(setup, tmp_path / "eight", 8, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  n = len(setup[1])
  assert list(one["names"]) == list(eight["names"])
  assert one["loss"].shape == (STEPS, n) and {"loss_pix", "loss_feat", "loss_reg"} <= set(one)
  for k in one:
    if k != "names":
      np.testing.assert_allclose(eight[k], one[k], rtol=1e-6, atol=SAME_IMAGE_ATOL, err_msg=k)
  cfg = json.loads((tmp_path / "eight" / "config.json").read_text())
  assert cfg["device_count"] == 8 and cfg["settings"]["method_settings"]["idinvert"]["steps"] == STEPS
  stem = str(one["names"][0])
  assert (tmp_path / "eight" / f"{stem}.png").is_file()
  assert (tmp_path / "eight" / f"{stem}_encoder.png").is_file()


def _diffuse_cmd(setup, out, batch):
  root, paths = setup
  return [sys.executable, "-m", "jaxinv", "diffuse", "--generator", str(root / "generator"),
          "--encoder", str(root / "encoder"), "--perceptual", str(root / "perceptual"),
          "--target", paths[0], "--context", *paths, "--steps", str(STEPS), "--batch", str(batch),
          "--out", str(out)]


def _diffuse_result(out):
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


def _diffuse_cli(setup, out, batch, **env):
  p = subprocess.run(_diffuse_cmd(setup, out, batch), cwd=H.REPO, env=H.env(**env),
                     capture_output=True, text=True, timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  return _diffuse_result(out)


@pytest.mark.slow   # three subprocesses compiling G∘VGG backward
def test_diffuse_two_processes_equal_one(setup, tmp_path):
  """``jaxinv diffuse`` as two ``jax.distributed`` processes: with ``--batch 1`` both runs execute
  the same single-context programs, so the result is the one-process result bit for bit."""
  one = _diffuse_cli(setup, tmp_path / "one", 1)
  H.run_processes(_diffuse_cmd(setup, tmp_path / "two", 1), timeout=900)
  two = _diffuse_result(tmp_path / "two")
  assert list(two["names"]) == list(one["names"])
  for k in one:
    np.testing.assert_array_equal(two[k], one[k], err_msg=k)


@pytest.mark.slow   # two subprocesses compiling G∘VGG backward
def test_diffuse_cli_on_8_devices_equals_1(setup, tmp_path):
  one = _diffuse_cli(setup, tmp_path / "one", 1)
  eight = _diffuse_cli(setup, tmp_path / "eight", 8,
                       XLA_FLAGS="--xla_force_host_platform_device_count=8")
  n = len(setup[1])
  assert list(one["names"]) == list(eight["names"]) and one["loss"].shape == (STEPS, n)
  # The masked loss leaves many w+ components with a gradient near float noise, and Adam's first
  # steps move each component by ~lr whatever its gradient's size: the rounding of another batch
  # width (8 devices: batches of 1 per device against 1 image per batch - and equally a batch of 3
  # on one device) changes such components by up to 2.3e-4 after 3 steps (measured; 1.3e-6
  # relative in the losses). Measured on one device with the default box: from the *same* start
  # codes, an image alone and in a batch of 3 still end up to 5.6e-5 apart (AVX-512; 1.0e-6 under
  # AVX2), and on one batch width a ±3e-6 nudge of the start moves the end by 2.4e-4 - the spread
  # is Adam's amplification of rounding in this problem, not the driver's doing (with the same
  # start and the centred box it stays below 1e-6). So losses tightly at every step, the start codes to the issue's
  # bound, and the final codes by the Adam rule (tests/conftest.py): within the hard bound
  # 2·Σ lr_t everywhere, and at most ADAM_BULK_FRACTION of components beyond ADAM_BULK_ATOL.
  for k in ("loss", "loss_pix", "loss_feat"):
    np.testing.assert_allclose(eight[k], one[k], rtol=DIFFUSE_LOSS_RTOL, err_msg=k)
  np.testing.assert_allclose(eight["init_wp"], one["init_wp"], atol=SAME_IMAGE_ATOL)
  lr = M.DiffuseSettings().learning_rate
  np.testing.assert_allclose(eight["wp"], one["wp"], atol=2 * STEPS * lr)
  check_adam_bulk(eight["wp"], one["wp"], "diffused wp")
  cfg = json.loads((tmp_path / "eight" / "config.json").read_text())
  assert cfg["device_count"] == 8 and cfg["settings"]["method"] == "idinvert-diffuse"
  stem = str(one["names"][0])
  assert (tmp_path / "eight" / f"{stem}_pasted.png").is_file()
