"""genforce StyleGAN (v1) generator against mganprior/stylegan.npz (README §3a)."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from jaxinv.converters import detect, genforce_stylegan, read_source
from jaxinv.models import stylegan
from tests.conftest import assert_close
from tests.golden._style_common import image_atol, jitted_methods, nchw


@pytest.fixture(scope="module")
def case(golden):
  g = golden("mganprior")
  e = g.expected["stylegan"]
  sd = read_source(g.path(e["checkpoint"]))
  conv = genforce_stylegan.convert(sd)
  m = stylegan.StyleGANGenerator(conv.config)
  v = {"params": conv.params}
  fns = jitted_methods(m, v)
  return g, e, sd, conv, m, v, fns, g.npz("stylegan.npz")


def test_detect_and_config(case):
  g, e, sd, conv, *_ = case
  assert detect(sd) == genforce_stylegan.NAME
  cfg, kw = conv.config, e["constructor_kwargs"]
  assert (cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.image_channels) == (
      kw["resolution"], kw["z_space_dim"], kw["w_space_dim"], kw["image_channels"])
  assert cfg.fused_scale == kw["fused_scale"]
  assert [cfg.channels_at(4 * 2 ** b) for b in range(cfg.num_blocks)] == [
      min(kw["fmaps_base"] // (4 * 2 ** b), kw["fmaps_max"]) for b in range(cfg.num_blocks)]
  assert cfg.num_ws == e["num_layers"]
  ws = e["wrapper_settings"]
  assert conv.extras == {k: ws[k] for k in stylegan.MODEL_SETTINGS}
  assert {k for k, *_ in e["checkpoint_keys"]} == set(sd)


def test_truncation_override(case):
  _, _, sd, *_ = case
  c = genforce_stylegan.convert(sd, truncation_psi=0.5, truncation_layers=4)
  assert c.extras["truncation_psi"] == 0.5 and c.extras["truncation_layers"] == 4


def test_mapping_and_truncation(case):
  g, e, sd, conv, m, v, fns, f = case
  ws = e["wrapper_settings"]
  w = fns["mapping"](f["z"])
  assert_close(w, f["w"], atol=1e-4, what="w")
  wp = fns["truncate"](jnp.asarray(f["w"]), ws["truncation_psi"], ws["truncation_layers"])
  assert_close(wp, f["wp"], atol=1e-5, what="wp (truncated)")
  coefs = stylegan.truncation_coefs(conv.config.num_ws, ws["truncation_psi"], ws["truncation_layers"])
  assert_close(coefs[None, :, None], f["truncation_coefs"], what="truncation coefs")
  wp1 = fns["truncate"](jnp.asarray(f["w"]), 1.0, 0)
  assert_close(wp1, f["wp_no_truncation"], what="wp (no truncation)")


@pytest.mark.parametrize("wp_key,image_key", [("wp", "image_from_z"),
                                              ("wp_no_truncation", "image_from_w_no_truncation"),
                                              ("wplus_input", "image_from_wplus")])
def test_images(case, wp_key, image_key):
  *_, fns, f = case
  img = fns["synthesis"](f[wp_key])
  assert_close(nchw(img), f[image_key], atol=image_atol(f[image_key]), what=image_key)


def test_end_to_end_from_z(case):
  g, e, sd, conv, m, v, fns, f = case
  ws = e["wrapper_settings"]
  img = jax.jit(lambda z: m.apply(v, z, ws["truncation_psi"], ws["truncation_layers"]))(f["z"])
  assert_close(nchw(img), f["image_from_z"], atol=image_atol(f["image_from_z"]), what="G(z)")


def test_styles(case):
  *_, fns, f = case
  for src, wp_key in (("z", "wp"), ("wplus", "wplus_input")):
    styles = fns["styles"](f[wp_key])
    for i, s in enumerate(styles):
      key = f"style_from_{src}_{i:02d}"
      assert_close(s, f[key], atol=1e-4, what=key)


def test_every_synthesis_child(case):
  g, e, *_, fns, f = case
  inter = fns["intermediates"](f["wplus_input"][:1])
  names = [n for n, _ in e["synthesis_intermediates_first_sample"]]
  assert len(names) == len(inter)
  for key in names:
    child = key.split("_", 2)[2]
    assert_close(nchw(inter[child]), f[key], atol=image_atol(f[key]), what=key)


def test_layer_sequence_split(case):
  """prefix(ℓ) then suffix(ℓ) equals the whole synthesis for every ℓ."""
  g, e, sd, conv, m, v, fns, f = case
  cfg = conv.config
  wp = jnp.asarray(f["wplus_input"][:1])
  full = fns["synthesis"](wp)
  k = cfg.num_layers // 2
  x = jax.jit(lambda wp: m.apply(v, None, wp, 0, k, method=m.synthesis))(wp)
  assert x.shape[1:] == cfg.feature_shapes()[k]
  rest = jax.jit(lambda x, wp: m.apply(v, x, wp, k, None, method=m.synthesis))(x, wp)
  assert_close(rest, full, atol=image_atol(full), what=f"split at {k}")
  with pytest.raises(stylegan.LayerIndexError, match="receives"):
    cfg.check_layer(cfg.num_layers + 1)


def test_noise_modes(case):
  g, e, sd, conv, m, v, fns, f = case
  cfg = conv.config
  wp = jnp.asarray(f["wplus_input"][:1])
  const = fns["synthesis"](wp)
  stop = 4
  prefix = jax.jit(lambda wp, noise: m.apply(v, None, wp, 0, stop, noise, method=m.synthesis),
                   static_argnums=1)
  rand = jax.jit(lambda wp, key: m.apply(v, None, wp, 0, stop, "random", method=m.synthesis,
                                         rngs={"noise": key}))
  explicit = jax.jit(lambda wp, noise: m.apply(v, None, wp, 0, stop, noise, method=m.synthesis))
  stored = [conv.params["synthesis"][f"layer{i}"]["noise"] for i in range(cfg.num_ws)]
  ref = prefix(wp, "const")
  # The same arithmetic compiled twice (noise as an argument vs as a constant): XLA may fuse or order
  # it differently, a few float32 ulp of the activations' range (ulp(16) = 1.9e-6), so 1e-6 x range.
  assert_close(explicit(wp, stored), ref, atol=image_atol(ref, 1e-6), what="explicit = stored")
  assert float(jnp.abs(prefix(wp, "zero") - prefix(wp, "const")).max()) > 1e-3
  a = rand(wp, jax.random.key(3))
  assert_close(rand(wp, jax.random.key(3)), a, what="random noise, same key")
  assert float(jnp.abs(rand(wp, jax.random.key(4)) - a).max()) > 1e-3
  assert const.shape[-1] == cfg.image_channels


def test_idinvert_options_shapes(case):
  """``repeat_w=False`` and ``final_tanh`` (used by IDInvert) build and behave."""
  g, e, sd, conv, *_ = case
  cfg = dataclasses.replace(conv.config, resolution=16, repeat_w=False, final_tanh=True)
  m = stylegan.StyleGANGenerator(cfg)
  v = jax.jit(m.init)(jax.random.key(0), jnp.zeros((2, cfg.z_dim)))
  assert v["params"]["mapping"][f"dense{cfg.mapping_layers - 1}"]["weight"].shape[1] == \
      cfg.num_ws * cfg.w_dim
  img = jax.jit(m.apply)(v, jnp.ones((2, cfg.z_dim)))
  assert img.shape == (2, 16, 16, cfg.image_channels) and float(jnp.abs(img).max()) <= 1.0
