"""``jaxinv swap`` end to end on real example images with the converted fixture model."""

import json
import os

import numpy as np
import pytest

from tests.golden import sae_common as C

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                    "data", "mganprior_examples")


def _images(n):
  out = []
  for d, _, fs in sorted(os.walk(DATA)):
    out += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".png") and "church" in d]
  if len(out) < n:
    pytest.skip("example images not found")
  return out[:n]


@pytest.fixture(scope="module")
def model_dir(golden, tmp_path_factory):
  from jaxinv.cli import main
  g = golden(C.FOLDER)
  tmp = tmp_path_factory.mktemp("sae")
  opt = tmp / "options.json"
  opt.write_text(json.dumps(g.expected["options_all"]))
  assert main(["convert", str(g.path(g.expected["checkpoint"]["file"])), str(tmp / "m"),
               "--option", f"config={opt}"]) == 0
  return tmp / "m"


def test_swap_grid_interp_mask(model_dir, tmp_path):
  from PIL import Image
  from jaxinv.cli import main
  imgs = _images(3)
  mask = np.zeros((64, 64), np.uint8)
  mask[:, 32:] = 255
  Image.fromarray(mask).save(tmp_path / "mask.png")
  out = tmp_path / "out"
  rc = main(["swap", "--model", str(model_dir), "--structure", imgs[0], imgs[1], "--texture", imgs[2],
             "--out", str(out), "--interpolate", "3", "--mask", str(tmp_path / "mask.png"),
             "--batch", "2", "--noise", "fixed"])
  assert rc == 0
  names = set(os.listdir(out))
  assert {"grid.png", "swap_s0_t0.png", "swap_s1_t0.png", "interp_s1_t0.png", "masked_grid.png",
          "masked_s0_t0.png", "run.json"} <= names
  m = np.asarray(Image.open(out / "masked_s0_t0.png")).astype(int)
  s = np.asarray(Image.open(out / "swap_s0_t0.png")).astype(int)
  assert np.abs(m[:, 70:] - s[:, 70:]).max() <= 1     # right half: the swapped texture
  # The grids: labelled rows (the texture images, then each structure image) and columns (the
  # structure, then each texture); a blank corner, each swap in its (structure, texture) cell.
  from jaxinv.io import images as image_io
  from jaxinv.cli.swap import _names
  stem = lambda p: _names([p])[0]      # long stems (hashes here) cut to 14 characters
  assert all(len(stem(p)) <= 14 for p in imgs)
  size = s.shape[0]
  blank = np.zeros((size, size, 3), np.uint8)
  for name, prefix, what in (("grid.png", "swap", ""), ("masked_grid.png", "masked", " in the mask")):
    grid = np.asarray(Image.open(out / name).convert("RGB"))
    _, lay = image_io.labeled_grid([[blank] * 2] * 3, ["texture images"] + [f"structure {stem(p)}" for p in imgs[:2]],
                                   ["structure", f"texture {stem(imgs[2])}{what}"])
    assert grid.shape[:2] == (lay.top(3), lay.left(2)) and lay.cell >= 96, name
    cell = lambda r, c: grid[lay.top(r):lay.top(r) + lay.cell:lay.scale, lay.left(c):lay.left(c) + lay.cell:lay.scale]
    assert (cell(0, 0) == 255).all()
    for i in range(2):
      np.testing.assert_array_equal(cell(1 + i, 1), np.asarray(Image.open(out / f"{prefix}_s{i}_t0.png")))
    assert (grid[:lay.origin[0], lay.left(0):] < 128).any() and (grid[lay.top(1):, :lay.origin[1]] < 128).any()
  strip = np.asarray(Image.open(out / "interp_s1_t0.png").convert("RGB"))
  _, lay = image_io.labeled_grid([[blank] * 3], [f"{stem(imgs[1])} with texture of {stem(imgs[2])}"],
                                 ["texture 0.00", "texture 0.50", "texture 1.00"])
  assert strip.shape[:2] == (lay.top(1), lay.left(3))


def test_swap_user_errors(model_dir, tmp_path, capsys):
  from jaxinv.cli import main
  rc = main(["swap", "--model", str(model_dir), "--structure", str(tmp_path / "nope.png"),
             "--texture", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")])
  assert rc == 2 and "no such image" in capsys.readouterr().err
  rc = main(["swap", "--model", str(tmp_path), "--structure", "a", "--texture", "b",
             "--out", str(tmp_path / "o")])
  assert rc == 2
