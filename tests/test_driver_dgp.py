"""DGP through the driver from the CLI: one generator copy per device, kill -9 and resume, two
processes — each gives the uninterrupted single-device result.

Uses the DGP fixture's models and the example images of its trajectories (names from
expected.json), 2 candidates and 3 steps per stage.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests import sweep_helpers as H
from tests.golden import _dgp

SCHEDULE = "in128_SR_D_biased"

# Sharded vs single device: the same per-image arithmetic in a batch of 1 per device instead of
# a batch of 3 on one; XLA:CPU may vectorise the image axis differently (float order only), which
# the 13 Adam steps (betas 0, 0.999) carry into z by at most steps·lr ~ 1e-3 in the worst case;
# measured max |dz| 0 / loss 0 here, so the bound is the 1e-5 after 3 steps.
SHARDED_ATOL = 1e-5


def _images(gd):
  names = [t["image"] for t in gd.expected["trajectories"].values()]
  return [str(_dgp.example_image(gd, n)) for n in dict.fromkeys(names)][:3]


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  from jaxinv.cli import main
  from jaxinv.inversion.methods import dgp
  gd = golden("dgp")
  root = tmp_path_factory.mktemp("dgp_driver")
  ck = gd.expected["checkpoint"]
  assert main(["convert", str(gd.path(ck["G_file"])), str(root / "G")]) == 0
  assert main(["convert", str(gd.path(ck["D_file"])), str(root / "D")]) == 0
  stages = len(dgp.load_schedule(SCHEDULE).stages)
  images = _images(gd)
  if len(images) < 2:
    pytest.skip("this case has fewer than 2 DGP example images")
  return root, images, stages


def _cmd(setup, out, batch, *extra):
  root, images, stages = setup
  return [sys.executable, "-m", "jaxinv", "invert", "--method", "dgp", "--generator",
          str(root / "G"), "--discriminator", str(root / "D"), "--schedule", SCHEDULE,
          "--iterations", *(["3"] * stages), "--select-num", "2", "--images", *images,
          "--batch", str(batch), "--out", str(out), *extra]


def _run(setup, out, batch, timeout=600, **env):
  p = subprocess.run(_cmd(setup, out, batch), cwd=H.REPO, env=H.env(**env), capture_output=True,
                     text=True, timeout=timeout)
  assert p.returncode == 0, p.stderr[-3000:]
  return p


def _result(out):
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def single(setup, tmp_path_factory):
  out = tmp_path_factory.mktemp("single") / "out"
  _run(setup, out, batch=1)
  return out


@pytest.mark.slow   # ~60-150 s: a fresh 8-device process compiles every DGP program again
def test_sharded_over_8_devices_equals_single(setup, single, tmp_path):
  out = tmp_path / "out"
  _run(setup, out, batch=8, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  a, b = _result(single), _result(out)
  assert list(a["names"]) == list(b["names"])
  for k in ("z", "loss", "z0", "select_losses"):
    np.testing.assert_allclose(b[k], a[k], rtol=0, atol=SHARDED_ATOL, err_msg=k)
  cfg = json.loads((out / "config.json").read_text())
  assert cfg["device_count"] == 8 and not (out / ".jaxinv-work").exists()


@pytest.mark.slow   # ~85 s: two fresh processes compile every DGP program (mGANprior's sweep kill test
                    # and the in-process resume tests of every optimising method stay in the default run)
def test_kill_and_resume(setup, single, tmp_path):
  out = tmp_path / "out"
  # the first image finished, the second mid-way through its stages
  H.kill_when(_cmd(setup, out, 1), lambda: H.driver_checkpoints(out),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3})
  assert not (out / "result.npz").exists()
  p = _run(setup, out, batch=1)
  assert "resuming" in p.stderr and "at step" in p.stderr
  a, b = _result(single), _result(out)
  for k in a:
    np.testing.assert_array_equal(b[k], a[k], err_msg=k)   # same programs, same chunks: bit-equal
  assert not (out / ".jaxinv-work").exists()


@pytest.mark.slow   # ~100 s: two fresh processes compile every DGP program again
def test_two_processes(setup, single, tmp_path):
  out = tmp_path / "out"
  H.run_processes(_cmd(setup, out, 1), timeout=600)
  a, b = _result(single), _result(out)
  for k in a:
    np.testing.assert_array_equal(b[k], a[k], err_msg=k)
  cfg = json.loads((out / "config.json").read_text())
  assert cfg["process_count"] == 2
