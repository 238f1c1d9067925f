"""PadInv generator vs the official StyleGAN2GeneratorPadInv (fixture folder ``padinv``)."""

import jax
import jax.numpy as jnp
import pytest

from jaxinv.models import padinv as P
from tests.conftest import assert_close
from tests.golden.padinv_common import (ATOL, FOLDER, RTOL, image_atol, load, nchw, nhwc, slots_of,
                                        used_region)

# Identities (same code path twice, or a zero ring through a conv): README measured 0 with the
# reference; ours differ only by the float32 rounding of a few O(1) sums, ~1e-7.
IDENTITY_ATOL = 1e-6


@pytest.fixture(scope="module")
def setup(golden):
  g = golden(FOLDER)
  cfg, gen, _ = load(g)
  module = P.PadInvGenerator(gen.config)
  v = {"params": gen.params}

  @jax.jit
  def synth(wp, maps):
    inter = {}
    img = module.apply(v, wp, maps, inter, method="synthesis")
    return img, inter

  @jax.jit
  def full(z):
    inter = {}
    w = module.apply(v, z, inter, method="mapping")
    return module.apply(v, z), w, inter

  f = g.npz("fixtures.npz")
  return dict(g=g, cfg=cfg, gen=gen, synth=synth, full=full, f=f,
              maps={s: jnp.asarray(nhwc(f[f"gen.map.slot{s}"])) for s in slots_of(cfg)})


def test_config_matches_kwargs(setup):
  kw = setup["cfg"]["generator_kwargs"]
  c = setup["gen"].config
  for k in ("resolution", "z_dim", "w_dim", "mapping_layers", "mapping_fmaps", "mapping_lr_mul",
            "fmaps_base", "fmaps_max", "image_channels"):
    assert getattr(c, k) == kw[k], k
  assert set(setup["cfg"]["padding_slots"][i]["slot"] for i in range(len(
      setup["cfg"]["padding_slots"]))) <= set(c.slot_shapes())


def test_padded_synthesis_and_intermediates(setup):
  f = setup["f"]
  img, inter = setup["synth"](jnp.asarray(f["gen.wp_plus"]), setup["maps"])
  assert_close(nchw(img), f["gen.image_pad"], atol=image_atol(f["gen.image_pad"]),
               what="gen.image_pad")
  names = [k for k in setup["g"].expected["arrays"] if k.startswith("gen.pad.")]
  assert names
  for name in names:
    a = nchw(inter[name[len("gen.pad."):]])
    assert_close(a, f[name], atol=ATOL, rtol=RTOL, what=name)


def test_no_maps_and_const_only(setup):
  f = setup["f"]
  wp = jnp.asarray(f["gen.wp_plus"])
  img, _ = setup["synth"](wp, None)
  assert_close(nchw(img), f["gen.image_nopad"], atol=image_atol(f["gen.image_nopad"]),
               what="gen.image_nopad")
  img, _ = setup["synth"](wp, {0: setup["maps"][0]})
  assert_close(nchw(img), f["gen.image_const_only"], atol=image_atol(f["gen.image_const_only"]),
               what="gen.image_const_only")


def test_identity_maps_equal_plain_generator(setup):
  """Zero rings + learned constant in the slot-0 centre == no maps (the notes' identity)."""
  f, gen = setup["f"], setup["gen"]
  wp = jnp.asarray(f["gen.wp_plus"])
  size = setup["maps"][0].shape[1]
  ident = P.identity_maps(gen.params, gen.config, tuple(setup["maps"]), size, wp.shape[0])
  a, _ = setup["synth"](wp, ident)
  b, _ = setup["synth"](wp, None)
  assert_close(a, b, atol=IDENTITY_ATOL, what="identity maps vs no maps")
  assert_close(nchw(a), f["gen.image_identity_maps"],
               atol=image_atol(f["gen.image_identity_maps"]), what="gen.image_identity_maps")
  # Entries outside the used crop/ring do not matter.
  noisy = {s: m + 7.0 * jax.random.normal(jax.random.key(s), m.shape) * _unused_mask(setup["cfg"], s)
           for s, m in ident.items()}
  c, _ = setup["synth"](wp, noisy)
  assert_close(c, b, atol=IDENTITY_ATOL, what="identity maps with junk outside the rings")
  # ... while each slot's used region does (so the check above is not vacuous).
  for s, m in ident.items():
    inside = dict(ident)
    inside[s] = m + jax.random.normal(jax.random.key(s), m.shape) * (1 - _unused_mask(setup["cfg"], s))
    d, _ = setup["synth"](wp, inside)
    assert float(jnp.abs(d - b).max()) > 1e-2, f"slot {s}: its used region does not reach the image"


def _unused_mask(cfg, slot):
  return jnp.asarray(~used_region(cfg, slot), jnp.float32)[None, :, :, None]


def test_mapping_and_full_forward(setup):
  f = setup["f"]
  img, w, inter = setup["full"](jnp.asarray(f["gen.z"]))
  assert_close(w, f["gen.w"], atol=ATOL, rtol=RTOL, what="gen.w")
  for name in [k for k in setup["g"].expected["arrays"] if k.startswith("gen.mapping.")]:
    assert_close(inter[name[len("gen."):]], f[name], atol=ATOL, rtol=RTOL, what=name)
  assert_close(nchw(img), f["gen.image_plain"], atol=image_atol(f["gen.image_plain"]),
               what="gen.image_plain")
  num_ws = setup["gen"].config.num_ws
  assert f["gen.wp"].shape[1] == num_ws


def test_bad_slot_is_refused(setup):
  f = setup["f"]
  wp = jnp.asarray(f["gen.wp_plus"])
  bad = min(set(range(setup["cfg"]["num_synthesis_layers"] + 2)) - set(setup["gen"].config.slot_shapes()))
  with pytest.raises(P.PaddingSlotError, match=f"slot {bad}"):
    setup["synth"](wp, {bad: setup["maps"][0]})


def test_encoder_free_start_is_the_plain_generator_at_w_avg(setup):
  """``--space padding`` without an encoder starts exactly at G(w_avg) with no maps."""
  from jaxinv.inversion.methods import padinv as M
  gen = setup["gen"]
  size = setup["maps"][0].shape[1]
  v = M.initial_variables(gen.config, gen.params, 2, tuple(setup["maps"]), size)
  a, _ = setup["synth"](v["wp"], v["maps"])
  b, _ = setup["synth"](v["wp"], None)
  assert_close(a, b, atol=IDENTITY_ATOL, what="average start vs plain generator")
