"""End to end: jaxinv convert (PadInv generator, encoder, LPIPS) → invert --method padinv → edits."""

import json

import numpy as np
import pytest

from jaxinv.cli import main
from jaxinv.cli import padinv as padinv_cli
from tests.conftest import golden_root

GOLDEN = golden_root() / "padinv"
DATA = golden_root().parent / "data"


def _images():
  cfg = json.loads((GOLDEN / "config.json").read_text())
  return [str(DATA / im["file"]) for im in cfg["images"]]


def _ckpt_names():
  return list(json.loads((GOLDEN / "expected.json").read_text())["checkpoint_keys"])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  root = tmp_path_factory.mktemp("padinv_cli")
  names = _ckpt_names()
  gan = next(n for n in names if "gan" in n)
  enc = next(n for n in names if "encoder" in n)
  assert main(["convert", str(GOLDEN / gan), str(root / "G")]) == 0
  assert main(["convert", str(GOLDEN / enc), str(root / "E"), "--option",
               f"gan_checkpoint={GOLDEN / gan}"]) == 0
  return root


@pytest.fixture(scope="module")
def encoded(converted, tmp_path_factory):
  out = tmp_path_factory.mktemp("padinv_out")
  rc = main(["invert", "--method", "padinv", "--generator", str(converted / "G"), "--encoder",
             str(converted / "E"), "--images", *_images(), "--out", str(out), "--batch", "2"])
  assert rc == 0
  return out


def test_encoder_only_outputs(encoded):
  r = np.load(encoded / "result.npz")
  n = len(_images())
  assert r["wp"].shape[0] == n and r["loss"].shape == (0, n)
  slots = sorted(int(k[len("map_slot"):]) for k in r.files if k.startswith("map_slot"))
  assert slots == [0, 1, 3, 5, 7]
  assert len(list(encoded.glob("*.png"))) == n
  cfg = json.loads((encoded / "config.json").read_text())
  assert cfg["settings"]["steps"] == 0 and cfg["settings"]["method"] == "padinv"


def test_batch_does_not_change_results(converted, encoded, tmp_path):
  rc = main(["invert", "--method", "padinv", "--generator", str(converted / "G"), "--encoder",
             str(converted / "E"), "--images", *_images()[:1], "--out", str(tmp_path)])
  assert rc == 0
  a, b = np.load(encoded / "result.npz"), np.load(tmp_path / "result.npz")
  np.testing.assert_allclose(a["wp"][:1], b["wp"], atol=1e-5)
  np.testing.assert_allclose(a["map_slot0"][:1], b["map_slot0"], atol=1e-4)


def test_no_encoder_needs_steps(converted, tmp_path, capsys):
  rc = main(["invert", "--method", "padinv", "--generator", str(converted / "G"),
             "--images", *_images()[:1], "--out", str(tmp_path)])
  assert rc == 2 and "--steps" in capsys.readouterr().err


def test_edit_keep_maps_and_swap(converted, encoded, tmp_path):
  r = np.load(encoded / "result.npz")
  np.save(tmp_path / "b.npy", np.ones(r["wp"].shape[-1], np.float32))
  written = padinv_cli.edit_result(str(converted / "G"), str(encoded / "result.npz"),
                                   str(tmp_path / "edit"), boundary=str(tmp_path / "b.npy"),
                                   alphas=(0.0, 1.0), swap_with=str(encoded / "result.npz"))
  assert len(written) == 3 * len(r["wp"])
  # alpha 0 with the image's own maps is the reconstruction itself.
  from PIL import Image
  stem = str(r["names"][0])
  a0 = np.asarray(Image.open(tmp_path / "edit" / f"{stem}_a0.png"))
  rec = np.asarray(Image.open(encoded / f"{stem}.png"))
  assert np.abs(a0.astype(int) - rec.astype(int)).max() <= 1


def test_edit_cli_modes(converted, encoded, tmp_path):
  r = np.load(encoded / "result.npz")
  np.save(tmp_path / "b.npy", np.ones((1, r["wp"].shape[-1]), np.float32))
  assert main(["edit", "--mode", "padinv-keep-maps", "--generator", str(converted / "G"),
               "--result", str(encoded / "result.npz"), "--boundary", str(tmp_path / "b.npy"),
               "--frames", "2", "--max-step", "1", "--out", str(tmp_path / "k")]) == 0
  assert len(list((tmp_path / "k").glob("*.png"))) == 2 * len(r["wp"])
  assert main(["edit", "--mode", "padinv-swap", "--generator", str(converted / "G"),
               "--result", str(encoded / "result.npz"), "--out", str(tmp_path / "s")]) == 2
  assert main(["edit", "--mode", "padinv-swap", "--generator", str(converted / "G"),
               "--result", str(encoded / "result.npz"), "--swap-with",
               str(encoded / "result.npz"), "--out", str(tmp_path / "s")]) == 0
  assert len(list((tmp_path / "s").glob("*.png"))) == len(r["wp"])


def test_evaluate_padinv_protocol(encoded, tmp_path):
  import shutil
  gt = tmp_path / "gt"
  gt.mkdir()
  for p in _images():
    shutil.copy(p, gt)
  out = tmp_path / "m.csv"
  assert main(["evaluate", str(encoded), str(gt), "--protocol", "padinv", "--lpips", "none",
               "--out", str(out)]) == 0
  lines = out.read_text().splitlines()
  assert lines[0] == "name,mse" and lines[-1].startswith("mean,") and len(lines) == 2 + len(
      _images())
