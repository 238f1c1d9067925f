"""``jaxinv convert`` / ``generate`` / ``invert --method dgp`` end to end on the DGP fixture models."""

import json
import pathlib

import numpy as np
import pytest

from jaxinv.cli import main
from tests.conftest import assert_close


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
@pytest.mark.parametrize("schedule,images,cls,extra", [
    ("in128_SR_D_biased", ["ILSVRC2012_val_00042095.JPEG"], ["0"], {}),
    ("in128_colorization", ["ILSVRC2012_val_00003004.JPEG"], ["3"], {}),
    ("in128_inpainting", ["ILSVRC2012_val_00001970.JPEG"], ["-1"], {}),
    ("run_jitter", ["ILSVRC2012_val_00001172.JPEG"], ["9"],
     {"--jitter-samples": "2", "_file": "{stem}_jitter.png"}),
    ("run_category_transfer", ["ILSVRC2012_val_00008229.JPEG"], ["4"],
     {"--transfer-classes": "0 9", "_file": "{stem}_transfer.png"}),
    ("run_morphing", ["ILSVRC2012_val_00001172.JPEG", "ILSVRC2012_val_00008229.JPEG"], ["9", "4"],
     {"_file": "ILSVRC2012_val_00001172_to_ILSVRC2012_val_00008229_morph.png"}),
])
def test_invert_dgp_each_task(golden, converted, tmp_path, schedule, images, cls, extra):
  """Every DGP task from the CLI on real example images (one step per stage, 2 candidates)."""
  root = pathlib.Path(golden("dgp").dir).parent.parent / "data" / "dgp_examples"
  from jaxinv.inversion.methods import dgp
  n = len(dgp.load_schedule(schedule).stages)
  out = tmp_path / "out"
  opts = [a for k, v in extra.items() if not k.startswith("_") for a in [k, *v.split()]]
  rc = main(["invert", "--method", "dgp", "--generator", str(converted / "G"), "--discriminator",
             str(converted / "D"), "--class", *cls, "--schedule", schedule, "--images",
             *[str(root / i) for i in images], "--iterations", *(["1"] * n), "--select-num", "2",
             "--out", str(out), *opts])
  assert rc == 0
  stems = [i.rsplit(".", 1)[0] for i in images]
  files = ["grid.png", "result.npz", "config.json"]
  files += [f"{s}{suffix}.png" for s in stems for suffix in ("", "_target")]
  if "_file" in extra:
    files.append(extra["_file"].format(stem=stems[0]))
  for f in files:
    assert (out / f).is_file(), f
  r = np.load(out / "result.npz")
  assert r["z"].shape == (len(images), 120) and r["loss"].shape == (n, len(images))
  assert np.isfinite(r["loss"]).all() and np.isfinite(r["metric_psnr"]).all()
  assert json.loads((out / "config.json").read_text())
