"""DGP's candidate search: the best of ``select_num`` random z (and classes) by feature loss."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.models import biggan
from jaxinv.inversion.methods.dgp.degradations import target_of
from jaxinv.inversion.methods.dgp.objective import feature_loss

def _d_feats(D, d_params, x):
  return D.apply({"params": d_params}, x)[1]


def select_z(G, g_params, D, d_params, target: np.ndarray, candidates_z: np.ndarray,
             candidates_y: np.ndarray, mode: str, factor: int = 4, ftr_num: int = 3,
             batch: int = 16) -> tuple[int, np.ndarray]:
  """DGP's candidate search for one image: ``(argmin, losses [N])``.

  Each candidate ``G(z_c, shared(y_c))`` (``use_in=False``) goes through the *target* path
  (:func:`target_of`) and is scored with the ftr_num-3 feature loss against ``target``
  ``[H, W, 3]``. Draw candidates with :func:`draw_candidates`.
  """
  tf = features_fn(D)(d_params, jnp.asarray(target)[None])
  losses = []
  n = len(candidates_z)
  batch = min(batch, n)
  pad = -n % batch  # a full last batch: one compiled program for every chunk
  cz = np.concatenate([candidates_z, candidates_z[:1].repeat(pad, 0)])
  cy = np.concatenate([candidates_y, candidates_y[:1].repeat(pad, 0)])
  for i in range(0, len(cz), batch):
    x = np.asarray(generate_fn(G)(g_params, jnp.asarray(cz[i:i + batch]),
                              jnp.asarray(cy[i:i + batch], jnp.int32)))
    losses.append(np.asarray(_score_fn(D, ftr_num)(d_params, jnp.asarray(target_of(x, mode, factor)),
                                                   tf)))
  losses = np.concatenate(losses)[:n]
  return int(np.argmin(losses)), losses


@functools.lru_cache(maxsize=None)
def generate_fn(G):
  return jax.jit(lambda p, z, y: biggan.generate(G, p, z, y))


@functools.lru_cache(maxsize=None)
def features_fn(D):
  return jax.jit(lambda p, x: _d_feats(D, p, x))


@functools.lru_cache(maxsize=None)
def _score_fn(D, ftr_num):
  def score(p, xd, tf):
    feats = _d_feats(D, p, xd)
    return jax.vmap(lambda f: feature_loss([g[None] for g in f], tf, ftr_num))(feats)
  return jax.jit(score)


def draw_candidates(key: jax.Array, num: int, dim_z: int, std: float, y: int | None,
                    n_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """``num`` draws ``z ~ N(0, std^2)``; ``y`` fixed, or uniform over classes when None/negative.

  DGP's edge cases: ``num = 0`` gives z = 0; ``num = 1`` one N(0, 1) draw.
  """
  kz, ky = jax.random.split(key)
  if num == 0:
    z = np.zeros((1, dim_z), np.float32)
  else:
    z = np.asarray(jax.random.normal(kz, (num, dim_z))) * (1.0 if num == 1 else std)
  n = max(num, 1)
  if y is None or y < 0:
    ys = np.asarray(jax.random.randint(ky, (n,), 0, n_classes))
  else:
    ys = np.full((n,), y)
  return z.astype(np.float32), ys.astype(np.int32)
