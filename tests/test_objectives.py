"""The objectives' building blocks against their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import objectives


def _take_resize(x, size):
  # The definition: PyTorch's legacy nearest source indices, gathered along H then W.
  h, w = x.shape[-3], x.shape[-2]
  x = jnp.take(x, objectives.legacy_nearest_indices(h, size), axis=-3)
  return jnp.take(x, objectives.legacy_nearest_indices(w, size), axis=-2)


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
