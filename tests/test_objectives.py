"""The objectives' building blocks against their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import objectives
from jaxinv.ops.resize import nearest_indices


def _take_resize(x, size):
  # The definition: PyTorch's legacy nearest source indices, gathered along H then W.
  h, w = x.shape[-3], x.shape[-2]
  x = jnp.take(x, nearest_indices(h, size), axis=-3)
  return jnp.take(x, nearest_indices(w, size), axis=-2)


@pytest.mark.parametrize("h,w,size", [(32, 32, 64), (64, 64, 256), (256, 256, 64), (64, 48, 256),
                                      (30, 40, 64), (48, 48, 256)])
def test_nearest_resize_equals_the_gather_bit_for_bit(h, w, size):
  # Whole-number factors take the repeat / strided-slice path, others the gather; all are the
  # same selection, so values and input gradients are equal exactly (each output has one source).
  rng = np.random.RandomState(h + w + size)
  x = jnp.asarray(rng.randn(2, h, w, 3).astype(np.float32))
  g = jnp.asarray(rng.randn(2, size, size, 3).astype(np.float32))
  np.testing.assert_array_equal(objectives.nearest_resize_legacy(x, size), _take_resize(x, size))
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x, size) * g))(x)
  np.testing.assert_array_equal(grad(objectives.nearest_resize_legacy), grad(_take_resize))
  # Under vmap as the loop runs it.
  np.testing.assert_array_equal(jax.vmap(lambda x: objectives.nearest_resize_legacy(x, size))(x),
                                _take_resize(x, size))


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 9, 2)])
def test_vgg_max_pool_equals_reduce_window_with_first_max_gradient(shape):
  from jax import lax
  from jaxinv.models import vgg
  rng = np.random.RandomState(sum(shape))
  # ReLU-like input with exact ties (zeros, and a repeated positive value) inside windows.
  x = np.maximum(rng.randn(*shape).astype(np.float32), 0)
  x[:, 0, 1] = x[:, 0, 0] = np.abs(x[:, 0, 0]) + 1
  x = jnp.asarray(x)
  ref_pool = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  y = vgg.max_pool_2x2(x)
  np.testing.assert_array_equal(y, ref_pool(x))
  g = jnp.asarray(rng.randn(*y.shape).astype(np.float32))
  grad = lambda f: jax.vjp(f, x)[1](g)[0]
  np.testing.assert_array_equal(grad(vgg.max_pool_2x2), grad(ref_pool))
  vmapped = jax.vmap(lambda xi: jax.vjp(vgg.max_pool_2x2, xi)[1](g)[0])(x[None])
  np.testing.assert_array_equal(vmapped, grad(ref_pool)[None])
