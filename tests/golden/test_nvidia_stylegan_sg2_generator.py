"""StyleGAN2-ADA generators from NVIDIA network pickles (native and legacy TF) against nvidia_stylegan/.

Every model of kind "ada" or "tf" in expected.json is converted from its pickle
(G_ema; ``part=G`` for ``img_G_key``) and compared on every stored array.

Tolerances (README §8): the official code rerun with another thread count moves forward
arrays by ≤ 1.0e-6 · max(1, max|value|); an independent float32 port reorders sums and
uses other conv algorithms, hence the README's suggested bounds, used here:
forward arrays (mapping layers, styles, feature maps, images) ≤ 1e-4 · max(1, max|expected|),
w / ws arrays ≤ 1e-5 absolute.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import nvidia_stylegan2_ada
from jaxinv.models import stylegan2
from tests.conftest import assert_close

FOLDER = "nvidia_stylegan"
FORWARD_REL = 1e-4     # × max(1, max|expected|), README §8 suggestion for StyleGAN2
W_ATOL = 1e-5          # ws arrays, README §8


def forward_atol(expected):
  return FORWARD_REL * max(1.0, float(np.abs(expected).max()))


def _sg2_tags(expected):
  return [t for t, m in expected["models"].items() if m["kind"] in ("ada", "tf")]


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


@pytest.fixture(scope="module")
def models(g):
  tags = _sg2_tags(g.expected)
  if not tags:
    pytest.skip("no StyleGAN2-ADA model in this case")
  out = {}
  for tag in tags:
    obj = converters.read_source(g.path(g.expected["models"][tag]["pickle"]["file"]))
    assert converters.detect(obj) == nvidia_stylegan2_ada.NAME
    conv = nvidia_stylegan2_ada.convert(obj)
    out[tag] = (obj, conv, stylegan2.StyleGAN2Generator(conv.config), {"params": conv.params})
  return out


def _arr(f, name):
  return f[name] if name in f.files else None


def _labels(f, tag, cfg):
  c = _arr(f, f"{tag}.c")
  assert (c is not None) == bool(cfg.c_dim)
  return None if c is None else jnp.asarray(c)


def _layer_index(block, name):
  """``b{r}.conv0/conv1`` → conv layer index; ``b{r}.torgb``/``img`` → block index."""
  log = int(block[1:]).bit_length() - 1
  return {"conv0": 2 * log - 5, "conv1": 2 * log - 4}.get(name, log - 2)


def test_config_from_init_kwargs(g, models):
  for tag, (_, conv, _, _) in models.items():
    m = g.expected["models"][tag]
    cfg = conv.config
    assert (cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.c_dim, cfg.num_ws) == (
        m["img_resolution"], m["z_dim"], m["w_dim"], m["c_dim"], m["num_ws"])
    assert cfg.channels == tuple(m["channels"][f"b{r}"] for r in m["block_resolutions"])
    kwargs = m["init_kwargs"]["G_ema"]
    assert cfg.mapping_layers == kwargs["mapping_kwargs"]["num_layers"]
    assert cfg.conv_clamp == kwargs["synthesis_kwargs"]["conv_clamp"]


def test_mapping_and_truncation(g, models):
  f = g.npz("fixtures.npz")
  for tag, (_, conv, m, v) in models.items():
    cfg = conv.config
    z, c = jnp.asarray(f[f"{tag}.z"]), _labels(f, tag, cfg)
    w, state = m.apply(v, z, c, method=m.mapping, capture_intermediates=True)
    inter = state["intermediates"]["mapping"]
    embed = _arr(f, f"{tag}.mapping.embed")
    if embed is not None:
      assert_close(inter["embed"]["__call__"][0], embed, atol=forward_atol(embed), what=f"{tag} embed")
    for i in range(cfg.mapping_layers):
      want = _arr(f, f"{tag}.mapping.fc{i}")
      if want is not None:
        got = stylegan2.fused_lrelu(inter[f"dense{i}"]["__call__"][0])
        assert_close(got, want, atol=forward_atol(want), what=f"{tag} fc{i}")
    cut = g.expected["models"][tag]["truncation"]["cutoff"]
    psi = g.expected["models"][tag]["truncation"]["psi"]
    assert_close(m.apply(v, w, 1.0, None, method=m.truncate), f[f"{tag}.ws"], atol=W_ATOL,
                 what=f"{tag} ws")
    assert_close(m.apply(v, w, psi, None, method=m.truncate), f[f"{tag}.ws_psi"], atol=W_ATOL,
                 what=f"{tag} ws_psi")
    assert_close(m.apply(v, w, psi, cut, method=m.truncate), f[f"{tag}.ws_psi_cut"], atol=W_ATOL,
                 what=f"{tag} ws_psi_cut")
    np.testing.assert_array_equal(conv.params["truncation"]["w_avg"], f[f"{tag}.w_avg"])


def _nchw(x):
  return np.transpose(np.asarray(x), (0, 3, 1, 2))


def test_synthesis_intermediates(g, models):
  f = g.npz("fixtures.npz")
  for tag, (_, conv, m, v) in models.items():
    names = [n for n in f.files if n.startswith(f"{tag}.synth.")]
    if not names:
      continue
    inter = m.apply(v, jnp.asarray(f[f"{tag}.ws"]), method=m.intermediates)
    for name in names:
      parts = name[len(tag) + len(".synth."):].split(".")
      block, kind = parts[0], parts[1]
      idx = _layer_index(block, kind)
      key = {"conv0": f"layer{idx}", "conv1": f"layer{idx}", "torgb": f"output{idx}",
             "img": f"skip{idx}"}[kind]
      want = f[name]
      if parts[-1] == "styles":
        got = inter[f"style.{key}"]
      else:
        got = _nchw(inter[key])[: want.shape[0]]
      assert_close(got, want, atol=forward_atol(want), what=name)


def test_images_noise_modes_and_truncation(g, models):
  f = g.npz("fixtures.npz")
  for tag, (_, conv, m, v) in models.items():
    cfg = conv.config
    syn = jax.jit(lambda wp, noise: m.apply(v, None, wp, 0, None, noise, method=m.synthesis),
                  static_argnums=())
    ws = jnp.asarray(f[f"{tag}.ws"])
    checks = [("img_const", ws, "const"), ("img_none", ws, "zero"),
              ("img_wplus", jnp.asarray(f[f"{tag}.wplus"]), "const")]
    draws = [_arr(f, f"{tag}.img_random.noise.{blk}.{name}") for blk, name in _conv_names(cfg)]
    if all(d is not None for d in draws):
      checks.append(("img_random", ws, [jnp.asarray(d) for d in draws]))
    for key, wp, noise in checks:
      want = f[f"{tag}.{key}"]
      got = m.apply(v, None, wp, 0, None, noise, method=m.synthesis)
      assert_close(_nchw(got), want, atol=forward_atol(want), what=f"{tag}.{key}")
    z, c = jnp.asarray(f[f"{tag}.z"]), _labels(f, tag, cfg)
    t = g.expected["models"][tag]["truncation"]
    for key, layers in (("img_psi", None), ("img_psi_cut", t["cutoff"])):
      want = f[f"{tag}.{key}"]
      got = m.apply(v, z, t["psi"], layers, "const", c)
      assert_close(_nchw(got), want, atol=forward_atol(want), what=f"{tag}.{key}")


def _conv_names(cfg):
  out = [("b4", "conv1")]
  for b in range(1, cfg.num_blocks):
    out += [(f"b{4 * 2 ** b}", "conv0"), (f"b{4 * 2 ** b}", "conv1")]
  return out


def test_non_ema_part(g, models):
  f = g.npz("fixtures.npz")
  for tag, (obj, _, _, _) in models.items():
    want = _arr(f, f"{tag}.img_G_key")
    if want is None:
      continue
    conv = nvidia_stylegan2_ada.convert(obj, part="G")
    m = stylegan2.StyleGAN2Generator(conv.config)
    got = m.apply({"params": conv.params}, jnp.asarray(f[f"{tag}.z"]), 1.0, None, "const",
                  _labels(f, tag, conv.config))
    assert_close(_nchw(got), want, atol=forward_atol(want), what=f"{tag}.img_G_key")


def test_conditional_needs_labels(models):
  for tag, (_, conv, m, v) in models.items():
    cfg = conv.config
    z = jnp.zeros((1, cfg.z_dim))
    if cfg.c_dim:
      with pytest.raises(ValueError, match="conditional"):
        m.apply(v, z, method=m.mapping)
    else:
      with pytest.raises(ValueError, match="unconditional"):
        m.apply(v, z, jnp.ones((1, 2)), method=m.mapping)
