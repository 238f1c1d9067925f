"""End to end: jaxinv convert (PadInv generator, encoder, LPIPS) → invert --method padinv → edits."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxinv.cli import main
from jaxinv.cli import padinv as padinv_cli
from jaxinv.inversion.methods import padinv as M
from jaxinv.io import images as image_io
from jaxinv.io.results import read_padinv_result
from jaxinv.models import registry
from tests.conftest import golden_root
from tests.golden import padinv_common
from tests.conftest import optional_path

GOLDEN = golden_root() / "padinv"
# The case's images (config.json: images[].file) live under the shared data folder, two levels up
# from the fixture folder as for every fixture family (../../data/<file>).
DATA_REL = "../../data"
# PNGs hold to_uint8 of a float image; rendering the same codes again in another batch may move a
# pixel across a rounding boundary (float32 noise ~1e-6 << 1 level), so at most 1 level.
PNG_LEVELS = 1
# Encoder outputs of one image encoded alone vs in a batch of 2: eval-mode BN is batch-independent,
# so only float order differs. README: the reference moves by ~1e-5 under summation-order changes
# and its bounds are 1e-4 (w+) and 2e-4 (maps, |x| ~ 15 after ~30 residual blocks).
WP_ATOL, MAP_ATOL = 1e-4, 2e-4


def _cfg():
  return json.loads((GOLDEN / "config.json").read_text())


@pytest.fixture(scope="module")
def images():
  return [str(optional_path(GOLDEN, f"{DATA_REL}/{im['file']}", f"PadInv case image {im['file']}"))
          for im in _cfg()["images"]]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  root = tmp_path_factory.mktemp("padinv_cli")
  found = padinv_common._checkpoints(GOLDEN)   # by format detection, not by file name
  gan = GOLDEN / found["padinv-generator"][0]
  enc = GOLDEN / found["padinv-encoder"][0]
  assert main(["convert", str(gan), str(root / "G")]) == 0
  assert main(["convert", str(enc), str(root / "E"), "--option", f"gan_checkpoint={gan}"]) == 0
  return root


@pytest.fixture(scope="module")
def encoded(converted, images, tmp_path_factory):
  out = tmp_path_factory.mktemp("padinv_out")
  rc = main(["invert", "--method", "padinv", "--generator", str(converted / "G"), "--encoder",
             str(converted / "E"), "--images", *images, "--out", str(out), "--batch", "2"])
  assert rc == 0
  return out


@pytest.fixture(scope="module")
def render(converted):
  gen = registry.load_model(converted / "G", expect_family="padinv-stylegan2")
  return lambda wp, maps: image_io.to_uint8(np.asarray(M.render(
      gen.module, gen.params, jnp.asarray(wp), {s: jnp.asarray(m) for s, m in maps.items()})))


def _png(path):
  return np.asarray(Image.open(path)).astype(int)


def _assert_png(path, want_u8, what):
  got = _png(path)
  assert got.shape == want_u8.shape, f"{what}: {got.shape} vs {want_u8.shape}"
  diff = np.abs(got - want_u8.astype(int)).max()
  assert diff <= PNG_LEVELS, f"{what}: off by {diff} levels"


def test_encoder_only_outputs(encoded, images, render):
  r = np.load(encoded / "result.npz")
  n = len(images)
  assert r["wp"].shape[0] == n and r["loss"].shape == (0, n)
  slots = sorted(int(k[len("map_slot"):]) for k in r.files if k.startswith("map_slot"))
  assert slots == sorted(padinv_common.slots_of(_cfg()))
  # Each PNG is the rendering of its own (w+, maps).
  wp, maps, names = read_padinv_result(encoded / "result.npz")
  recon = render(wp, maps)
  assert sorted(p.name for p in encoded.glob("*.png")) == sorted(f"{s}.png" for s in names)
  for i, s in enumerate(names):
    _assert_png(encoded / f"{s}.png", recon[i], f"{s}.png")
  cfg = json.loads((encoded / "config.json").read_text())
  assert cfg["settings"]["steps"] == 0 and cfg["settings"]["method"] == "padinv"


def test_batch_does_not_change_results(converted, encoded, images, tmp_path):
  rc = main(["invert", "--method", "padinv", "--generator", str(converted / "G"), "--encoder",
             str(converted / "E"), "--images", *images[:1], "--out", str(tmp_path)])
  assert rc == 0
  a, b = np.load(encoded / "result.npz"), np.load(tmp_path / "result.npz")
  np.testing.assert_allclose(a["wp"][:1], b["wp"], atol=WP_ATOL)
  for k in [k for k in a.files if k.startswith("map_slot")]:
    np.testing.assert_allclose(a[k][:1], b[k], atol=MAP_ATOL, err_msg=k)


def test_no_encoder_needs_steps(converted, images, tmp_path, capsys):
  rc = main(["invert", "--method", "padinv", "--generator", str(converted / "G"),
             "--images", *images[:1], "--out", str(tmp_path)])
  assert rc == 2 and "--steps" in capsys.readouterr().err


def _other_result(encoded, tmp_path):
  """A second, clearly different result: rows rotated by one (so row i holds another image's maps
  when there are >= 2) and w+ moved by 0.5 * a random direction. The encoder's w+ of the case's
  images differ by ~1e-2 only (random weights), too little to show in a PNG; the shift changes
  renderings by whole levels, so a swap that took the other result's w+ would fail."""
  with np.load(encoded / "result.npz") as f:
    arrays = {k: f[k] for k in f.files}
  if len(arrays["wp"]) < 2:
    pytest.skip("swapping needs a case with at least two images")
  rot = {k: (np.roll(v, -1, axis=0) if k in ("wp", "names") or k.startswith("map_slot") else v)
         for k, v in arrays.items()}
  rot["wp"] = rot["wp"] + 0.5 * np.random.RandomState(2).randn(*rot["wp"].shape[1:]).astype(np.float32)
  rot["names"] = np.asarray([f"other_{n}" for n in rot["names"]])
  np.savez(tmp_path / "other.npz", **rot)
  return tmp_path / "other.npz"


