"""The opt-in bf16 compute mode: float32 in and out, close to float32, default path unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import objectives, spaces
from tests.golden.mganprior_common import converted


@pytest.fixture(scope="module")
def gen(golden, tmp_path_factory):
  return converted(golden, tmp_path_factory, "pggan")


def test_bf16_render_is_close_and_float32(gen, golden):
  layer = gen.config.num_layers // 2
  f32 = spaces.MultiCode(gen.module, layer, 3)
  bf16 = spaces.MultiCode(gen.module, layer, 3, compute_dtype="bfloat16")
  v = jax.tree_util.tree_map(lambda x: x[0], f32.init(jax.random.PRNGKey(0), 1))
  a = jax.jit(f32.render)(v, gen.params)     # jit: eager dispatch compiles every primitive
  b = jax.jit(bf16.render)(v, gen.params)
  assert a.dtype == b.dtype == jnp.float32
  rel = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
  assert 0 < rel < 0.1, rel   # bf16: 8-bit mantissa, errors compound over the layers (5.2e-2 seen)
  g = jax.jit(jax.grad(lambda v: jnp.sum(bf16.render(v, gen.params))))(v)
  assert g["z"].dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g["z"])))


def test_unknown_compute_dtype_is_refused(gen):
  with pytest.raises(ValueError, match="compute_dtype"):
    spaces.MultiCode(gen.module, 2, 2, compute_dtype="float16")


def test_vgg_bf16_features_are_float32():
  from jaxinv.models import vgg as vgg_lib
  params = jax.jit(vgg_lib.VGG16Features(4).init)(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))["params"]
  x = jax.random.uniform(jax.random.PRNGKey(1), (8, 8, 3), minval=-1, maxval=1)
  cfg = objectives.VGGLossConfig(num_modules=4, size=8)
  bf_cfg = objectives.VGGLossConfig(num_modules=4, size=8, compute_dtype="bfloat16")
  f32 = jax.jit(lambda p, x: objectives.vgg_features(p, x, cfg))(params, x)
  bf = jax.jit(lambda p, x: objectives.vgg_features(p, x, bf_cfg))(params, x)
  assert bf.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(bf), np.asarray(f32), rtol=0.05, atol=0.05 * float(jnp.max(f32)))


def test_mganprior_method_runs_bf16_through_the_driver(gen):
  """The method spec carries the compute mode (sweeps' ``compute_dtype``): same shapes, float32
  results, losses within bf16's error of float32's (rel. < 0.1, as the render above) but not equal."""
  from jaxinv.inversion import run
  from jaxinv.inversion.methods import mganprior
  res = gen.config.resolution
  cfg = mganprior.MGANpriorConfig(codes=2, layer=gen.config.num_layers // 2, steps=2,
                                  loss=objectives.LossConfig(loss="mse"), optimizer="adam", lr=0.01)
  obs = np.random.RandomState(0).uniform(-1, 1, (2, res, res, 3)).astype(np.float32)
  out = {}
  for dtype in ("float32", "bfloat16"):
    m = mganprior.Method(gen.module, gen.params, cfg, compute_dtype=dtype)
    out[dtype] = run.run(m, ["a", "b"], lambda idx: {"observation": obs[idx]}, seed=0, batch=2,
                         progress=False)
    assert out[dtype].arrays["z"].dtype == np.float32
  a, b = out["float32"].stepwise["loss"], out["bfloat16"].stepwise["loss"]
  assert not np.array_equal(a, b) and np.max(np.abs(a - b) / np.abs(a)) < 0.1
