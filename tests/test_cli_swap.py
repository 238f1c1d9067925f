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
  grid = np.asarray(Image.open(out / "grid.png"))
  assert grid.shape == (3 * 130 + 2, 2 * 130 + 2, 3)
  m = np.asarray(Image.open(out / "masked_s0_t0.png")).astype(int)
  s = np.asarray(Image.open(out / "swap_s0_t0.png")).astype(int)
  assert np.abs(m[:, 70:] - s[:, 70:]).max() <= 1     # right half: the swapped texture
  # The grid: a blank corner, then each swap in its (structure row, texture column) cell.
  assert (grid[2:130, 2:130] == 255).all()
  assert (grid[132:260, 132:260].astype(int) == s).all()


def test_swap_user_errors(model_dir, tmp_path, capsys):
  from jaxinv.cli import main
  rc = main(["swap", "--model", str(model_dir), "--structure", str(tmp_path / "nope.png"),
             "--texture", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")])
  assert rc == 2 and "no such image" in capsys.readouterr().err
  rc = main(["swap", "--model", str(tmp_path), "--structure", "a", "--texture", "b",
             "--out", str(tmp_path / "o")])
  assert rc == 2
