"""The encoder shipped with ``demo-digits``: its record, encoder-only / hybrid inversion on z,
mGANprior's ``--init encoder`` (library and CLI)."""

import json
import os

import jax
import numpy as np
import pytest

from jaxinv import demo
from jaxinv.inversion import spaces
from jaxinv.inversion.methods import idinvert
from jaxinv.models.registry import BUNDLED, load_model

ASSET = os.path.dirname(BUNDLED["demo-digits-encoder"])


@pytest.fixture(scope="module")
def models():
  gen = load_model("demo-digits", expect_family="pggan")
  enc = load_model("demo-digits-encoder", expect_family="idinvert-encoder")
  return gen, enc, idinvert.models_from(gen, enc)


def _psnr(pred, gt):
  from jaxinv import metrics
  from jaxinv.io.images import to_uint8
  return float(np.mean([metrics.psnr(to_uint8(a), to_uint8(b), 255.0)
                        for a, b in zip(np.asarray(pred), np.asarray(gt))]))


def test_record_and_size(models):
  _, enc, m = models
  assert m.code_shape == (1, 512) and enc.config.resolution == 32
  rec = json.load(open(os.path.join(ASSET, "encoder_record.json")))
  assert rec["train_config"]["feat_weight"] == 0.0 and rec["perceptual"] is None
  assert rec["iterations"] == rec["demo_config"]["iters"] and rec["seconds"] > 0
  assert "train_idx" in rec["data"] and rec["final_losses_mean_last"]["e_pix"] > 0
  size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(BUNDLED["demo-digits-encoder"])
             for f in fs)
  assert size < 5.5e6, size


def test_encoder_beats_a_random_code_on_held_out_digits(models):
  gen, _, m = models
  x = demo.load_test_digits(32, 8)["images"]
  enc_only = idinvert.render(m, idinvert.encode(m, x))
  rand = idinvert.render(m, jax.random.normal(jax.random.key(0), (8, 1, 512)))
  # Measured: G(E(x)) 22.4 dB on these 8 held-out digits, G(random z) 10.0 dB.
  assert _psnr(enc_only, x) > _psnr(rand, x) + 8.0


def test_hybrid_zero_steps_is_encoder_and_init_is_honoured(models):
  _, _, m = models
  x = demo.load_test_digits(32, 2)["images"]
  s = idinvert.IDInvertSettings(steps=3, learning_rate=0.05, feat_weight=0.0, reg_weight=0.01)
  r = idinvert.invert(m, x, s, progress=False)
  np.testing.assert_allclose(r.init_wp, idinvert.encode(m, x), rtol=1e-6, atol=1e-6)
  assert set(r.aux) == {"loss_pix", "loss_reg"} and r.loss.shape == (3, 2)
  z0 = np.zeros((2, 1, 512), np.float32)
  r0 = idinvert.invert(m, x, idinvert.IDInvertSettings(steps=0, feat_weight=0.0), init=z0,
                       progress=False)
  np.testing.assert_array_equal(r0.wp, z0)
  with pytest.raises(ValueError, match="perceptual"):
    idinvert.invert(m, x, idinvert.IDInvertSettings(steps=1, feat_weight=1e-3), progress=False)


def test_init_from_code_starts_at_the_encoded_image(models):
  gen, _, m = models
  x = demo.load_test_digits(32, 2)["images"]
  code = np.asarray(idinvert.encode(m, x))[:, 0]
  space = spaces.MultiCode(gen.module, 4, 3)
  exact = space.init_from_code(jax.random.key(0), code, noise_std=0.0)
  start = jax.vmap(space.render, in_axes=(0, None))(exact, gen.params)
  np.testing.assert_allclose(start, idinvert.render(m, code[:, None]), atol=2e-5)
  noisy = space.init_from_code(jax.random.key(0), code, noise_std=0.1)
  d = np.asarray(noisy["z"]) - code[:, None]
  assert 0.08 < d.std() < 0.12 and not np.allclose(d[:, 0], d[:, 1])
  assert np.all(np.asarray(noisy["alpha"]) == spaces.ENCODER_INIT_ALPHA)
  one = spaces.MultiCode(gen.module, 4, 1).init_from_code(jax.random.key(0), code, 0.1)
  np.testing.assert_array_equal(one["z"][:, 0], code)


def test_cli_invert_init_encoder(tmp_path, capsys):
  from jaxinv.cli import main
  from jaxinv.io import images as image_io
  x = demo.load_test_digits(32, 2)["images"]
  paths = []
  for i, img in enumerate(x):
    paths.append(str(tmp_path / f"d{i}.png"))
    image_io.save_png(paths[-1], img)
  common = ["invert", "--generator", "demo-digits", "--images", *paths, "--codes", "2",
            "--layer", "4", "--loss", "mse", "--optimizer", "adam", "--lr", "0.05"]
  assert main(common + ["--steps", "0", "--init", "encoder", "--encoder", "demo-digits-encoder",
                        "--init-noise", "0", "--out", str(tmp_path / "e")]) == 0
  r = np.load(tmp_path / "e" / "result.npz")
  assert r["z"].shape == (2, 2, 512)
  np.testing.assert_allclose(r["z"][:, 0], r["z"][:, 1])
  np.testing.assert_array_equal(r["alpha"], 1.0)
  assert main(common + ["--steps", "1", "--init", "encoder", "--out", str(tmp_path / "x")]) == 2
  assert "--encoder" in capsys.readouterr().err
