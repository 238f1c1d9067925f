"""End-to-end runs of the IDInvert entry points on the fixture models and the real example faces."""

import os

import numpy as np
import pytest

from jaxinv import converters
from jaxinv.cli import main

DATA = "idinvert"


@pytest.fixture(scope="module")
def dirs(golden, tmp_path_factory):
  g = golden(DATA)
  root = tmp_path_factory.mktemp("idinvert_cli")
  out = {}
  for key in ("generator", "encoder", "perceptual"):
    converters.convert_file(g.path(g.expected["files"][key]), root / key)
    out[key] = str(root / key)
  out["images"] = [str(g.path(os.path.join(g.expected["files"]["images_dir"], n)))
                   for n in g.expected["images"]]
  out["boundary"] = str(g.path(g.expected["files"]["boundary"]))
  out["root"] = root
  return out


def _models(d):
  return ["--generator", d["generator"], "--encoder", d["encoder"], "--perceptual", d["perceptual"]]


def test_invert_encoder_only_then_edit(dirs):
  out = dirs["root"] / "inv0"
  assert main(["invert", "--method", "idinvert", *_models(dirs), "--images", *dirs["images"][:2],
               "--steps", "0", "--out", str(out)]) == 0
  r = np.load(out / "result.npz")
  assert r["wp"].shape[0] == 2 and r["loss"].shape == (0, 2)
  np.testing.assert_array_equal(r["wp"], r["init_wp"])
  for mode in ("idinvert-manipulate", "idinvert-interpolate", "idinvert-mix"):
    e = dirs["root"] / mode
    crop = ["--crop-boundary"] if mode == "idinvert-manipulate" else []
    assert main(["edit", "--mode", mode, "--generator", dirs["generator"], "--result",
                 str(out / "result.npz"), "--boundary", dirs["boundary"], "--steps", "3",
                 *crop, "--out", str(e)]) == 0
    assert (e / "grid.png").is_file()


def test_boundary_of_another_shape_needs_crop_flag(dirs, tmp_path, capsys):
  """A boundary made for another model is refused (one line) unless --crop-boundary asks."""
  from jaxinv.cli.common import load_generator
  cfg = load_generator(dirs["generator"]).config
  result = tmp_path / "result.npz"
  np.savez(result, wp=np.zeros((1, cfg.num_ws, cfg.w_dim), np.float32))
  from jaxinv import editing
  boundary = tmp_path / "bigger.npz"     # a boundary for a model with more layers and a wider w
  big = np.random.default_rng(0).standard_normal((1, cfg.num_ws + 2, cfg.w_dim + 8))
  editing.save_boundary(boundary, (big / np.linalg.norm(big)).astype(np.float32), None)
  argv = ["edit", "--mode", "idinvert-manipulate", "--generator", dirs["generator"], "--result",
          str(result), "--boundary", str(boundary), "--steps", "2"]
  capsys.readouterr()
  assert main(argv + ["--out", str(tmp_path / "refused")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and str(boundary) in err[0] and "--crop-boundary" in err[0], err
  assert not (tmp_path / "refused").exists()
  assert main(argv + ["--crop-boundary", "--out", str(tmp_path / "cropped")]) == 0
  assert (tmp_path / "cropped" / "grid.png").is_file()


def test_directions_sefa(dirs):
  out = dirs["root"] / "sefa"
  assert main(["directions", "--generator", dirs["generator"], "--method", "sefa", "--num", "2",
               "--out", str(out)]) == 0
  from jaxinv import editing
  b = editing.load_boundary(out / "sefa_00.npz")
  assert abs(np.linalg.norm(b["boundary"]) - 1) < 1e-5
  assert (out / "sefa_01.png").is_file()


def test_missing_encoder_is_a_user_error(dirs, capsys):
  rc = main(["invert", "--method", "idinvert", "--generator", dirs["generator"], "--perceptual",
             dirs["perceptual"], "--images", dirs["images"][0], "--out", str(dirs["root"] / "x")])
  assert rc == 2 and "--encoder" in capsys.readouterr().err


@pytest.mark.slow   # compiles E∘G∘VGG backward twice (~50 s of CPU)
def test_invert_and_diffuse_few_steps(dirs):
  out = dirs["root"] / "inv"
  assert main(["invert", "--method", "idinvert", *_models(dirs), "--images", *dirs["images"],
               "--steps", "3", "--batch", "2", "--out", str(out)]) == 0
  r = np.load(out / "result.npz")
  assert r["loss"].shape == (3, 3) and "loss_reg" in r.files
  d = dirs["root"] / "dif"
  assert main(["diffuse", *_models(dirs), "--target", dirs["images"][0], "--context",
               *dirs["images"][1:], "--steps", "2", "--out", str(d)]) == 0
  assert np.load(d / "result.npz")["loss"].shape == (2, 2)
