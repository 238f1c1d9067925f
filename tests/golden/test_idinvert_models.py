"""IDInvert encoder and Keras-convention VGG16 against the official forward passes (README §2, §3, §8)."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxinv import converters
from jaxinv.converters import idinvert as conv_idinvert
from jaxinv.models import registry
from tests.conftest import assert_close
from tests.golden._idinvert import fwd_tol

FOLDER = "idinvert"



def nhwc(x):
  return jnp.transpose(jnp.asarray(x), (0, 2, 3, 1))


def nchw(x):
  return np.transpose(np.asarray(x), (0, 3, 1, 2)) if np.ndim(x) == 4 else np.asarray(x)


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


@pytest.fixture(scope="module")
def arrays(g):
  return g.npz(g.expected["files"]["arrays"])


@pytest.fixture(scope="module")
def encoder(g, tmp_path_factory):
  dest = tmp_path_factory.mktemp("enc") / "encoder"
  res = converters.convert_file(g.path(g.expected["files"]["encoder"]), dest)
  assert res.family == "idinvert-encoder"
  return registry.load_model(dest, expect_family="idinvert-encoder")


@pytest.fixture(scope="module")
def perceptual(g, tmp_path_factory):
  dest = tmp_path_factory.mktemp("vgg") / "vgg"
  res = converters.convert_file(g.path(g.expected["files"]["perceptual"]), dest)
  assert res.family == "keras-vgg16"
  return registry.load_model(dest, expect_family="keras-vgg16")


def test_encoder_config_from_shapes(g, encoder):
  pool = g.expected["model_pool_entry"]
  cfg = encoder.config
  assert cfg.resolution == pool["resolution"]
  assert cfg.num_layers == pool["num_layers"]
  assert cfg.w_dim == pool["w_space_dim"]
  assert cfg.channels_base == pool["encoder_channels_base"]
  assert cfg.channels_max == pool["encoder_channels_max"]


def test_encoder_every_block(g, arrays, encoder):
  x = nhwc(arrays["preprocess.image"])
  n = encoder.config.num_blocks
  for k in range(n):
    name = f"enc.block{k}"
    want = arrays[name]
    got = nchw(encoder.module.apply(encoder.variables(), x[:1], stop=k + 1))
    assert_close(got, want, atol=fwd_tol(want), what=name)


@pytest.mark.parametrize("inp,name", [("preprocess.image", "enc.code"),
                                      ("gen.image_from_wplus", "enc.code_of_generated")])
def test_encoder_code(arrays, encoder, inp, name):
  got = encoder.module.apply(encoder.variables(), nhwc(arrays[inp]))
  want = arrays[name]
  assert_close(got, want, atol=fwd_tol(want), what=name)


def test_encoder_uses_gamma(arrays, encoder):
  """The fixture's gamma != 1 on purpose: dropping it must change the code."""
  p = jax.tree_util.tree_map_with_path(
      lambda path, v: jnp.ones_like(v) if path[-1].key == "weight" and "bn" in path[-2].key else v,
      encoder.params)
  got = encoder.module.apply({"params": p}, nhwc(arrays["preprocess.image"]))
  assert np.abs(np.asarray(got) - arrays["enc.code"]).max() > 1e-3


@pytest.mark.parametrize("inp,name", [("preprocess.image", "vgg.features"),
                                      ("gen.image_from_wplus", "vgg.features_of_generated")])
def test_keras_vgg_features(arrays, perceptual, inp, name):
  got = nchw(perceptual.module.apply(perceptual.variables(), nhwc(arrays[inp])))
  want = arrays[name]
  assert_close(got, want, atol=fwd_tol(want), what=name)


def test_detection(g):
  for key, fmt in [("encoder", "idinvert-encoder"), ("perceptual", "idinvert-vgg16")]:
    obj = converters.read_source(g.path(g.expected["files"][key]))
    assert converters.detect(obj) == fmt


def test_encoder_converter_refuses_truncated(g):
  obj = dict(converters.read_source(g.path(g.expected["files"]["encoder"])))
  obj.pop(next(k for k in obj if k.endswith("wscale2.bias")))
  with pytest.raises(converters.ConversionError, match="missing"):
    conv_idinvert.convert_encoder(obj)
