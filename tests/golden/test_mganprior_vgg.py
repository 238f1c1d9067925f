"""mGANprior's VGGLoss pieces: normalisation + legacy nearest resize, relu3_3 features, loss values."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import objectives
from tests.conftest import assert_close, case_params
from tests.golden.mganprior_common import converted, nchw, nhwc


@pytest.fixture(scope="module")
def vgg(golden, tmp_path_factory):
  return converted(golden, tmp_path_factory, "vgg")


def test_vgg_checkpoint_keys(golden, vgg):
  keys = golden("mganprior").expected["vgg"]["keys"]
  for key, shape, _dtype in keys:
    _, idx, kind = key.split(".")
    arr = vgg.params["features"][idx][kind]
    want = tuple(shape) if kind == "bias" else (shape[2], shape[3], shape[1], shape[0])
    assert arr.shape == want, key


@pytest.mark.parametrize("index", range(len(case_params("mganprior", lambda e: e["vgg_fixture"]["sizes"]))))
def test_resize_features_and_loss(golden, vgg, index):
  g = golden("mganprior")
  e = g.expected["vgg_fixture"]
  size = e["sizes"][index]
  d = g.npz("vgg.npz")
  cfg = objectives.VGGLossConfig(size=size)
  x, gt = jnp.asarray(nhwc(d["x"])[0]), jnp.asarray(nhwc(d["gt"])[0])
  resized = objectives.nearest_resize_legacy(objectives.vgg_normalize(x), size)
  assert_close(nchw(resized[None]), d[f"resized_x_{size}"], atol=1e-5, what=f"resized {size}")
  feats = objectives.vgg_features(vgg.params, x, cfg)
  scale = np.abs(d[f"features_x_{size}"]).max()
  assert_close(nchw(feats[None]), d[f"features_x_{size}"], atol=1e-5 * scale, what=f"features {size}")
  loss = objectives.vgg_loss(vgg.params, x, gt, cfg)
  assert_close(loss, e["values"][str(size)]["vgg_loss"], rtol=1e-5, what=f"vgg loss {size}")
