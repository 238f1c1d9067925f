"""``jaxinv invert --init encoder --encoder E4E_DEST`` on a StyleGAN2 generator (fixture e4e_pti:
the e4e checkpoint and PTI's generator from the NVIDIA pickle, both 8 w+ rows of 32):
w+ and single-code multi-code optimisation start at the encoder's codes, so the loss before
the first update is the loss of the generator's rendering of the official e4e codes; more
codes start spread around them; wrong encoders and spaces are one-line errors.

Tolerance: the loss is compared with the MSE of the generator's render of the fixture's codes
at 1e-4 relative — the fixture's bound for losses; the codes themselves are within the e4e
forward bound 1e-4 · max(1, max|codes|) (thread floor 2e-6), which moves an MSE of ~1 by far
less (first order: 2·|G - x|·|dG/dw|·δw).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.cli import main
from jaxinv.inversion import style_spaces
from jaxinv.io import images as image_io
from jaxinv.io.checkpoints import save_model
from jaxinv.models import stylegan2
from jaxinv.models.registry import load_model
from tests.conftest import assert_close, golden_root
from tests.golden import _pti_common as C

LOSS_RTOL = 1e-4


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  g = golden(C.FOLDER)
  d = tmp_path_factory.mktemp("encinit")
  gen, enc = str(d / "G"), str(d / "e4e")
  assert main(["convert", str(g.path(g.expected["pti"]["build"]["pickle"]["file"])), gen]) == 0
  e4e = g.expected["e4e"]
  assert main(["convert", str(g.path(e4e["checkpoint"]["file"])), enc, "--option",
               f"input_size={e4e['config']['input_size']}"]) == 0
  paths = [str(golden_root().parent.parent / im["path"]) for im in e4e["images"]]
  return g, gen, enc, paths


def _expected_loss(g, gen, paths):
  """MSE(G(official e4e codes), x) per image, x loaded as the style path loads targets."""
  m = load_model(gen)
  codes = g.npz("fixtures.npz")["e4e.codes"]
  x = image_io.load_images(paths, m.config.resolution)
  img = m.module.apply({"params": m.params}, None, jnp.asarray(codes), noise="const",
                       method=m.module.synthesis)
  return np.mean(np.square(np.asarray(img) - x), axis=(1, 2, 3))


@pytest.mark.parametrize("space", ["wp", "multi1"])
def test_step0_loss_is_the_encoded_reconstruction(setup, tmp_path, space):
  g, gen, enc, paths = setup
  layer = load_model(gen).config.num_layers // 2          # any inner composing layer
  space = ["--space", "wp"] if space == "wp" else \
      ["--space", "multi", "--codes", "1", "--layer", str(layer)]
  out = str(tmp_path / "out")
  assert main(["invert", "--generator", gen, *space, "--init", "encoder", "--encoder", enc,
               "--images", *paths, "--out", out, "--loss", "mse", "--optimizer", "adam",
               "--lr", "0.01", "--steps", "1", "--batch", "2"]) == 0
  with np.load(os.path.join(out, "result.npz")) as r:
    loss0 = r["loss"][0]
  assert_close(loss0, _expected_loss(g, gen, paths), rtol=LOSS_RTOL, what="step-0 loss")


def test_multi_codes_start_around_the_encoded_codes(setup):
  g, gen, enc, paths = setup
  m = load_model(gen)
  codes = g.npz("fixtures.npz")["e4e.codes"][:2]
  layer = m.config.num_layers // 2
  space = style_spaces.StyleSpace("multi", layer=layer, num_codes=3, code_space="wp")
  v = style_spaces.init_from_codes(space, m.module, m.params, jax.random.PRNGKey(0), codes)
  np.testing.assert_array_equal(v["wp"], codes)                     # the learned suffix
  off = np.asarray(v["codes"]) - codes[:, None]                     # [B, N, L, D]
  assert np.abs(off - off[:, :, :1]).max() < 1e-6                  # one w offset per code
  assert min(np.abs(off[:, i] - off[:, j]).max() for i in range(3) for j in range(i)) > 1e-3
  one = style_spaces.StyleSpace("multi", layer=layer, num_codes=1, code_space="wp")
  v1 = style_spaces.init_from_codes(one, m.module, m.params, jax.random.PRNGKey(0), codes)
  np.testing.assert_array_equal(v1["codes"][:, 0], codes)


def _small_generator(path, resolution):
  cfg = stylegan2.StyleGAN2Config(resolution=resolution, z_dim=32, w_dim=32,
                                  channels=(16,) * (int(np.log2(resolution)) - 1),
                                  mapping_layers=2, mapping_hidden=32)
  module = stylegan2.StyleGAN2Generator(cfg)
  params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 32)))["params"]
  save_model(path, "stylegan2", cfg, params)
  return path


@pytest.mark.parametrize("case", ["other_size", "space_z", "code_space_w", "no_encoder",
                                  "not_an_encoder"])
def test_refusals(setup, tmp_path, capsys, case):
  g, gen, enc, paths = setup
  args = ["invert", "--generator", gen, "--space", "wp", "--init", "encoder", "--encoder", enc,
          "--images", paths[0], "--out", str(tmp_path / "out"), "--steps", "1"]
  if case == "other_size":        # 16 px: 6 w+ rows, not the encoder's 8
    args[2] = _small_generator(str(tmp_path / "G16"), 16)
  elif case == "space_z":
    args[4] = "z"
  elif case == "code_space_w":
    args[4:5] = ["multi", "--code-space", "w", "--layer",
                 str(load_model(gen).config.num_layers // 2)]
  elif case == "no_encoder":
    i = args.index("--encoder")
    del args[i:i + 2]
  elif case == "not_an_encoder":
    args[args.index("--encoder") + 1] = gen
  assert main(args) == 2
  err = [l for l in capsys.readouterr().err.splitlines() if ": warning: " not in l]  # resizes
  assert len(err) == 1 and "error" in err[0] and "encoder" in err[0], err
  assert not os.path.exists(tmp_path / "out")
