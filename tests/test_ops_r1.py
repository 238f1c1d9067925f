"""The one R1 penalty (jaxinv.ops.r1) against hand-derived gradients."""

import jax.numpy as jnp
import numpy as np

from jaxinv.ops.r1 import r1_penalty, squared_grad_norms

# Float32 sums of a few dozen terms of size ~1-10: relative rounding ~1e-7 per term, so 1e-5
# relative covers any summation order with a wide margin.
RTOL = 1e-5


def _batch(seed, shape):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_r1_penalty_sums_the_batch_so_coupled_logits_count():
  # D(x)_b = Σ w·x_b² + c·Σ mean_batch(x): the second term couples the images (as minibatch
  # stddev does). ∂ Σ_b D(x)_b / ∂x_b = 2 w x_b + c (the coupling term appears B times with 1/B).
  x = _batch(0, (3, 4, 4, 2))
  w = _batch(1, (4, 4, 2))
  c, gamma = 0.7, 10.0
  d_fn = lambda v: (jnp.sum(w * v * v, axis=(1, 2, 3))                  # noqa: E731
                    + c * jnp.sum(jnp.mean(v, axis=0)))
  grad = 2.0 * w.astype(np.float64) * x + c
  want_norms = np.sum(grad ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(np.asarray(squared_grad_norms(d_fn, jnp.asarray(x))), want_norms,
                             rtol=RTOL)
  np.testing.assert_allclose(float(r1_penalty(d_fn, jnp.asarray(x), gamma)),
                             0.5 * gamma * want_norms.mean(), rtol=RTOL)


def test_squared_grad_norms_adds_the_inputs_and_returns_aux():
  # Q(a, b) = Σ a·b per example (a patch discriminator's two crops): ∂/∂a = b, ∂/∂b = a.
  a, b = _batch(2, (2, 3, 5)), _batch(3, (2, 3, 5))
  def q(a, b):
    logits = jnp.sum(a * b, axis=(1, 2))
    return logits, logits
  norms, aux = squared_grad_norms(q, jnp.asarray(a), jnp.asarray(b), has_aux=True)
  a64, b64 = a.astype(np.float64), b.astype(np.float64)
  np.testing.assert_allclose(np.asarray(norms), np.sum(a64 ** 2 + b64 ** 2, axis=(1, 2)), rtol=RTOL)
  np.testing.assert_allclose(np.asarray(aux), np.sum(a64 * b64, axis=(1, 2)), rtol=RTOL)
