"""genforce StyleGAN2 generator against mganprior/stylegan2.npz (README §3b)."""

import jax
import jax.numpy as jnp
import pytest

from jaxinv import converters
from jaxinv.converters import detect, genforce_stylegan2, read_source
from jaxinv.models import registry, stylegan2
from tests.conftest import assert_close
from tests.golden._style_common import image_atol, jitted_methods, nchw


@pytest.fixture(scope="module")
def case(golden):
  g = golden("mganprior")
  e = g.expected["stylegan2"]
  sd = read_source(g.path(e["checkpoint"]))
  conv = genforce_stylegan2.convert(sd)
  m = stylegan2.StyleGAN2Generator(conv.config)
  v = {"params": conv.params}
  fns = jitted_methods(m, v)
  return g, e, sd, conv, m, v, fns, g.npz("stylegan2.npz")


def test_detect_and_config(case):
  g, e, sd, conv, *_ = case
  assert detect(sd) == genforce_stylegan2.NAME
  cfg, kw = conv.config, e["constructor_kwargs"]
  assert kw["architecture_type"] == "skip"
  assert (cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.image_channels) == (
      kw["resolution"], kw["z_space_dim"], kw["w_space_dim"], kw["image_channels"])
  assert cfg.channels == stylegan2.fmaps_channels(kw["resolution"], kw["fmaps_base"], kw["fmaps_max"])
  assert cfg.num_ws == e["num_layers"]
  ws = e["wrapper_settings"]
  assert conv.extras == {k: ws[k] for k in stylegan2.MODEL_SETTINGS}
  assert {k for k, *_ in e["checkpoint_keys"]} == set(sd)


def test_mapping_and_truncation(case):
  g, e, sd, conv, m, v, fns, f = case
  ws = e["wrapper_settings"]
  assert_close(fns["mapping"](f["z"]), f["w"], atol=1e-4, what="w")
  wp = fns["truncate"](jnp.asarray(f["w"]), ws["truncation_psi"], ws["truncation_layers"])
  assert_close(wp, f["wp"], atol=1e-5, what="wp (truncated)")
  coefs = stylegan2.truncation_coefs(conv.config.num_ws, ws["truncation_psi"], ws["truncation_layers"])
  assert_close(coefs[None, :, None], f["truncation_coefs"], what="truncation coefs")
  assert_close(fns["truncate"](jnp.asarray(f["w"]), 1.0, None), f["wp_no_truncation"],
               what="wp (no truncation)")


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
    n = len([k for k in f.files if k.startswith(f"style_from_{src}_")])
    assert len(styles) == n
    for i, s in enumerate(styles):
      key = f"style_from_{src}_{i:02d}"
      assert_close(s, f[key], atol=1e-4, what=key)


def test_every_synthesis_unit(case):
  g, e, sd, conv, *_, fns, f = case
  inter = fns["intermediates"](f["wplus_input"][:1])
  names = [n for n, _ in e["synthesis_intermediates_first_sample"]]
  assert [n.split("_", 2)[2] for n in names] == conv.config.layer_names()
  for key in names:
    child = key.split("_", 2)[2]
    assert_close(nchw(inter[child]), f[key], atol=image_atol(f[key]), what=key)


def test_layer_sequence_split(case):
  """prefix(ℓ) then suffix(ℓ) equals the whole synthesis at every ℓ; shapes as advertised."""
  g, e, sd, conv, m, v, fns, f = case
  cfg = conv.config
  wp = jnp.asarray(f["wplus_input"][:1])
  full = fns["synthesis"](wp)
  shapes = cfg.feature_shapes()
  for k in sorted({1, 2, 3, cfg.num_layers // 2, cfg.num_layers - 1}):
    state = m.apply(v, None, wp, 0, k, method=m.synthesis)
    assert state[0].shape[1:] == shapes[k], (k, state[0].shape, shapes[k])
    out = m.apply(v, state, wp, k, None, method=m.synthesis)
    assert_close(out, full, atol=image_atol(full), what=f"split at {k}")


def test_noise_modes(case):
  g, e, sd, conv, m, v, fns, f = case
  cfg = conv.config
  wp = jnp.asarray(f["wplus_input"][:2])
  stop = 5    # through the first up-conv: enough to see every mode act
  syn = jax.jit(lambda wp, noise: m.apply(v, None, wp, 0, stop, noise, method=m.synthesis)[0],
                static_argnums=1)
  stored = [conv.params["synthesis"][f"layer{i}"]["noise"] for i in range(cfg.num_convs)]
  explicit = jax.jit(lambda wp, n: m.apply(v, None, wp, 0, stop, n, method=m.synthesis)[0])
  ref = syn(wp, "const")
  # The same arithmetic compiled twice (noise as an argument vs as a constant): XLA may fuse or order
  # it differently, a few float32 ulp of the activations' range (ulp(16) = 1.9e-6), so 1e-6 x range.
  assert_close(explicit(wp, stored), ref, atol=image_atol(ref, 1e-6), what="explicit = stored")
  assert float(jnp.abs(syn(wp, "zero") - syn(wp, "const")).max()) > 1e-3
  rand = jax.jit(lambda wp, k: m.apply(v, None, wp, 0, stop, "random", method=m.synthesis,
                                       rngs={"noise": k})[0])
  a = rand(wp, jax.random.key(0))
  assert_close(rand(wp, jax.random.key(0)), a, what="random, same key")
  assert float(jnp.abs(rand(wp, jax.random.key(1)) - a).max()) > 1e-3


def test_convert_file_roundtrip(case, tmp_path):
  g, e, sd, conv, m, v, fns, f = case
  dest = tmp_path / "g"
  res = converters.convert_file(g.path(e["checkpoint"]), dest)
  assert res.family == "stylegan2"
  model = registry.load_model(dest, expect_family="stylegan2")
  assert model.config == conv.config and model.extras == conv.extras
  img = jax.jit(lambda p, wp: model.module.apply({"params": p}, None, wp,
                                                method=model.module.synthesis))(model.params,
                                                                               f["wplus_input"])
  assert_close(nchw(img), f["image_from_wplus"], atol=image_atol(f["image_from_wplus"]),
               what="image after convert_file + load_model")
