"""``jaxinv convert`` / ``generate`` / ``invert --method dgp`` end to end on the DGP fixture models."""

import json
import pathlib

import numpy as np
import pytest

from jaxinv.cli import main
from tests.conftest import assert_close
from tests.golden import _dgp


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
  gd = golden("dgp")
  root = tmp_path_factory.mktemp("dgp_models")
  ck = gd.expected["checkpoint"]
  assert main(["convert", str(gd.path(ck["G_file"])), str(root / "G")]) == 0
  assert main(["convert", str(gd.path(ck["D_file"])), str(root / "D")]) == 0
  return root


def test_generate_with_classes(golden, converted, tmp_path):
  gd = golden("dgp")
  m = gd.npz("manipulations.npz")
  z = np.repeat(m["jitter_z"], len(m["category_classes"]), 0)
  np.save(tmp_path / "z.npy", z)
  np.save(tmp_path / "y.npy", m["category_classes"])
  assert main(["generate", str(converted / "G"), "--latents", str(tmp_path / "z.npy"),
               "--classes", str(tmp_path / "y.npy"), "--out", str(tmp_path / "x.npy")]) == 0
  assert_close(np.load(tmp_path / "x.npy"), m["category_x"], atol=1e-5, what="generate")
  assert main(["generate", str(converted / "G"), "--latents", str(tmp_path / "z.npy"),
               "--out", str(tmp_path / "x2.npy")]) == 2   # classes missing: a one-line error


def test_invert_dgp_needs_discriminator(golden, converted, tmp_path, capsys):
  img = pathlib.Path(golden("dgp").dir).parent.parent / "data" / "dgp_examples"
  rc = main(["invert", "--method", "dgp", "--generator", str(converted / "G"), "--images",
             str(img / "ILSVRC2012_val_00042095.JPEG"), "--out", str(tmp_path / "o")])
  assert rc == 2 and "--discriminator" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("schedule,image,cls", [
    ("in128_SR_D_biased", "ILSVRC2012_val_00042095.JPEG", 0),
    ("in128_colorization", "ILSVRC2012_val_00003004.JPEG", 3),
    ("in128_inpainting", "ILSVRC2012_val_00001970.JPEG", -1),
    ("run_jitter", "ILSVRC2012_val_00001172.JPEG", 9),
])
def test_invert_dgp_each_task(golden, converted, tmp_path, schedule, image, cls):
  img = pathlib.Path(golden("dgp").dir).parent.parent / "data" / "dgp_examples" / image
  from jaxinv.inversion.methods import dgp
  n = len(dgp.load_schedule(schedule).stages)
  out = tmp_path / "out"
  rc = main(["invert", "--method", "dgp", "--generator", str(converted / "G"), "--discriminator",
             str(converted / "D"), "--class", str(cls), "--schedule", schedule, "--images", str(img),
             "--iterations", *(["1"] * n), "--select-num", "2", "--out", str(out)])
  assert rc == 0
  stem = image.rsplit(".", 1)[0]
  for f in (f"{stem}.png", f"{stem}_target.png", "grid.png", "result.npz", "config.json"):
    assert (out / f).is_file(), f
  r = np.load(out / "result.npz")
  assert r["z"].shape == (1, 120) and r["loss"].shape == (n, 1) and np.isfinite(r["loss"]).all()
  assert json.loads((out / "config.json").read_text())
