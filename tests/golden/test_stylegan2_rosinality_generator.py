"""rosinality StyleGAN2 Generator (g_ema) against stylegan2_rosinality/fixtures.npz."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.converters import detect, read_source, rosinality_stylegan2
from jaxinv.converters.table import ConversionError
from jaxinv.inversion import style_spaces
from jaxinv.models import stylegan2
from tests.conftest import MISSING_FIXTURE, assert_close
from tests.golden._style_common import image_atol, nchw

# README "Verification done": an independent JAX port matched the mapping and every generator variant to
# 1.1e-6 relative; suggested port tolerance rtol 1e-5. Latents (mapping outputs ~1) take atol = rtol =
# 1e-5, images and intermediates image_atol (1e-4 of the output range, _style_common).


@pytest.fixture(scope="module")
def case(golden):
  g = golden("stylegan2_rosinality")
  ck = read_source(g.path(g.expected["checkpoint"]["file"]))
  conv = rosinality_stylegan2.convert(ck)
  m = stylegan2.StyleGAN2Generator(conv.config)
  v = {"params": conv.params}
  syn_noise = jax.jit(lambda wp, noise: m.apply(v, None, wp, noise=noise, method=m.synthesis))
  syn_const = jax.jit(lambda wp: m.apply(v, None, wp, method=m.synthesis))
  fns = {
      "mapping": jax.jit(lambda z: m.apply(v, z, method=m.mapping)),
      "truncate": jax.jit(lambda w, psi: m.apply(v, w, psi, method=m.truncate), static_argnums=1),
      "synthesis": lambda wp, noise=None: syn_const(wp) if noise is None else syn_noise(wp, noise),
      "intermediates": jax.jit(lambda wp: m.apply(v, wp, method=m.intermediates)),
  }
  return g, ck, conv, m, v, fns, g.npz("fixtures.npz")


def test_detect_config_and_keys(case):
  g, ck, conv, *_ = case
  e = g.expected
  assert detect(ck) == rosinality_stylegan2.NAME
  assert sorted(ck) == sorted(e["checkpoint"]["top_level_keys"])
  c, cfg = e["config"], conv.config
  assert (cfg.resolution, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_mul) == (
      c["size"], c["style_dim"], c["n_mlp"], c["lr_mlp"])
  assert cfg.channels == tuple(c["channels"][str(4 * 2 ** b)] for b in range(cfg.num_blocks))
  assert cfg.num_ws == e["n_latent"] and cfg.num_convs == e["num_layers"]
  assert {k: list(v.shape) for k, v in ck["g_ema"].items()} == e["checkpoint"]["g_ema"]
  # rosinality defaults: no truncation, stored noise, w_avg from the file's latent_avg
  assert conv.extras["truncation_psi"] == 1.0 and conv.extras["w_avg_source"] == "latent_avg"
  assert_close(conv.params["truncation"]["w_avg"], case[-1]["latent_avg"], what="latent_avg")
  for i in range(cfg.num_convs):
    assert_close(conv.params["synthesis"][f"layer{i}"]["noise"], case[-1][f"noise_{i}"][0, 0],
                 what=f"noise_{i}")


def test_mapping(case):
  *_, fns, f = case
  assert_close(fns["mapping"](f["z"]), f["w"], atol=1e-5, rtol=1e-5, what="w")


@pytest.mark.parametrize("psi_key,latent_key,image_key", [
    (None, "latent_trunc1", "img_trunc1"), ("0.7", "latent_trunc07", "img_trunc07")])
def test_from_z_with_truncation(case, psi_key, latent_key, image_key):
  *_, fns, f = case
  psi = 1.0 if psi_key is None else float(psi_key)
  wp = fns["truncate"](jnp.asarray(f["w"]), psi)
  assert_close(wp, f[latent_key], atol=1e-5, rtol=1e-5, what=latent_key)
  img = fns["synthesis"](wp)
  assert_close(nchw(img), f[image_key], atol=image_atol(f[image_key]), what=image_key)


def test_wplus_and_w_input(case):
  *_, fns, f = case
  for wp, key in ((f["wplus"], "img_wplus"), (fns["truncate"](jnp.asarray(f["wplus"]), 0.7),
                                             "img_wplus_trunc07"),
                  (fns["truncate"](jnp.asarray(f["w"]), 1.0), "img_w_input")):
    assert_close(nchw(fns["synthesis"](wp)), f[key], atol=image_atol(f[key]), what=key)


def test_style_mixing(case):
  g, ck, conv, m, v, fns, f = case
  idx = g.expected["config"]["inject_index"]
  w1, w2 = fns["mapping"](f["z"]), fns["mapping"](f["z2"])
  wp = style_spaces.mix_styles(w1, w2, idx, conv.config.num_ws)
  assert_close(wp, f["latent_mix"], atol=1e-5, rtol=1e-5, what="latent_mix")
  assert_close(nchw(fns["synthesis"](wp)), f["img_mix"], atol=image_atol(f["img_mix"]),
               what="img_mix")


def test_explicit_noise(case):
  g, ck, conv, m, v, fns, f = case
  noise = [f[f"explicit_noise_{i}"] for i in range(conv.config.num_convs)]
  wp = fns["truncate"](jnp.asarray(f["w"]), 1.0)
  img = fns["synthesis"](wp, noise)
  assert_close(nchw(img), f["img_explicit_noise"], atol=image_atol(f["img_explicit_noise"]),
               what="img_explicit_noise")


def test_intermediates(case):
  g, ck, conv, m, v, fns, f = case
  wp = fns["truncate"](jnp.asarray(f["w"][:1]), 1.0)
  inter = fns["intermediates"](wp)
  names = {"const": "early_layer", "conv1": "layer0", "to_rgb1": "skip0"}
  for j in range(conv.config.num_convs - 1):
    names[f"convs.{j}"] = f"layer{j + 1}"
  for j in range(conv.config.num_blocks - 1):
    names[f"to_rgbs.{j}"] = f"skip{j + 1}"
  for key in g.expected["intermediates_order"]:
    base, is_style = (key[:-len(".style")], True) if key.endswith(".style") else (key, False)
    ours = names[base]
    if is_style:
      ours = "style." + ours.replace("skip", "output")
    a = inter[ours]
    assert_close(nchw(a), f[f"inter_{key}"], atol=image_atol(f[f"inter_{key}"]), what=key)


def test_reads_g_ema_not_g(case):
  g, ck, conv, m, v, fns, f = case
  other = rosinality_stylegan2.convert(ck, part="g")
  img = jax.jit(lambda p, z: m.apply({"params": p}, z))(other.params, f["z"])
  assert_close(nchw(img), f["img_g_key_trunc1"], atol=image_atol(f["img_g_key_trunc1"]),
               what="g (non-EMA) image")
  assert float(np.abs(nchw(img) - f["img_trunc1"]).max()) > 1e-2


def test_training_checkpoint_layout(case):
  """A train.py checkpoint ({g, d, g_ema, g_optim, d_optim, args}, no latent_avg) converts;
  w_avg is then computed from the mapping."""
  g, ck, conv, *_ = case
  from jaxinv.io.torch_pickle import SafeNamespace
  train = {"g": ck["g"], "d": ck["d"], "g_ema": ck["g_ema"], "args": SafeNamespace(size=32),
           "g_optim": {"state": {}, "param_groups": []}, "d_optim": {"state": {}}}
  assert detect(train) == rosinality_stylegan2.NAME
  c = rosinality_stylegan2.convert(train)
  assert "mapping(z)" in c.extras["w_avg_source"]
  assert np.isfinite(c.params["truncation"]["w_avg"]).all()
  with pytest.raises(ConversionError, match="part"):
    rosinality_stylegan2.convert(train, part="optim")


def _stock_names():
  import json
  from tests.conftest import golden_root
  p = golden_root() / "stylegan2_rosinality" / "stock_key_shapes.json"
  return sorted(json.loads(p.read_text())) if p.is_file() else [MISSING_FIXTURE]


@pytest.mark.parametrize("name", _stock_names())
def test_stock_key_shapes(golden, name):
  """The converter accepts the unmodified repo's key sets and infers the stock channel table."""
  import json
  g = golden("stylegan2_rosinality")
  shapes = json.loads(g.path("stock_key_shapes.json").read_text())[name]
  sd = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
  size = int(name.split("_")[1][len("size"):])
  cm = int(name.split("_cm")[1])
  if name.startswith("G"):
    c = rosinality_stylegan2.convert({"g_ema": sd, "latent_avg": np.zeros(512, np.float32)})
    assert c.config.channels == stylegan2.rosinality_channels(size, cm)
  else:
    c = rosinality_stylegan2.convert({"g_ema": {"input.input": None}, "d": sd}, part="d")
    assert c.config.channels == stylegan2.rosinality_channels(size, cm)
