"""``jaxinv invert`` through the driver on 8 forced CPU devices equals one device: mGANprior (PGGAN)
and w+ on StyleGAN2, 4 images, --batch 8 (one image per device on a 4-device mesh)."""

import json
import subprocess
import sys

import numpy as np

from jaxinv.cli import main
from tests import sweep_helpers as H
from tests.conftest import golden_root

CHURCH = golden_root().parent / "data" / "mganprior_examples" / "gan_inversion" / "church"

# The same per-image step on a device's own image instead of a batch of 4 on one device: XLA:CPU
# may vectorise differently (float order only), and 3 lr-0.05 Adam steps move each latent by at
# most 3·0.05 whatever the noise; measured max |difference|: mGANprior z 2.6e-6, alpha 1.1e-6,
# loss 1.2e-7; w+ 0. 1e-5 is the bound after 3 steps.
ATOL = 1e-5


def _convert(root):
  mg = json.loads((golden_root() / "mganprior" / "expected.json").read_text())
  ros = json.loads((golden_root() / "stylegan2_rosinality" / "expected.json").read_text())
  assert main(["convert", str(golden_root() / "mganprior" / mg["pggan"]["checkpoint"]),
               str(root / "pggan")]) == 0
  assert main(["convert", str(golden_root() / "stylegan2_rosinality" / ros["checkpoint"]["file"]),
               str(root / "sg2")]) == 0


def _commands(root, out, batch):
  common = ["--images", str(CHURCH), "--loss", "mse", "--optimizer", "adam", "--lr", "0.05",
            "--steps", "3", "--chunk", "1", "--batch", str(batch)]
  return [["invert", "--generator", str(root / "pggan"), "--codes", "2", "--layer", "2",
           "--out", str(out / "mganprior"), *common],
          ["invert", "--generator", str(root / "sg2"), "--space", "wp", "--out", str(out / "wp"),
           *common]]


def test_eight_devices_equal_one(tmp_path):
  _convert(tmp_path)
  for argv in _commands(tmp_path, tmp_path / "one", 1):
    assert main(argv) == 0
  script = ("import sys, json; from jaxinv.cli import main; import jax; "
            "assert jax.device_count() == 8; "
            "sys.exit(max(main(a) for a in json.loads(sys.argv[1])))")
  p = subprocess.run([sys.executable, "-c", script,
                      json.dumps(_commands(tmp_path, tmp_path / "eight", 8))],
                     cwd=H.REPO, env=H.env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  for name, keys in (("mganprior", ("z", "alpha", "loss")), ("wp", ("wp", "loss"))):
    with np.load(tmp_path / "one" / name / "result.npz") as a, \
        np.load(tmp_path / "eight" / name / "result.npz") as b:
      assert list(a["names"]) == list(b["names"]) and len(a["names"]) >= 2
      for k in keys:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=ATOL, err_msg=f"{name} {k}")
    cfg = json.loads((tmp_path / "eight" / name / "config.json").read_text())
    assert cfg["device_count"] == 8