def _check_swap(out, encoded, other, render):
  wp, maps, names = read_padinv_result(encoded / "result.npz")
  _, maps_o, names_o = read_padinv_result(other)
  want = render(wp, maps_o)          # w+ of this result, padding maps of the other
  own, theirs = render(wp, maps), render(*read_padinv_result(other)[:2])
  for i, (s, so) in enumerate(zip(names, names_o)):
    path = out / f"{s}_style_{so}_maps.png"
    _assert_png(path, want[i], path.name)
    got = _png(path)
    # Differs from both inputs' reconstructions (it is neither result copied).
    assert np.abs(got - own[i].astype(int)).max() > PNG_LEVELS, f"{path.name} == own reconstruction"
    assert np.abs(got - theirs[i].astype(int)).max() > PNG_LEVELS, f"{path.name} == other's image"


def test_edit_keep_maps_and_swap(converted, encoded, render, tmp_path):
  r = np.load(encoded / "result.npz")
  other = _other_result(encoded, tmp_path)
  b = np.random.RandomState(0).randn(r["wp"].shape[-1]).astype(np.float32)
  np.save(tmp_path / "b.npy", b)
  written = padinv_cli.edit_result(str(converted / "G"), str(encoded / "result.npz"),
                                   str(tmp_path / "edit"), boundary=str(tmp_path / "b.npy"),
                                   alphas=(0.0, 1.0), swap_with=str(other))
  assert len(written) == 3 * len(r["wp"])
  wp, maps, names = read_padinv_result(encoded / "result.npz")
  for a in (0.0, 1.0):
    want = render(wp + a * b, maps)   # boundary on every w+ row, each image's own maps
    for i, s in enumerate(names):
      _assert_png(tmp_path / "edit" / f"{s}_a{a:g}.png", want[i], f"{s} alpha {a}")
  # alpha 0 with the image's own maps is the reconstruction itself.
  for s in names:
    assert np.abs(_png(tmp_path / "edit" / f"{s}_a0.png") - _png(encoded / f"{s}.png")).max() <= PNG_LEVELS
  _check_swap(tmp_path / "edit", encoded, other, render)


def test_edit_cli_modes(converted, encoded, render, tmp_path):
  r = np.load(encoded / "result.npz")
  b = np.random.RandomState(1).randn(1, r["wp"].shape[-1]).astype(np.float32)
  np.save(tmp_path / "b.npy", b)
  assert main(["edit", "--mode", "padinv-keep-maps", "--generator", str(converted / "G"),
               "--result", str(encoded / "result.npz"), "--boundary", str(tmp_path / "b.npy"),
               "--frames", "2", "--max-step", "1", "--out", str(tmp_path / "k")]) == 0
  wp, maps, names = read_padinv_result(encoded / "result.npz")
  assert len(list((tmp_path / "k").glob("*.png"))) == 2 * len(names)
  for a in (-1.0, 1.0):   # --frames 2 --max-step 1: alphas (linspace(0, 2, 2) - 1) * 1
    want = render(wp + a * b[0], maps)
    for i, s in enumerate(names):
      _assert_png(tmp_path / "k" / f"{s}_a{a:g}.png", want[i], f"{s} alpha {a}")
  assert main(["edit", "--mode", "padinv-swap", "--generator", str(converted / "G"),
               "--result", str(encoded / "result.npz"), "--out", str(tmp_path / "s")]) == 2
  other = _other_result(encoded, tmp_path)
  assert main(["edit", "--mode", "padinv-swap", "--generator", str(converted / "G"),
               "--result", str(encoded / "result.npz"), "--swap-with", str(other),
               "--out", str(tmp_path / "s")]) == 0
  assert len(list((tmp_path / "s").glob("*.png"))) == len(names)
  _check_swap(tmp_path / "s", encoded, other, render)


def test_evaluate_padinv_protocol(encoded, images, tmp_path):
  import shutil
  gt = tmp_path / "gt"
  gt.mkdir()
  for p in images:
    shutil.copy(p, gt)
  out = tmp_path / "m.csv"
  assert main(["evaluate", str(encoded), str(gt), "--protocol", "padinv", "--lpips", "none",
               "--out", str(out)]) == 0
  lines = out.read_text().splitlines()
  assert lines[0] == "name,mse" and lines[-1].startswith("mean,") and len(lines) == 2 + len(images)
  # Each row: MSE on [-1, 1] of the reconstruction PNG, nearest-resized to the source size as
  # F.interpolate(mode="nearest") does (source index floor(i * in / out)), vs the source. The CSV
  # prints 6 decimals (rounding <= 5e-7); the means differ by float32 vs float64 order only.
  rows = {ln.split(",")[0]: float(ln.split(",")[1]) for ln in lines[1:-1]}
  for p in images:
    stem = p.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    src = image_io.load_rgb_uint8(p).astype(np.float64) / 255 * 2 - 1
    rec = _png(encoded / f"{stem}.png").astype(np.float64) / 255 * 2 - 1
    ys = np.arange(src.shape[0]) * rec.shape[0] // src.shape[0]
    xs = np.arange(src.shape[1]) * rec.shape[1] // src.shape[1]
    want = float(np.mean((rec[ys][:, xs] - src) ** 2))
    assert abs(rows[stem] - want) <= 1e-6 + 1e-6 * want, (stem, rows[stem], want)
  assert abs(float(lines[-1].split(",")[1]) - np.mean(list(rows.values()))) <= 1e-6
