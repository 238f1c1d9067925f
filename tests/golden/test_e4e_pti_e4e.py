"""e4e against the official encoder4editing run (fixture e4e_pti): checkpoint conversion (also
at the released sizes, from key shapes only), preprocessing, every encoder intermediate, the
codes, the decoder reconstruction and the InterFaceGAN edit.

Tolerance (forward arrays): max |diff| <= 1e-4 * max(1, max|expected|). The fixture measures
2.0e-6 (encoder/codes/recon) and 2.1e-6 (edits) between 1 and 2 torch threads (float32
summation order only); 1e-4 leaves ~50x for XLA's different conv/reduction order across 24
residual units and up to 6 head convs, and stays far below every negative control (>= 0.18).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import psp as psp_converter
from jaxinv.io import images as io_images
from jaxinv.io import torch_pickle
from jaxinv.models import psp as psp_model
from tests.conftest import assert_close, golden_root

FOLDER = "e4e_pti"
FORWARD_RTOL = 1e-4   # relative to max(1, max|expected|); see the module docstring


def _tol(expected):
  return FORWARD_RTOL * max(1.0, float(np.max(np.abs(expected))))


def _nhwc(x):
  return np.transpose(np.asarray(x), (0, 2, 3, 1))


@pytest.fixture(scope="module")
def case(golden):
  g = golden(FOLDER)
  e4e = g.expected["e4e"]
  obj = torch_pickle.load(g.path(e4e["checkpoint"]["file"]))
  conv = psp_converter.convert(obj, input_size=e4e["config"]["input_size"])
  module = psp_model.PSP(conv.config)
  z = g.npz("fixtures.npz")
  arrays = {k: z[k] for k in z.files if k.startswith("e4e.")}
  return g, e4e, obj, conv, module, arrays


@pytest.fixture(scope="module")
def encoded(case):
  g, e4e, obj, conv, module, arrays = case
  rec = {}
  with jax.default_matmul_precision("highest"):
    codes = module.apply({"params": conv.params}, jnp.asarray(_nhwc(arrays["e4e.image"])),
                         intermediates=rec, method=module.encode)
  return codes, jax.tree.map(np.asarray, rec)


def test_checkpoint_keys_and_inferred_sizes(case):
  g, e4e, obj, conv, module, arrays = case
  sd = obj["state_dict"]
  assert {k: list(np.shape(v)) for k, v in sd.items()} == e4e["checkpoint"]["state_dict"]
  assert converters.detect(obj) == psp_converter.NAME
  cfg, c = conv.config, e4e["config"]
  assert cfg.encoder.encoder_type == e4e["opts"]["encoder_type"]
  assert cfg.encoder.style_count == c["style_count"] == cfg.decoder.num_ws
  assert cfg.encoder.w_dim == c["style_dim"] and cfg.decoder.mapping_layers == c["n_mlp"]
  assert list(cfg.encoder.stage_widths) == c["encoder_widths"]
  assert list(cfg.encoder.units_per_stage) == c["body_units"]
  assert list(cfg.encoder.head_convs) == c["head_num_convs"]
  assert cfg.encoder.feature_units()[-1] == c["body_stage_end_indices"][-1]
  assert cfg.encoder.fpn_width == c["encoder_widths"][-1]
  assert cfg.start_from_latent_avg == e4e["opts"]["start_from_latent_avg"]
  np.testing.assert_array_equal(conv.params["latent_avg"], arrays["e4e.latent_avg"])


def test_released_sizes_convert_from_shapes(golden):
  """Every pSp/e4e entry of stock_key_shapes.json (the unmodified classes at released sizes)
  converts strictly from its key -> shape list (no tensor data needed)."""
  stock = json.loads(golden(FOLDER).path("stock_key_shapes.json").read_text())
  entries = {n: s for n, s in stock.items()
             if any(k.startswith("encoder.styles.") for k in s.get("state_dict", {}))}
  assert entries, "stock_key_shapes.json lists no pSp/e4e state_dict"
  for name, s in entries.items():
    sd = {k: np.broadcast_to(np.zeros((), np.int64 if k.endswith("num_batches_tracked")
                                      else np.float32), v) for k, v in s["state_dict"].items()}
    obj = {"state_dict": sd, "opts": {"encoder_type": "Encoder4Editing",
                                      "start_from_latent_avg": True},
           "latent_avg": np.zeros(s["latent_avg"], np.float32)}
    assert converters.detect(obj) == psp_converter.NAME, name
    conv = psp_converter.convert(obj)
    assert conv.config.encoder.style_count == s["style_count"] == conv.config.decoder.num_ws, name
    assert conv.config.decoder.resolution == 2 ** ((s["style_count"] + 2) // 2), name


def test_converter_refuses_missing_and_foreign(case):
  g, e4e, obj, conv, module, arrays = case
  sd = dict(obj["state_dict"])
  sd.pop(next(k for k in sd if k.startswith("encoder.styles.1.linear")))
  with pytest.raises(converters.ConversionError, match="missing"):
    psp_converter.convert(dict(obj, state_dict=sd), input_size=64)
  with pytest.raises(converters.ConversionError, match="encoder_type"):
    psp_converter.convert(dict(obj, opts={"encoder_type": "BackboneEncoderUsingLastLayerIntoW"}))


def test_preprocessing(case):
  g, e4e, obj, conv, module, arrays = case
  base = golden_root().parent.parent
  size = e4e["config"]["input_size"]
  u8 = np.stack([io_images.load_psp_uint8(base / im["path"], size) for im in e4e["images"]])
  np.testing.assert_array_equal(u8, arrays["e4e.image_uint8"])
  x = io_images.load_images([base / im["path"] for im in e4e["images"]], size, loader="psp")
  np.testing.assert_array_equal(x, _nhwc(arrays["e4e.image"]))


def test_encoder_intermediates(case, encoded):
  g, e4e, obj, conv, module, arrays = case
  codes, rec = encoded
  checked = 0
  for key, exp in arrays.items():
    if not key.startswith("e4e.enc."):
      continue
    name = key[len("e4e.enc."):]
    if name == "out_by_progressive_stage":
      continue
    if name.endswith("_img0"):
      name, exp = name[:-len("_img0")], exp[:1]
    got = rec[name]
    if got.ndim == 4:
      got = np.transpose(got, (0, 3, 1, 2))
    got = got[:exp.shape[0]].reshape(exp.shape)
    assert_close(got, exp, atol=_tol(exp), what=key)
    checked += 1
  assert checked >= 10
  assert_close(codes, arrays["e4e.codes"], atol=_tol(arrays["e4e.codes"]), what="codes")


def test_progressive_stages(case):
  g, e4e, obj, conv, module, arrays = case
  exp = arrays["e4e.enc.out_by_progressive_stage"]
  x = jnp.asarray(_nhwc(arrays["e4e.image"]))
  enc = psp_model.PSPEncoder(conv.config.encoder)
  for k in range(exp.shape[0]):
    got = enc.apply({"params": conv.params["encoder"]}, x, progressive_stage=k)
    assert_close(got, exp[k], atol=_tol(exp[k]), what=f"progressive stage {k}")


def test_gradual_style_encoder_stacks_the_heads(case, encoded):
  """pSp's encoder on the same weights: row i = head i (heads are the fixture's)."""
  g, e4e, obj, conv, module, arrays = case
  cfg = psp_model.PSPEncoderConfig(**{**conv.config.encoder.__dict__,
                                      "encoder_type": "GradualStyleEncoder"})
  got = psp_model.PSPEncoder(cfg).apply({"params": conv.params["encoder"]},
                                        jnp.asarray(_nhwc(arrays["e4e.image"])))
  heads = np.stack([arrays[f"e4e.enc.head{i:02d}"] for i in range(cfg.style_count)], axis=1)
  assert_close(got, heads, atol=_tol(heads), what="GradualStyleEncoder rows")


def test_reconstruction_and_edit(case):
  g, e4e, obj, conv, module, arrays = case
  ed = e4e["edit"]
  codes, d = arrays["e4e.codes"], arrays["e4e.edit.direction"]
  lat = np.concatenate([codes[0:1] + f * d for f in range(*ed["factor_range"])])
  assert_close(lat, arrays["e4e.edit.range_latents"], atol=_tol(lat), what="range latents")
  single = codes[1:2] + ed["factor"] * d
  assert_close(single, arrays["e4e.edit.single_latents"], atol=_tol(single), what="single")
  # One decoder call for all rows (images are independent; the fixture checks per-image vs
  # batched to 3.8e-6).
  allrows = np.concatenate([codes, lat, single])
  out = jax.jit(lambda w: module.apply({"params": conv.params}, w, method=module.decode))(allrows)
  out = np.transpose(np.asarray(out), (0, 3, 1, 2))
  recon, imgs, simg = np.split(out, [len(codes), len(codes) + len(lat)])
  assert_close(recon, arrays["e4e.recon"], atol=_tol(arrays["e4e.recon"]), what="recon")
  if "e4e.recon_face_pool_256_img0" in arrays:
    pooled = arrays["e4e.recon_face_pool_256_img0"]
    rep = pooled.shape[-1] // recon.shape[-1]
    up = np.repeat(np.repeat(recon[:1], rep, 2), rep, 3)
    assert_close(up, pooled, atol=_tol(pooled), what="face_pool 256")
  assert_close(imgs, arrays["e4e.edit.range_images"], atol=_tol(imgs), what="range images")
  assert_close(simg, arrays["e4e.edit.single_images"], atol=_tol(simg), what="single image")
