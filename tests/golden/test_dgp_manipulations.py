"""DGP manipulations: morphing (weights + z + embedding interpolation), jitter, category transfer."""

import jax
import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from tests.conftest import assert_close
from tests.golden import _dgp

# README (verification): an independent float32 JAX port matches G's output to 6.7e-7 and its
# intermediates to 9.2e-7 (float summation order only); morphing/jitter are single G forwards on
# interpolated inputs, so the same floor applies. 1e-5 is the README's suggested forward bound,
# ~10x that floor (measured here <= 6.8e-7 under default, AVX2, AVX and SSE4_2).
IMG_ATOL = 1e-5


@pytest.fixture(scope="module")
def g_ema(golden):
  return _dgp.load_g(golden("dgp"))


def test_finetuned_full_state_dict_converts(golden, g_ema):
  gd = golden("dgp")
  G, pa = g_ema
  _, file = _dgp.finetuned(gd)
  Gb, pb = _dgp.load_g(gd, file)
  assert Gb.config == G.config
  # A fine-tuned generator: some trained weights moved, so it must not be G_ema read twice.
  moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
           zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb))]
  assert max(moved) > 0


def test_morphing(golden, g_ema):
  gd = golden("dgp")
  G, pa = g_ema
  task, file = _dgp.finetuned(gd)
  _, pb = _dgp.load_g(gd, file)
  m = gd.npz("manipulations.npz")
  t = gd.npz("trajectories.npz")
  np.testing.assert_array_equal(m["morph_z2"], t[f"traj_{task}_z_final"])
  alphas = gd.expected["manipulations"]["morph_alphas"]
  xs = dgp.morph(G, pa, pb, m["morph_z1"], m["morph_z2"], m["morph_y1"], m["morph_y2"], alphas)
  for a, x in zip(alphas, xs):
    err = assert_close(_dgp.nchw(x[None]), m[f"morph_x_alpha{round(a * 10):02d}"], atol=IMG_ATOL,
                       what=f"morph alpha {a}")
    print(f"morph alpha {a}: {err:.3g}")


def test_jitter_and_category_transfer(golden, g_ema):
  gd = golden("dgp")
  G, p = g_ema
  m = gd.npz("manipulations.npz")
  stds = gd.expected["manipulations"]["jitter_stds"]
  xs = dgp.jitter(G, p, m["jitter_z"], m["jitter_y"], m["jitter_noise"], stds)
  for s, x in zip(stds, xs):
    assert_close(_dgp.nchw(x[None]), m[f"jitter_x_std{s}"], atol=IMG_ATOL, what=f"jitter std {s}")
  classes = m["category_classes"]
  assert classes.tolist() == gd.expected["manipulations"]["category_classes"]
  if not len(classes):
    pytest.skip("this case stores no category-transfer classes")
  xc = dgp.category_transfer(G, p, m["jitter_z"], classes)
  assert_close(_dgp.nchw(xc), m["category_x"], atol=IMG_ATOL, what="category transfer")
