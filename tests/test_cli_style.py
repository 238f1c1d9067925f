"""CLI on style generators: convert → generate (--space / --truncation / --noise) → invert."""

import json

import numpy as np
import pytest

from jaxinv.cli import main
from tests.conftest import assert_close, golden_root

ROS = golden_root() / "stylegan2_rosinality"
MGP = golden_root() / "mganprior"
CHURCH = golden_root().parent / "data" / "mganprior_examples" / "gan_inversion" / "church"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli_style")
  exp = json.loads((ROS / "expected.json").read_text())
  assert main(["convert", str(ROS / exp["checkpoint"]["file"]), str(root / "G")]) == 0
  return root


def test_generate_spaces(converted, tmp_path):
  f = np.load(ROS / "fixtures.npz")
  np.save(tmp_path / "z.npy", f["z"])
  np.save(tmp_path / "wp.npy", f["wplus"])
  G = str(converted / "G")
  for args, key in ((["--latents", str(tmp_path / "z.npy")], "img_trunc1"),
                    (["--latents", str(tmp_path / "z.npy"), "--truncation", "0.7"], "img_trunc07"),
                    (["--latents", str(tmp_path / "wp.npy"), "--space", "wp"], "img_wplus")):
    assert main(["generate", G, "--out", str(tmp_path / "o.npy"), "--overwrite"] + args) == 0
    assert_close(np.load(tmp_path / "o.npy"), f[key], atol=1e-4 * max(1, np.ptp(f[key])), what=key)
  # zero / random noise change the image; random is reproducible from --seed
  outs = {}
  for mode, seed in (("zero", "0"), ("random", "1"), ("random", "1")):
    assert main(["generate", G, "--latents", str(tmp_path / "z.npy"), "--noise", mode,
                 "--seed", seed, "--out", str(tmp_path / "n.npy"), "--overwrite"]) == 0
    outs.setdefault(mode, []).append(np.load(tmp_path / "n.npy"))
  assert np.abs(outs["zero"][0] - f["img_trunc1"]).max() > 1e-3
  assert_close(outs["random"][0], outs["random"][1], what="random noise, same seed")


def test_generate_rejects_wrong_latent_shape(converted, tmp_path, capsys):
  np.save(tmp_path / "bad.npy", np.zeros((2, 7), np.float32))
  rc = main(["generate", str(converted / "G"), "--latents", str(tmp_path / "bad.npy"),
             "--out", str(tmp_path / "o.npy")])
  assert rc == 2 and "needs [B, 64]" in capsys.readouterr().err


@pytest.mark.parametrize("space,extra,shapes", [
    ("wp", [], {"wp": (8, 64)}),
    ("multi", ["--codes", "2", "--layer", "4"], {"codes": (2, 8, 64), "alpha": (2, 64), "wp": (8, 64)})])
def test_invert_style_spaces(converted, tmp_path, space, extra, shapes):
  out = tmp_path / "out"
  rc = main(["invert", "--generator", str(converted / "G"), "--images", str(CHURCH),
             "--space", space, "--loss", "mse", "--optimizer", "adam", "--lr", "0.05",
             "--steps", "4", "--chunk", "2", "--batch", "4", "--out", str(out)] + extra)
  assert rc == 0
  n = len([p for p in CHURCH.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")])
  with np.load(out / "result.npz") as r:
    for k, s in shapes.items():
      assert r[k].shape == (n,) + s, k
    assert r["loss"].shape == (4, n) and np.all(r["loss"][-1] < r["loss"][0])
  assert len(list(out.glob("*.png"))) == n


def test_invert_bad_layer_is_a_user_error(converted, tmp_path, capsys):
  rc = main(["invert", "--generator", str(converted / "G"), "--images", str(CHURCH),
             "--space", "multi", "--layer", "99", "--loss", "mse", "--steps", "1",
             "--out", str(tmp_path / "o")])
  assert rc == 2 and "receives" in capsys.readouterr().err


def test_convert_discriminator_part(tmp_path):
  from jaxinv.models import registry
  exp = json.loads((ROS / "expected.json").read_text())
  dest = tmp_path / "D"
  assert main(["convert", str(ROS / exp["checkpoint"]["file"]), str(dest), "--option", "part=d"]) == 0
  d = registry.load_model(dest, expect_family="stylegan2-discriminator")
  assert d.config.resolution == exp["config"]["size"]


@pytest.mark.parametrize("space,extra,keys", [
    ("z", [], ("z",)),
    ("multi", ["--codes", "2", "--layer", "4"], ("codes", "alpha", "wp"))])
def test_invert_style_result_independent_of_position_and_batch(converted, tmp_path, space, extra, keys):
  from tests.test_cli_core import assert_same_image_result, images_alone_and_in_a_list
  full, alone, name = images_alone_and_in_a_list(tmp_path)
  common = ["invert", "--generator", str(converted / "G"), "--space", space, "--loss", "mse",
            "--optimizer", "adam", "--lr", "0.05", "--steps", "3"] + extra
  assert main(common + ["--images", str(full), "--batch", "4", "--out", str(tmp_path / "a")]) == 0
  assert main(common + ["--images", str(alone), "--batch", "1", "--out", str(tmp_path / "c")]) == 0
  assert_same_image_result(tmp_path / "a", tmp_path / "c", name, keys)


def test_invert_style_with_a_task(converted, tmp_path):
  """--task on a style generator: the loss compares the degraded rendering with the observation
  (step 0 of w+ = G(w_avg) — checked against the task computed here) and the task's pictures
  are written."""
  import jax.numpy as jnp
  from jaxinv import tasks
  from jaxinv.io import images as image_io
  from jaxinv.models.registry import load_model
  out = tmp_path / "out"
  rc = main(["invert", "--generator", str(converted / "G"), "--images", str(CHURCH),
             "--space", "wp", "--task", "super-resolve", "--factor", "4", "--loss", "mse",
             "--optimizer", "adam", "--lr", "0.05", "--steps", "3", "--batch", "4", "--out", str(out)])
  assert rc == 0
  m = load_model(str(converted / "G"))
  paths = image_io.list_images([str(CHURCH)])
  gt = image_io.load_images(paths, m.config.resolution)
  task = tasks.make_task("super-resolve", m.config.resolution, factor=4)
  obs = np.asarray(task.observe(jnp.asarray(gt)))
  w_avg = m.module.apply({"params": m.params}, method=m.module.average_w)
  wp = jnp.broadcast_to(w_avg, (1, m.config.num_ws, m.config.w_dim))
  img = m.module.apply({"params": m.params}, None, wp, 0, None, "const", method=m.module.synthesis)
  want = np.mean((np.asarray(task.degrade(img[0]))[None] - obs) ** 2, axis=(1, 2, 3))
  with np.load(out / "result.npz") as r:
    # float32 sums of ~3k terms of a 32 px MSE: relative noise ~1e-6; 1e-5 leaves 10x margin.
    np.testing.assert_allclose(r["loss"][0], want, rtol=1e-5)
    assert np.all(r["loss"][-1] < r["loss"][0])
  for p in paths:
    stem = image_io.image_stem(p)
    for suffix in ("_observation", "_restored", "_grid"):
      assert (out / f"{stem}{suffix}.png").is_file(), suffix
  cfg = json.loads((out / "config.json").read_text())["settings"]
  assert cfg["task"] == "super-resolve" and cfg["method_settings"]["space"]["kind"] == "wp"
  assert "schedule" not in cfg     # DGP's flags are not this run's
