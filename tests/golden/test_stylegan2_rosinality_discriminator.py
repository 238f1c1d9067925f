"""rosinality StyleGAN2 Discriminator (d) against stylegan2_rosinality/fixtures.npz."""

import jax
import numpy as np
import pytest

from jaxinv.converters import read_source, rosinality_stylegan2
from jaxinv.models import stylegan2
from tests.conftest import assert_close
from tests.golden._style_common import nchw


def nhwc(x):
  return np.transpose(np.asarray(x), (0, 2, 3, 1))


@pytest.fixture(scope="module")
def case(golden):
  g = golden("stylegan2_rosinality")
  ck = read_source(g.path(g.expected["checkpoint"]["file"]))
  conv = rosinality_stylegan2.convert(ck, part="d")
  d = stylegan2.StyleGAN2Discriminator(conv.config)
  v = {"params": conv.params}
  return g, ck, conv, d, v, g.npz("fixtures.npz")


def test_config_and_keys(case):
  g, ck, conv, *_ = case
  assert {k: list(v.shape) for k, v in ck["d"].items()} == g.expected["checkpoint"]["d"]
  ch = g.expected["config"]["channels"]
  assert conv.config.channels == tuple(ch[str(4 * 2 ** b)] for b in range(len(conv.config.channels)))
  assert conv.family == "stylegan2-discriminator"


def test_features_before_mbstd(case):
  *_, d, v, f = case
  feats = jax.jit(lambda x: d.apply(v, x, method=d.features))(nhwc(f["d_in_batch8"]))
  assert_close(nchw(feats), f["d_convs_out_batch8"], atol=1e-4, rtol=1e-5, what="D features")


@pytest.mark.parametrize("batch_key", ["d_out_batch8", "d_out_batch3", "d_out_batch1"])
def test_logits_minibatch_groups(case, batch_key):
  """Group size min(B, 4): batch 8 pairs samples (n, n+2, n+4, n+6), 3 and 1 are one group."""
  *_, d, v, f = case
  b = f[batch_key].shape[0]
  out = jax.jit(lambda x: d.apply(v, x))(nhwc(f["d_in_batch8"][:b]))
  assert_close(out, f[batch_key], atol=1e-5, rtol=1e-5, what=batch_key)


def test_on_generated_images(case):
  *_, d, v, f = case
  out = jax.jit(lambda x: d.apply(v, x))(nhwc(f["img_trunc1"]))
  assert_close(out, f["d_out_on_img_trunc1"], atol=1e-5, rtol=1e-5, what="D(G(z))")


def test_minibatch_stddev_rejects_bad_batch():
  x = np.zeros((6, 4, 4, 2), np.float32)
  with pytest.raises(ValueError, match="divisible"):
    stylegan2.minibatch_stddev(x, 4)
