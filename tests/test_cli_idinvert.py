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
  # grid.png: a labelled row per image, target | encoder (0 steps: no optimised column), the
  # encoder's PSNR against the target under it; the cells are the target as loaded and the PNG.
  from PIL import Image
  from jaxinv import metrics
  from jaxinv.cli import idinvert as idinvert_cli
  from jaxinv.io import images as image_io
  stems = [str(s) for s in r["names"]]
  res = np.asarray(Image.open(out / f"{stems[0]}_encoder.png")).shape[0]
  targets = image_io.to_uint8(image_io.load_images(dirs["images"][:2], res, loader="idinvert"))
  encoded = np.stack([np.asarray(Image.open(out / f"{s}_encoder.png")) for s in stems])
  grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
  want, lay = idinvert_cli.invert_grid(stems, targets, encoded, None, 0)
  np.testing.assert_array_equal(grid, want)
  assert lay.row_labels == tuple(stems) and lay.col_labels == ("target", "encoder G(E(x))")
  assert lay.cell >= 96
  for i, stem in enumerate(stems):
    assert lay.captions[i] == ("", f"PSNR {metrics.psnr(encoded[i], targets[i], 255.0):.2f} dB")
    for c, tile in enumerate((targets[i], encoded[i])):
      cell = grid[lay.top(i):lay.top(i) + lay.cell:lay.scale, lay.left(c):lay.left(c) + lay.cell:lay.scale]
      np.testing.assert_array_equal(cell, tile, err_msg=f"{stem} column {c}")
  assert (grid[lay.top(0) + lay.cell:lay.top(1), lay.left(1):lay.left(2)] < 128).any()   # caption
  expect = {"idinvert-manipulate": (stems, ["distance -3.00", "distance +0.00", "distance +3.00"]),
            "idinvert-interpolate": ([f"{stems[0]} -> {stems[1]}"], ["t=0.00", "t=0.50", "t=1.00"]),
            "idinvert-mix": ([f"style of {s}" for s in stems], [f"content {s}" for s in stems])}
  for mode, (row_labels, col_labels) in expect.items():
    e = dirs["root"] / mode
    crop = ["--crop-boundary"] if mode == "idinvert-manipulate" else []
    assert main(["edit", "--mode", mode, "--generator", dirs["generator"], "--result",
                 str(out / "result.npz"), "--boundary", dirs["boundary"], "--steps", "3",
                 *crop, "--out", str(e)]) == 0
    # grid.png: labelled rows and columns; row r holds the images of its own row PNG.
    grid = np.asarray(Image.open(e / "grid.png").convert("RGB"))
    names = [str(n) for n in np.load(e / "codes.npz")["names"]]
    rows = [np.asarray(Image.open(e / f"{n}.png")) for n in names]
    _, lay = image_io.labeled_grid([[np.zeros((res, res, 3), np.uint8)] * len(col_labels)] * len(rows),
                                   row_labels, col_labels)
    assert grid.shape[:2] == (lay.top(len(rows)), lay.left(len(col_labels))), mode
    for i, row in enumerate(rows):
      for c in range(len(col_labels)):
        cell = grid[lay.top(i):lay.top(i) + lay.cell:lay.scale, lay.left(c):lay.left(c) + lay.cell:lay.scale]
        np.testing.assert_array_equal(cell, row[:, c * res:(c + 1) * res], err_msg=f"{mode} {i} {c}")
    assert (grid[:lay.origin[0], lay.left(0):] < 128).any()              # column labels
    assert (grid[lay.top(0):lay.top(0) + lay.cell, :lay.origin[1]] < 128).any()   # row label


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


def test_invert_grid_with_optimised_column():
  """After optimisation steps the grid gains an 'optimised' column; captions are each column's
  PSNR against the target (uint8), cells the pictures themselves."""
  from jaxinv import metrics
  from jaxinv.cli.idinvert import invert_grid
  from jaxinv.io import images as image_io
  rng = np.random.RandomState(0)
  t, e, o = (rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(3))
  grid, lay = invert_grid(["a", "b"], t, e, o, 7)
  assert lay.col_labels == ("target", "encoder G(E(x))", "optimised (7 steps)") and lay.cell >= 96
  for i in range(2):
    u = [image_io.to_uint8(x[i]) for x in (t, e, o)]
    assert lay.captions[i] == ("", f"PSNR {metrics.psnr(u[1], u[0], 255.0):.2f} dB",
                               f"PSNR {metrics.psnr(u[2], u[0], 255.0):.2f} dB")
    for c in range(3):
      np.testing.assert_array_equal(
          grid[lay.top(i):lay.top(i) + lay.cell:lay.scale, lay.left(c):lay.left(c) + lay.cell:lay.scale], u[c])
