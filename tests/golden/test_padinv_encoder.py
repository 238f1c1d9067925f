"""PadInv encoder and reconstruction vs the official PadInvEncoder (fixture folder ``padinv``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import irse, padinv as P
from tests.conftest import assert_close
from tests.golden.padinv_common import (ATOL, FOLDER, MAP_ATOL, RTOL, image_atol, load, nchw,
                                        nhwc, slots_of)


@pytest.fixture(scope="module")
def setup(golden):
  g = golden(FOLDER)
  cfg, gen, enc = load(g)
  encoder = irse.PadInvEncoder(enc.config)
  generator = P.PadInvGenerator(gen.config)

  @jax.jit
  def encode(image):
    inter = {}
    out = encoder.apply({"params": enc.params}, image, False, inter)
    return out, inter

  @jax.jit
  def synth(wp, maps):
    return generator.apply({"params": gen.params}, wp, maps, method="synthesis")

  f = g.npz("fixtures.npz")
  out, inter = encode(jnp.asarray(nhwc(f["enc.image"])))
  return dict(g=g, cfg=cfg, enc=enc, f=f, out=out, inter=inter, synth=synth)


def test_config_matches_kwargs(setup):
  kw, c = setup["cfg"]["encoder_kwargs"], setup["enc"].config
  assert c.num_latents == len(kw["latent_dim"]) and c.w_dim == kw["latent_dim"][0]
  assert list(c.num_latents_per_level) == kw["num_latents_per_level"]
  assert c.fpn_channels == kw["fpn_channels"] and c.pad_layer_num == kw["pad_layer_num"]
  over = setup["cfg"].get("encoder_class_overrides", {})
  for k in ("stage_in_channels", "stage_out_channels"):
    if k in over:
      assert list(getattr(c, k)) == over[k]
  assert set(c.slots) == set(slots_of(setup["cfg"]))


def test_input_image_from_uint8(setup):
  f = setup["f"]
  x = np.transpose(f["enc.image_uint8"], (0, 3, 1, 2)).astype(np.float32) / 255 * 2.0 + (-1.0)
  np.testing.assert_array_equal(x, f["enc.image"])


def test_intermediates(setup):
  f, inter = setup["f"], setup["inter"]
  names = [k for k in setup["g"].expected["arrays"] if k.startswith("enc.feat.")]
  assert names
  for name in names:
    e = f[name]
    assert_close(nchw(inter[name[len("enc.feat."):]])[:e.shape[0]], e, atol=ATOL, rtol=RTOL,
                 what=name)


def test_latents_and_maps(setup):
  f, out = setup["f"], setup["out"]
  assert_close(out["wp"], f["enc.wp"], atol=ATOL, rtol=RTOL, what="enc.wp")
  assert_close(out["wp_residual"], f["enc.wp_residual"], atol=ATOL, rtol=RTOL,
               what="enc.wp_residual")
  for s in slots_of(setup["cfg"]):
    assert_close(nchw(out["maps"][s]), f[f"enc.map.slot{s}"], atol=MAP_ATOL, rtol=RTOL,
                 what=f"enc.map.slot{s}")


def test_reconstruction(setup):
  f, out = setup["f"], setup["out"]
  recon = setup["synth"](out["wp"], out["maps"])
  assert_close(nchw(recon), f["enc.recon"], atol=image_atol(f["enc.recon"]), what="enc.recon")
  mse = np.mean((nchw(recon) - f["enc.image"]) ** 2, axis=(1, 2, 3))
  assert_close(mse, f["enc.recon_mse_per_image"], rtol=RTOL, what="enc.recon_mse_per_image")
  nopad = setup["synth"](out["wp"], None)
  assert_close(nchw(nopad), f["enc.recon_nopad"], atol=image_atol(f["enc.recon_nopad"]),
               what="enc.recon_nopad")


def test_bicubic_align_corners_matrix():
  """Rows sum to 1, corners map to corners (align_corners=True), identity at equal sizes."""
  m = irse.resize_matrix(8, 34, "bicubic")
  np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-12)
  assert m[0, 0] == 1.0 and m[-1, -1] == 1.0
  np.testing.assert_allclose(irse.resize_matrix(5, 5, "bicubic"), np.eye(5), atol=1e-12)
  np.testing.assert_allclose(irse.resize_matrix(4, 8, "bilinear").sum(1), 1.0, atol=1e-12)
