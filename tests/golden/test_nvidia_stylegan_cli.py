"""From the CLI alone: every fixture pickle (StyleGAN2-ADA, TF, StyleGAN3) converts and generates
the official images.

Bounds (README §8): float images ≤ 1e-4 (StyleGAN2) / 2e-4 (StyleGAN3) · max(1, max|expected|)
(independent float32 port);
uint8 images exact when converting the fixture's own float image, ≤ 1 level from ours.
"""

import json

import numpy as np
import pytest
from PIL import Image

from jaxinv.cli import main
from jaxinv.io.images import to_uint8

FOLDER = "nvidia_stylegan"
FORWARD_REL = {"ada": 1e-4, "tf": 1e-4, "sg3": 2e-4}


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


@pytest.fixture(scope="module")
def converted(g, tmp_path_factory):
  tags = [t for t, m in g.expected["models"].items() if m["kind"] in FORWARD_REL]
  if not tags:
    pytest.skip("no generator pickle in this case")
  root = tmp_path_factory.mktemp("nv")
  for tag in tags:
    assert main(["convert", str(g.path(g.expected["models"][tag]["pickle"]["file"])),
                 str(root / tag)]) == 0
    meta = json.loads((root / tag / "config.json").read_text())
    assert meta["family"] == {"sg3": "stylegan3"}.get(g.expected["models"][tag]["kind"], "stylegan2")
  return root, tags


def test_uint8_formula_matches_generate_py(g):
  f = g.npz("fixtures.npz")
  for tag in g.expected["models"]:
    if f"{tag}.img_const_uint8" in f.files:
      want = f[f"{tag}.img_const_uint8"]
      np.testing.assert_array_equal(to_uint8(f[f"{tag}.img_const"].transpose(0, 2, 3, 1)), want)


def test_generate_official_images(g, converted, tmp_path):
  root, tags = converted
  f = g.npz("fixtures.npz")
  for tag in tags:
    t = g.expected["models"][tag]["truncation"]
    np.save(tmp_path / "z.npy", f[f"{tag}.z"])
    labels = []
    if f"{tag}.c" in f.files:
      np.save(tmp_path / "c.npy", f[f"{tag}.c"])
      labels = ["--labels", str(tmp_path / "c.npy")]
    out = tmp_path / f"{tag}.npy"
    assert main(["generate", str(root / tag), "--latents", str(tmp_path / "z.npy"), *labels,
                 "--truncation", str(t["psi"]), "--truncation-layers", str(t["cutoff"]),
                 "--out", str(out)]) == 0
    want = f[f"{tag}.img_psi_cut"]
    err = np.abs(np.load(out) - want).max()
    rel = FORWARD_REL[g.expected["models"][tag]["kind"]]
    assert err <= rel * max(1.0, float(np.abs(want).max())), (tag, err)
    # psi 1 (NVIDIA's default) → the PNGs generate.py writes
    png_dir = tmp_path / f"{tag}_png"
    assert main(["generate", str(root / tag), "--latents", str(tmp_path / "z.npy"), *labels,
                 "--out", str(tmp_path / "psi1.npy"), "--png-dir", str(png_dir)]) == 0
    want8 = f[f"{tag}.img_const_uint8"]
    for i, w8 in enumerate(want8):
      got8 = np.asarray(Image.open(png_dir / f"{i:06d}.png"))
      assert np.abs(got8.astype(int) - w8.astype(int)).max() <= 1, (tag, i)


def test_label_errors(g, converted, tmp_path, capsys):
  root, tags = converted
  f = g.npz("fixtures.npz")
  for tag in tags:
    z = f[f"{tag}.z"]
    np.save(tmp_path / "z.npy", z)
    c_dim = g.expected["models"][tag]["c_dim"]
    base = ["generate", str(root / tag), "--latents", str(tmp_path / "z.npy"),
            "--out", str(tmp_path / "o.npy")]
    if c_dim:
      assert main(base) == 2                                   # labels required
      np.save(tmp_path / "bad.npy", np.zeros((len(z), c_dim + 1), np.float32))
      assert main(base + ["--labels", str(tmp_path / "bad.npy")]) == 2
      np.save(tmp_path / "nan.npy", np.full((len(z), c_dim), np.nan, np.float32))
      assert main(base + ["--labels", str(tmp_path / "nan.npy")]) == 2
    else:
      np.save(tmp_path / "c.npy", np.zeros((len(z), 2), np.float32))
      assert main(base + ["--labels", str(tmp_path / "c.npy")]) == 2
    assert not (tmp_path / "o.npy").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("jaxinv generate: error:") for line in err)


@pytest.mark.slow       # ~50 s on the shared 2-core machine (SG3 gradient compile)
def test_multicode_inversion_on_stylegan3(g, converted, tmp_path):
  """Multi-code inversion (composition at an inner layer) runs on a converted StyleGAN3."""
  root, tags = converted
  sg3 = [t for t in tags if g.expected["models"][t]["kind"] == "sg3"]
  if not sg3:
    pytest.skip("no StyleGAN3 model in this case")
  tag = sg3[0]
  f = g.npz("fixtures.npz")
  images = tmp_path / "targets"
  images.mkdir()
  Image.fromarray(f[f"{tag}.img_const_uint8"][0]).save(images / "target.png")
  layer = len(g.expected["models"][tag]["layers"]) // 2
  out = tmp_path / "inv"
  assert main(["invert", "--generator", str(root / tag), "--images", str(images),
               "--space", "multi", "--codes", "2", "--layer", str(layer), "--loss", "mse",
               "--optimizer", "adam", "--lr", "0.05", "--steps", "3", "--out", str(out)]) == 0
  with np.load(out / "result.npz") as r:
    num_ws, w_dim = g.expected["models"][tag]["num_ws"], g.expected["models"][tag]["w_dim"]
    assert r["codes"].shape == (1, 2, num_ws, w_dim)
    assert r["loss"].shape == (3, 1) and r["loss"][-1, 0] < r["loss"][0, 0]
