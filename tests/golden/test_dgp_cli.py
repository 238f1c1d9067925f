"""``jaxinv convert`` / ``generate`` / ``invert --method dgp`` end to end on the DGP fixture models."""

import json
import pathlib

import numpy as np
import pytest

from jaxinv.cli import main
from tests.conftest import assert_close, expected_at_collection, golden_root
from tests.golden import _dgp

# generate is one G forward: README's independent port matches G to 6.7e-7 (float order only);
# 1e-5 is the README's forward bound (measured here <= 5.1e-7 under default, AVX2, AVX, SSE4_2).
IMG_ATOL = 1e-5


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
  gd = golden("dgp")
  root = tmp_path_factory.mktemp("dgp_models")
  ck = gd.expected["checkpoint"]
  assert main(["convert", str(gd.path(ck["G_file"])), str(root / "G")]) == 0
  assert main(["convert", str(gd.path(ck["D_file"])), str(root / "D")]) == 0
  return root


def test_generate_with_classes(golden, converted, tmp_path, capsys):
  gd = golden("dgp")
  m = gd.npz("manipulations.npz")
  if not len(m["category_classes"]):
    pytest.skip("this case stores no category-transfer classes (nothing class-conditional to compare)")
  z = np.repeat(m["jitter_z"], len(m["category_classes"]), 0)
  np.save(tmp_path / "z.npy", z)
  np.save(tmp_path / "y.npy", m["category_classes"])
  assert main(["generate", str(converted / "G"), "--latents", str(tmp_path / "z.npy"),
               "--classes", str(tmp_path / "y.npy"), "--out", str(tmp_path / "x.npy")]) == 0
  assert_close(np.load(tmp_path / "x.npy"), m["category_x"], atol=IMG_ATOL, what="generate")
  capsys.readouterr()
  assert main(["generate", str(converted / "G"), "--latents", str(tmp_path / "z.npy"),
               "--out", str(tmp_path / "x2.npy")]) == 2   # classes missing: a one-line error
  assert "--classes" in capsys.readouterr().err and not (tmp_path / "x2.npy").exists()


def test_invert_dgp_needs_discriminator(golden, converted, tmp_path, capsys):
  gd = golden("dgp")
  te = next(iter(gd.expected["trajectories"].values()))
  rc = main(["invert", "--method", "dgp", "--generator", str(converted / "G"), "--images",
             str(_dgp.example_image(gd, te["image"])), "--out", str(tmp_path / "o")])
  assert rc == 2 and "--discriminator" in capsys.readouterr().err


def _cli_cases():
  """One CLI run per official DGP task the case records: each trajectory (its script's schedule,
  image and class as run) and the manipulation scripts of schedules.json that take images
  (category transfer, morphing) with the example images labels.json assigns to them."""
  exp = expected_at_collection("dgp")
  cases = []
  for task, te in exp.get("trajectories", {}).items():
    cases.append((task, _dgp.config_name(te["script"]), [te["image"]], [te["class_used"]]))
  root = golden_root() / "dgp"
  sched = root / "schedules.json"
  labels = (root / _dgp.EXAMPLES_REL / "labels.json").resolve()
  if not (sched.is_file() and labels.is_file()) or not exp:
    return cases
  n_classes = exp["model_kwargs"]["n_classes"]
  images = json.loads(labels.read_text())["images"]
  for script, entry in json.loads(sched.read_text())["scripts"].items():
    if entry["dgp_mode"] not in ("category_transfer", "morphing"):
      continue
    tags = ["(default)"] if entry["dgp_mode"] == "category_transfer" else ["(image 1)", "(image 2)"]
    chosen = [next((n for n, r in images.items() if any(
        u.split(" ", 1)[0].endswith(script) and u.endswith(tag) for u in r["used_by"])), None)
        for tag in tags]
    if None in chosen:
      continue
    # The fixture's class_used is the ImageNet class mod n_classes (-1 = unknown stays -1).
    cls = [-1 if images[n]["class"] is None else images[n]["class"] % n_classes for n in chosen]
    cases.append((entry["dgp_mode"], _dgp.config_name(script), chosen, cls))
  return cases


