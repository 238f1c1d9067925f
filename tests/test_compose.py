"""mGANprior's composition ``(1/N) Σ_n alpha_n ⊙ F_n`` and its hand-written gradient."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.inversion import spaces

# float32 against float64 on values of order 1: N = 7 products summed, then scaled; the sums'
# rounding is a few ulps (1.2e-7 each) of the largest partial sum (~10). 1e-5 holds them with
# room and fails any misplaced code or channel (errors of order 1).
ATOL = 1e-5


def test_compose_value_and_gradients_under_vmap():
  k = jax.random.split(jax.random.PRNGKey(0), 3)
  features = jax.random.normal(k[0], (2, 7, 3, 5, 4))          # [images, N, H, W, C]
  alpha = jax.random.normal(k[1], (2, 7, 4))
  weights = jax.random.normal(k[2], (2, 1, 3, 5, 4))

  def loss(features, alpha):
    return jnp.sum(jax.vmap(spaces.compose)(features, alpha) * weights)

  value, (d_features, d_alpha) = jax.jit(jax.value_and_grad(loss, (0, 1)))(features, alpha)
  f, a, w = (np.asarray(x, np.float64) for x in (features, alpha, weights))
  n = f.shape[1]
  composed = (f * a[:, :, None, None, :]).sum(1, keepdims=True) / n
  np.testing.assert_allclose(value, (composed * w).sum(), atol=ATOL * composed.size)
  np.testing.assert_allclose(d_features, np.broadcast_to(w * a[:, :, None, None, :] / n, f.shape),
                             atol=ATOL)
  np.testing.assert_allclose(d_alpha, (f * w).sum((2, 3)) / n, atol=ATOL)
