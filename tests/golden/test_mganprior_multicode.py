"""The multi-code forward (PGGAN_multi_z.forward) at every fixture composing layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import spaces
from tests.conftest import assert_close
from tests.golden.mganprior_common import converted, nchw

# Bounds (README §7): the official code in float64 differs from its stored float32 by 3.5e-6 on the
# PGGAN image (activations <= 1.0e-5, range about [-1.2, 1.3]) and 5.1e-6 on the multi-code images;
# a second float32 implementation with other kernels and summation order has noise of the same
# kind, a few times that. GEN_ATOL = 1e-4 is the README's suggestion for generator outputs,
# activations and features: >= 6x the worst float64 difference.
GEN_ATOL = 1e-4


@pytest.fixture(scope="module")
def model(golden, tmp_path_factory):
  return converted(golden, tmp_path_factory, "pggan")


def test_multicode_forward_each_layer(golden, model):
  g = golden("mganprior")
  e = g.expected["multicode"]
  d = g.npz("multicode.npz")
  z = jnp.asarray(d["z_estimate"])
  for layer in e["layers"]:
    space = spaces.MultiCode(model.module, layer, e["N"])
    alpha = jnp.asarray(d[f"alpha_L{layer}"])
    assert space.channels == e["per_layer"][str(layer)]["C"]
    feats = jax.vmap(space.features, in_axes=(0, None))(z, model.params)
    assert_close(np.asarray(feats).transpose(0, 1, 4, 2, 3), d[f"features_L{layer}"], atol=GEN_ATOL,
                 what=f"features L{layer}")
    fused = jax.vmap(space.compose)(feats, alpha)[:, 0]
    assert_close(nchw(fused), d[f"fused_L{layer}"], atol=GEN_ATOL, what=f"fused L{layer}")
    img = jax.vmap(space.render, in_axes=(0, None))({"z": z, "alpha": alpha}, model.params)
    err = assert_close(nchw(img), d[f"image_L{layer}"], atol=GEN_ATOL, what=f"image L{layer}")
    print(f"multi-code L{layer}: image max abs err {err:.3g}")


def test_alpha_scale_invariance(golden, model):
  """post_model starts with PixelNorm: scaling all alphas by one constant keeps the image."""
  g = golden("mganprior")
  e = g.expected["multicode"]
  d = g.npz("multicode.npz")
  layer = e["layers"][0]
  space = spaces.MultiCode(model.module, layer, e["N"])
  v = {"z": jnp.asarray(d["z_estimate"][0]), "alpha": jnp.asarray(d[f"alpha_L{layer}"][0])}
  a = space.render(v, model.params)
  b = space.render({**v, "alpha": v["alpha"] * 3.0}, model.params)
  assert_close(a, b, atol=GEN_ATOL, what="alpha scale invariance")
