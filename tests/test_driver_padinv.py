"""PadInv refinement on the driver (``jaxinv invert --method padinv``): an image's result does not
depend on its position, its batch or the device count; a second batch compiles nothing.

Tiny case: the padinv fixture's 64 px generator, encoder and AlexNet LPIPS, its images, 3 steps.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxinv.inversion.methods import padinv as M
from tests import driver_helpers, sweep_helpers as H
from tests.conftest import optional_path
from tests.golden import padinv_common

# The bound after 3 steps. The same image in a batch of 1, 2 or 3 runs the same per-image
# arithmetic over another batch width: XLA:CPU may order float sums differently. The encoder's
# own batch dependence is the floor (test_cli_padinv: eval-mode BN, ~1e-5 under summation-order
# changes on maps of |x| ~ 15, README). Measured: wp 4.8e-7, maps 5.7e-6, renderings 4.8e-6,
# losses 5e-7 relative.
SAME_IMAGE_ATOL = 1e-5
STEPS = 3
DATA_REL = "../../data"


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  from jaxinv.cli import main
  g = golden(padinv_common.FOLDER)
  root = tmp_path_factory.mktemp("padinv_driver")
  found = padinv_common._checkpoints(g.dir)
  gan = g.dir / found["padinv-generator"][0]
  enc = g.dir / found["padinv-encoder"][0]
  assert main(["convert", str(gan), str(root / "G")]) == 0
  assert main(["convert", str(enc), str(root / "E"), "--option", f"gan_checkpoint={gan}"]) == 0
  cfg = json.loads(g.path("config.json").read_text())
  images = [str(optional_path(g.dir, f"{DATA_REL}/{im['file']}", f"PadInv case image {im['file']}"))
            for im in cfg["images"]]
  return g, root, images


def _data(paths, res):
  from jaxinv.io import images as image_io
  names = [image_io.image_stem(p) for p in paths]
  x = image_io.load_images(paths, res, loader="padinv")
  if len(names) < 3:   # a case with fewer images: mirrored copies under other names
    names += [f"{n}_mirrored" for n in names]
    x = np.concatenate([x, x[:, :, ::-1]])
  return {"names": names, "x": x}


def test_same_image_same_result_and_second_batch_compiles_nothing(setup):
  from jaxinv.models import registry
  g, root, paths = setup
  gen = registry.load_model(root / "G", expect_family="padinv-stylegan2")
  enc = registry.load_model(root / "E", expect_family="padinv-encoder")
  lp, lp_params = padinv_common.lpips_alex(g)
  method = M.Method(gen, M.PadInvSettings(steps=STEPS, wnorm_weight=0.003), enc, lp, lp_params)
  worst = driver_helpers.check_identity_and_compiles(method, _data(paths, enc.config.resolution),
                                                     SAME_IMAGE_ATOL)
  print("padinv same-image max differences:", worst)


def _cli(setup, out, batch, **env):
  _, root, paths = setup
  cmd = [sys.executable, "-m", "jaxinv", "invert", "--method", "padinv", "--generator",
         str(root / "G"), "--encoder", str(root / "E"), "--images", *paths, "--steps", str(STEPS),
         "--lpips-lambda", "0", "--batch", str(batch), "--out", str(out)]
  p = subprocess.run(cmd, cwd=H.REPO, env=H.env(**env), capture_output=True, text=True, timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow   # two subprocesses compiling the encoder and the refinement step
def test_cli_on_8_devices_equals_1(setup, tmp_path):
  one = _cli(setup, tmp_path / "one", 1)
  eight = _cli(setup, tmp_path / "eight", 8, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  n = len(setup[2])
  assert list(one["names"]) == list(eight["names"]) and one["loss"].shape == (STEPS, n)
  for k in one:
    if k != "names":
      np.testing.assert_allclose(eight[k], one[k], rtol=1e-6, atol=SAME_IMAGE_ATOL, err_msg=k)
  cfg = json.loads((tmp_path / "eight" / "config.json").read_text())
  assert cfg["device_count"] == 8 and cfg["settings"]["method_settings"]["padinv"]["steps"] == STEPS
