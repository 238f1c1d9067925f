"""DGP manipulations: morphing (weights + z + embedding interpolation), jitter, category transfer."""

import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from tests.conftest import assert_close
from tests.golden import _dgp

IMG_ATOL = 1e-5


@pytest.fixture(scope="module")
def g_ema(golden):
  return _dgp.load_g(golden("dgp"))


def test_finetuned_full_state_dict_converts(golden, g_ema):
  gd = golden("dgp")
  G, _ = g_ema
  Gb, pb = _dgp.load_g(gd, "G_finetuned_SR_tiny128.pth")
  assert Gb.config == G.config


def test_morphing(golden, g_ema):
  gd = golden("dgp")
  G, pa = g_ema
  _, pb = _dgp.load_g(gd, "G_finetuned_SR_tiny128.pth")
  m = gd.npz("manipulations.npz")
  t = gd.npz("trajectories.npz")
  np.testing.assert_array_equal(m["morph_z2"], t["traj_SR_z_final"])
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
  xc = dgp.category_transfer(G, p, m["jitter_z"], classes)
  assert_close(_dgp.nchw(xc), m["category_x"], atol=IMG_ATOL, what="category transfer")