@pytest.mark.slow
@pytest.mark.parametrize("mode,schedule,images,cls", _cli_cases(),
                         ids=[c[1] for c in _cli_cases()])
def test_invert_dgp_each_task(golden, converted, tmp_path, mode, schedule, images, cls):
  """Every DGP task from the CLI on real example images (one step per stage, 2 candidates)."""
  from jaxinv.inversion.methods import dgp
  gd = golden("dgp")
  paths = [_dgp.example_image(gd, i) for i in images]
  n = len(dgp.load_schedule(schedule).stages)
  stems = [pathlib.Path(i).stem for i in images]
  opts, extra_file = [], None
  if mode == "jitter":
    opts, extra_file = ["--jitter-samples", "2"], f"{stems[0]}_jitter.png"
  elif mode == "category_transfer":
    classes = gd.expected["manipulations"]["category_classes"]
    if not classes:
      pytest.skip("this case stores no category-transfer classes")
    opts, extra_file = ["--transfer-classes", *map(str, classes)], f"{stems[0]}_transfer.png"
  elif mode == "morphing":
    extra_file = f"{stems[0]}_to_{stems[1]}_morph.png"
  out = tmp_path / "out"
  rc = main(["invert", "--method", "dgp", "--generator", str(converted / "G"), "--discriminator",
             str(converted / "D"), "--class", *map(str, cls), "--schedule", schedule, "--images",
             *map(str, paths), "--iterations", *(["1"] * n), "--select-num", "2",
             "--out", str(out), *opts])
  assert rc == 0
  files = ["grid.png", "result.npz", "config.json"]
  files += [f"{s}{suffix}.png" for s in stems for suffix in ("", "_target")]
  if extra_file:
    files.append(extra_file)
  for f in files:
    assert (out / f).is_file(), f
  # grid.png: labelled rows input / observation / output, one labelled column per image, each tile
  # the saved PNG where the layout (same labels, same cell size) puts it.
  from PIL import Image
  from jaxinv.io import images as image_io
  res = gd.expected["model_kwargs"]["resolution"]
  labels = ["input", f"observation ({dgp.load_schedule(schedule).dgp_mode})", "DGP output"]
  _, lay = image_io.labeled_grid([[np.zeros((res, res, 3), np.uint8)] * len(images)] * 3, labels, stems)
  grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
  assert grid.shape[:2] == (lay.top(3), lay.left(len(images)))
  for j, (stem, path) in enumerate(zip(stems, paths)):
    tiles = [dgp.load_image_uint8(path, res)] + [np.asarray(Image.open(out / f"{stem}{suffix}.png"))
                                                 for suffix in ("_target", "")]
    for i, tile in enumerate(tiles):
      cell = grid[lay.top(i):lay.top(i) + lay.cell:lay.scale, lay.left(j):lay.left(j) + lay.cell:lay.scale]
      np.testing.assert_array_equal(cell, tile, err_msg=f"{stem} row {i}")
  r = np.load(out / "result.npz")
  dim_z = gd.expected["derived"]["G_dim_z_effective"]
  assert r["z"].shape == (len(images), dim_z) and r["loss"].shape == (n, len(images))
  assert np.isfinite(r["loss"]).all() and np.isfinite(r["metric_psnr"]).all()
  assert json.loads((out / "config.json").read_text())
  if extra_file:   # the manipulation picture is a labelled grid of the expected cells
    from jaxinv.cli.invert_dgp import JITTER_STDS
    blank = np.zeros((res, res, 3), np.uint8)
    if mode == "jitter":
      rows, cols = [f"z + {s:g}·noise" for s in JITTER_STDS], ["sample 1", "sample 2"]
    elif mode == "category_transfer":
      rows, cols = ["class"], [str(c) for c in classes]
    else:
      rows, cols = ["weight of image 1"], [f"{a / 10:.1f}" for a in range(10, -1, -1)]
    _, lay = image_io.labeled_grid([[blank] * len(cols)] * len(rows), rows, cols)
    pic = np.asarray(Image.open(out / extra_file).convert("RGB"))
    assert pic.shape[:2] == (lay.top(len(rows)), lay.left(len(cols))), extra_file
