"""The R1 gradient penalty on real images (Mescheder et al., 2018): one copy for the project.

  Mescheder, Geiger, Nowozin, Which Training Methods for GANs do actually Converge?,
  https://arxiv.org/abs/1801.04406
"""

import jax
import jax.numpy as jnp


def squared_grad_norms(score_fn, *inputs, has_aux: bool = False):
  """Per-example ``|∂ Σ score_fn(*inputs) / ∂ input_b|²`` summed over the inputs → ``[B]``.

  ``score_fn`` returns logits (any shape; they are summed, as every official R1 does, so a
  discriminator that couples the images of a batch — minibatch stddev — contributes its cross
  terms). Each input is ``[B, ...]``; with several inputs (a patch discriminator's two crops)
  their per-example squared norms add. ``has_aux``: ``score_fn`` returns ``(logits, aux)`` and
  the result is ``(norms, aux)``.
  """
  def total(*xs):
    out = score_fn(*xs)
    if has_aux:
      logits, aux = out
      return jnp.sum(logits), aux
    return jnp.sum(out)

  argnums = tuple(range(len(inputs)))
  grads = jax.grad(total, argnums=argnums, has_aux=has_aux)(*inputs)
  grads, aux = grads if has_aux else (grads, None)
  norms = sum(jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1) for g in grads)
  return (norms, aux) if has_aux else norms


def r1_penalty(d_fn, real, gamma: float):
  """``(γ/2) · mean_b |∂ Σ D(real) / ∂ real_b|²`` for ``d_fn(real [B, ...]) -> logits``."""
  return 0.5 * gamma * jnp.mean(squared_grad_norms(d_fn, real))
