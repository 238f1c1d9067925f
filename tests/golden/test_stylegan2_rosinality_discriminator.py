"""rosinality StyleGAN2 Discriminator (d) against stylegan2_rosinality/fixtures.npz."""

import jax
import numpy as np
import pytest

from jaxinv.converters import read_source, rosinality_stylegan2
from jaxinv.models import stylegan2
from tests.conftest import MISSING_FIXTURE, assert_close, npz_keys_at_collection
from tests.golden._style_common import nchw

# README "Verification done": an independent JAX port matched D at batch 8/3 to 1.1e-6 relative; its
# suggested port tolerance is rtol 1e-5. Logits are O(1) sums over a 4x4xC feature map, so atol 1e-5
# covers logits near zero; the features (before minibatch-stddev, up to ~10) take atol 1e-4.


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


def _input_key(f):
  """The D input batch (``d_in_batch<B>``); smaller batches are its first rows."""
  (key,) = [k for k in f.files if k.startswith("d_in_batch")]
  return key


def test_features_before_mbstd(case):
  *_, d, v, f = case
  feats = jax.jit(lambda x: d.apply(v, x, method=d.features))(nhwc(f[_input_key(f)]))
  assert_close(nchw(feats), f[_input_key(f).replace("d_in_", "d_convs_out_")], atol=1e-4, rtol=1e-5, what="D features")


@pytest.mark.parametrize("batch_key", [k for k in npz_keys_at_collection("stylegan2_rosinality", "fixtures.npz")
                                       or [MISSING_FIXTURE] if k.startswith("d_out_batch") or k == MISSING_FIXTURE])
def test_logits_minibatch_groups(case, batch_key):
  """Group size min(B, 4): batch 8 pairs samples (n, n+2, n+4, n+6), 3 and 1 are one group."""
  *_, d, v, f = case
  b = f[batch_key].shape[0]
  out = jax.jit(lambda x: d.apply(v, x))(nhwc(f[_input_key(f)][:b]))
  assert_close(out, f[batch_key], atol=1e-5, rtol=1e-5, what=batch_key)


def test_on_generated_images(case):
  *_, d, v, f = case
  out = jax.jit(lambda x: d.apply(v, x))(nhwc(f["img_trunc1"]))
  assert_close(out, f["d_out_on_img_trunc1"], atol=1e-5, rtol=1e-5, what="D(G(z))")


def test_minibatch_stddev_rejects_bad_batch():
  x = np.zeros((6, 4, 4, 2), np.float32)
  with pytest.raises(ValueError, match="divisible"):
    stylegan2.minibatch_stddev(x, 4)
