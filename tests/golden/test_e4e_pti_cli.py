"""From the CLI alone: convert the fixture e4e checkpoint (auto-detected) and encode the fixture
photos to the official codes, in batches smaller than the image count (padding exercised).

Tolerance: as tests/golden/test_e4e_pti_e4e.py (1e-4 * max(1, max|expected|); measured
thread noise 2e-6). PNGs: within 1 level of the fixture reconstruction's own rounding.
"""

import os

import numpy as np
import pytest

from jaxinv.cli import main
from jaxinv.io import images as image_io
from tests.conftest import golden_root

FORWARD_RTOL = 1e-4


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
  g = golden("e4e_pti")
  e4e = g.expected["e4e"]
  dest = str(tmp_path_factory.mktemp("e4e") / "model")
  assert main(["convert", str(g.path(e4e["checkpoint"]["file"])), dest,
               "--option", f"input_size={e4e['config']['input_size']}"]) == 0
  return g, e4e, dest


def test_invert_e4e_writes_official_codes(converted, tmp_path):
  g, e4e, dest = converted
  base = golden_root().parent.parent
  paths = [str(base / im["path"]) for im in e4e["images"]]
  out = str(tmp_path / "out")
  assert main(["invert", "--method", "e4e", "--encoder", dest, "--images", *paths, "--out", out,
               "--batch", "2"]) == 0
  z = g.npz("fixtures.npz")
  with np.load(os.path.join(out, "result.npz")) as r:
    wp, names = r["wp"], list(r["names"])
  exp = z["e4e.codes"]
  assert np.abs(wp - exp).max() <= FORWARD_RTOL * max(1.0, np.abs(exp).max())
  recon = np.transpose(z["e4e.recon"], (0, 2, 3, 1))
  for name, img in zip(names, recon):
    got = image_io.load_rgb_uint8(os.path.join(out, f"{name}.png")).astype(int)
    assert np.abs(got - image_io.to_uint8(img).astype(int)).max() <= 1
  # The InterFaceGAN edit of image 0 over the fixture's factor range, through the e4e decoder.
  ed = e4e["edit"]
  direction = str(tmp_path / "direction.npy")
  np.save(direction, z["e4e.edit.direction"])
  edits = str(tmp_path / "edits")
  assert main(["edit", "--mode", "interfacegan", "--generator", dest, "--result",
               os.path.join(out, "result.npz"), "--boundary", direction, "--factors",
               *map(str, range(*ed["factor_range"])), "--out", edits]) == 0
  with np.load(os.path.join(edits, "edits.npz")) as r:
    lat = r["latents"][0]
  exp = z["e4e.edit.range_latents"]
  assert np.abs(lat - exp).max() <= FORWARD_RTOL * max(1.0, np.abs(exp).max())
  strip = image_io.load_rgb_uint8(os.path.join(edits, f"{names[0]}_strip.png")).astype(int)
  assert np.abs(strip - z["e4e.edit.range_uint8"].astype(int)).max() <= 1   # truncation edges


def test_invert_e4e_refusals(converted, tmp_path, capsys):
  g, e4e, dest = converted
  out = str(tmp_path / "out")
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"not an image")
  assert main(["invert", "--method", "e4e", "--encoder", dest, "--images", str(bad),
               "--out", out]) == 2
  assert "not a readable image" in capsys.readouterr().err
  assert main(["invert", "--method", "e4e", "--images", str(bad), "--out", out]) == 2
  assert "--encoder" in capsys.readouterr().err
  assert main(["invert", "--method", "e4e", "--encoder", str(tmp_path / "none"),
               "--images", str(bad), "--out", out]) == 2
  assert not os.path.exists(out)
