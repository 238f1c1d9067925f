"""StyleGAN3 (T or R) from NVIDIA network pickles against nvidia_stylegan/.

Tolerances (README §8): a thread-count rerun of the official code moves forward arrays by
≤ 1.0e-6 · max(1, max|value|) (worst: an SG3 layer); for an independent float32 port the README
suggests ≤ 2e-4 · max(1, max|expected|) for StyleGAN3 forward arrays (Fourier input, layer
outputs, styles, images) and ≤ 1e-5 absolute for w / ws arrays — used here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import nvidia_stylegan3
from jaxinv.models import stylegan2, stylegan3
from tests.conftest import assert_close

FOLDER = "nvidia_stylegan"
FORWARD_REL = 2e-4     # × max(1, max|expected|), README §8 suggestion for StyleGAN3
W_ATOL = 1e-5


def forward_atol(expected):
  return FORWARD_REL * max(1.0, float(np.abs(expected).max()))


def _nchw(x):
  x = np.asarray(x)
  return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


@pytest.fixture(scope="module")
def models(g):
  tags = [t for t, m in g.expected["models"].items() if m["kind"] == "sg3"]
  if not tags:
    pytest.skip("no StyleGAN3 model in this case")
  out = {}
  for tag in tags:
    obj = converters.read_source(g.path(g.expected["models"][tag]["pickle"]["file"]))
    assert converters.detect(obj) == nvidia_stylegan3.NAME
    conv = nvidia_stylegan3.convert(obj)
    m = stylegan3.StyleGAN3Generator(conv.config)
    # one compiled function for every synthesis array (params are an argument: G and G_ema share it)
    inter = jax.jit(lambda p, wp, tr: m.apply({"params": p}, wp, tr, method=m.intermediates))
    out[tag] = (obj, conv, m, inter)
  return out


def _labels(f, tag, cfg):
  c = f[f"{tag}.c"] if f"{tag}.c" in f.files else None
  assert (c is not None) == bool(cfg.c_dim)
  return None if c is None else jnp.asarray(c)


def _image(cfg, inter):
  return _nchw(inter[cfg.layers[-1].name] * cfg.output_scale)


def test_config_from_record(g, models):
  for tag, (_, conv, _, _) in models.items():
    m = g.expected["models"][tag]
    cfg = conv.config
    assert (cfg.z_dim, cfg.w_dim, cfg.c_dim, cfg.num_ws, cfg.resolution, cfg.output_scale) == (
        m["z_dim"], m["w_dim"], m["c_dim"], m["num_ws"], m["img_resolution"], m["output_scale"])
    inp = m["input"]
    assert (cfg.input_channels, list(cfg.input_size), cfg.sampling_rate, cfg.bandwidth) == (
        inp["channels"], inp["size"], inp["sampling_rate"], inp["bandwidth"])
    assert len(cfg.layers) == len(m["layers"])
    for spec, want in zip(cfg.layers, m["layers"]):
      assert (spec.name, spec.cin, spec.cout, spec.kernel, spec.up, spec.down, list(spec.padding),
              spec.is_torgb, [spec.in_size] * 2, [spec.out_size] * 2) == (
          want["name"], want["in_channels"], want["out_channels"], want["conv_kernel"],
          want["up_factor"], want["down_factor"], want["padding"], want["is_torgb"],
          want["in_size"], want["out_size"])
      for key in ("up_filter", "down_filter"):
        assert (list(getattr(spec, key)) or None) == want[key]
      assert float(conv.params["synthesis"][spec.name]["magnitude_ema"]) == pytest.approx(
          want["magnitude_ema"], rel=1e-7)
      assert cfg.conv_clamp == want["conv_clamp"]


def test_mapping_and_truncation(g, models):
  f = g.npz("fixtures.npz")
  for tag, (_, conv, m, _) in models.items():
    cfg = conv.config
    v = {"params": conv.params}
    z, c = jnp.asarray(f[f"{tag}.z"]), _labels(f, tag, cfg)
    w, state = m.apply(v, z, c, method=m.mapping, capture_intermediates=True)
    inter = state["intermediates"]["mapping"]
    if f"{tag}.mapping.embed" in f.files:
      want = f[f"{tag}.mapping.embed"]
      assert_close(inter["embed"]["__call__"][0], want, atol=forward_atol(want), what="embed")
    for i in range(cfg.mapping_layers):
      if f"{tag}.mapping.fc{i}" in f.files:
        want = f[f"{tag}.mapping.fc{i}"]
        assert_close(stylegan2.fused_lrelu(inter[f"dense{i}"]["__call__"][0]), want,
                     atol=forward_atol(want), what=f"{tag} fc{i}")
    t = g.expected["models"][tag]["truncation"]
    for key, psi, layers in (("ws", 1.0, None), ("ws_psi", t["psi"], None),
                             ("ws_psi_cut", t["psi"], t["cutoff"])):
      assert_close(m.apply(v, w, psi, layers, method=m.truncate), f[f"{tag}.{key}"], atol=W_ATOL,
                   what=f"{tag}.{key}")
    np.testing.assert_array_equal(conv.params["truncation"]["w_avg"], f[f"{tag}.w_avg"])
    mags = [conv.params["synthesis"][s.name]["magnitude_ema"] for s in cfg.layers]
    np.testing.assert_array_equal(np.stack(mags), f[f"{tag}.magnitude_ema"])


def test_synthesis_every_intermediate_and_images(g, models):
  f = g.npz("fixtures.npz")
  for tag, (obj, conv, m, inter_fn) in models.items():
    cfg = conv.config
    p = conv.params
    identity = p["synthesis"]["input"]["transform"]
    inter = inter_fn(p, jnp.asarray(f[f"{tag}.ws"]), identity)
    names = [n for n in f.files if n.startswith(f"{tag}.synth.") and "transformed" not in n]
    assert names
    for name in names:
      key = name[len(f"{tag}.synth."):]
      want = f[name]
      got = _nchw(inter[key])[: want.shape[0]]
      assert_close(got, want, atol=forward_atol(want), what=name)
    want = f[f"{tag}.img_const"]
    assert_close(_image(cfg, inter), want, atol=forward_atol(want), what=f"{tag}.img_const")
    # w+ with distinct rows
    want = f[f"{tag}.img_wplus"]
    got = _image(cfg, inter_fn(p, jnp.asarray(f[f"{tag}.wplus"]), identity))
    assert_close(got, want, atol=forward_atol(want), what=f"{tag}.img_wplus")
    # z → truncation → image
    v = {"params": p}
    z, c = jnp.asarray(f[f"{tag}.z"]), _labels(f, tag, cfg)
    w = m.apply(v, z, c, method=m.mapping)
    t = g.expected["models"][tag]["truncation"]
    for key, layers in (("img_psi", None), ("img_psi_cut", t["cutoff"])):
      wp = m.apply(v, w, t["psi"], layers, method=m.truncate)
      want = f[f"{tag}.{key}"]
      assert_close(_image(cfg, inter_fn(p, wp, identity)), want, atol=forward_atol(want),
                   what=f"{tag}.{key}")
    # user transform (stored inverse, as gen_images.py sets it)
    if f"{tag}.transform" in f.files:
      tr = jnp.asarray(f[f"{tag}.transform"])
      out = inter_fn(p, jnp.asarray(f[f"{tag}.ws"]), tr)
      for key, got in (("synth.input_transformed", _nchw(out["input"])),
                       ("img_transformed", _image(cfg, out))):
        want = f[f"{tag}.{key}"]
        assert_close(got, want, atol=forward_atol(want), what=f"{tag}.{key}")
    # the non-EMA generator
    if f"{tag}.img_G_key" in f.files:
      pg = nvidia_stylegan3.convert(obj, part="G").params
      wg = m.apply({"params": pg}, z, c, method=m.mapping)
      wp = m.apply({"params": pg}, wg, method=m.truncate)
      want = f[f"{tag}.img_G_key"]
      assert_close(_image(cfg, inter_fn(pg, wp, pg["synthesis"]["input"]["transform"])), want,
                   atol=forward_atol(want), what=f"{tag}.img_G_key")

