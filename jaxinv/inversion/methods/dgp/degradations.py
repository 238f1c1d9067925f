"""DGP's degradations: the generator-path operator and the observed target of each mode."""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import tasks
from jaxinv.inversion.methods.dgp.schedule import DEGRADING_MODES

@functools.lru_cache(maxsize=None)
def degradation(mode: str, factor: int = 4) -> Callable[[jax.Array], jax.Array]:
  """DGP's generator-path ``pre_process`` (differentiable) for ``mode``; identity otherwise.

  Cached: the same callable for the same settings, so jitted programs are reused.
  """
  if mode in DEGRADING_MODES:
    return functools.partial(tasks.dgp_degrade, mode=mode, factor=factor)
  return _identity


def _identity(x):
  return x


def target_of(origin: np.ndarray, mode: str, factor: int = 4) -> np.ndarray:
  """DGP's observed-image path ``pre_process(target=True)`` on ``[B, H, W, 3]`` (NumPy).

  SR uses DGP's float32-floor + PIL Lanczos path (:func:`jaxinv.tasks.dgp_sr_target`), the
  other degrading modes their exact generator-path ops; reconstruction modes return ``origin``.
  """
  origin = np.asarray(origin, np.float32)
  if mode in ("SR",):
    return np.stack([tasks.dgp_sr_target(o, factor)[1] for o in origin]).astype(np.float32)
  if mode in DEGRADING_MODES:
    return np.asarray(tasks.dgp_degrade(jnp.asarray(origin), mode, factor))
  return origin
