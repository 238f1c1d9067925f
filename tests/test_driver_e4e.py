"""e4e on the driver through the CLI (``jaxinv invert --method e4e``): 8 forced devices and two
processes give the one-device, one-process result. e4e is one forward pass per image (encoder,
then decoder), no optimisation to amplify float noise.

Tiny case: the e4e_pti fixture's encoder (64 px input, 32 px decoder) on its example images.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests import sweep_helpers as H

# 8 devices run a batch of 1 image per device, the single-device run batches of 1: the same
# program on the same shapes per device. A forward pass of float32 convolutions, so any XLA:CPU
# reordering stays at float rounding of the outputs (|wp| ~ 1, images in ~[-1, 1]): 1e-5, the
# issue's bound; measured 0 (bit-equal). Both tests run a few seconds each (tiny models), so they
# stay in the default run.
SHARDED_ATOL = 1e-5


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  from jaxinv.cli import main
  from tests.conftest import golden_root
  g = golden("e4e_pti")
  e4e = g.expected["e4e"]
  root = tmp_path_factory.mktemp("e4e_driver")
  assert main(["convert", str(g.path(e4e["checkpoint"]["file"])), str(root / "model"),
               "--option", f"input_size={e4e['config']['input_size']}"]) == 0
  base = golden_root().parent.parent
  images = [str(base / im["path"]) for im in e4e["images"]]
  if len(images) < 2:
    pytest.skip("this case has fewer than 2 e4e example images")
  return root, images


def _cmd(setup, out, batch):
  root, images = setup
  return [sys.executable, "-m", "jaxinv", "invert", "--method", "e4e", "--encoder",
          str(root / "model"), "--images", *images, "--batch", str(batch), "--out", str(out)]


def _result(out):
  from jaxinv.io import images as image_io
  with np.load(out / "result.npz") as f:
    res = {k: f[k] for k in f.files}
  res["png"] = np.stack([image_io.load_rgb_uint8(str(out / f"{n}.png")) for n in res["names"]])
  return res


@pytest.fixture(scope="module")
def single(setup, tmp_path_factory):
  out = tmp_path_factory.mktemp("e4e_single") / "out"
  p = subprocess.run(_cmd(setup, out, 1), cwd=H.REPO, env=H.env(), capture_output=True,
                     text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  return _result(out)


def test_8_devices_equal_1(setup, single, tmp_path):
  out = tmp_path / "eight"
  p = subprocess.run(_cmd(setup, out, 8), cwd=H.REPO, capture_output=True, text=True, timeout=600,
                     env=H.env(XLA_FLAGS="--xla_force_host_platform_device_count=8"))
  assert p.returncode == 0, p.stderr[-3000:]
  eight = _result(out)
  assert list(eight["names"]) == list(single["names"])
  err = float(np.abs(eight["wp"].astype(np.float64) - single["wp"]).max())
  print("e4e 8 devices vs 1: max |wp| difference", err)
  assert err <= SHARDED_ATOL
  # PNGs are uint8 roundings of the reconstructions: a float-noise difference may flip one level
  assert np.abs(eight["png"].astype(int) - single["png"]).max() <= 1
  assert json.loads((out / "config.json").read_text())["device_count"] == 8


def test_two_processes_equal_one(setup, single, tmp_path):
  # Each process encodes every other batch of 1 image with the same program: bit-equal.
  out = tmp_path / "two"
  H.run_processes(_cmd(setup, out, 1), timeout=600)
  two = _result(out)
  for k in single:
    np.testing.assert_array_equal(two[k], single[k], err_msg=k)
  assert json.loads((out / "config.json").read_text())["process_count"] == 2
