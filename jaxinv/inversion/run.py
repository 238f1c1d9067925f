"""What every method's run shares: each image's randomness from its identity.

An image's key is derived from the run's seed and the image's *name* (its file stem, or the dataset
example id), never from its position in the list, the batch it falls in or the number of devices,
so adding a file to a folder, reordering it or changing ``--batch`` leaves every other image's
numbers unchanged.
"""

import zlib
from typing import Sequence

import numpy as np


def identity_of(name: str) -> np.uint32:
  """A stable 32-bit identity of an image name (CRC-32 of its UTF-8 bytes)."""
  return np.uint32(zlib.crc32(str(name).encode("utf-8")))


def image_key(seed: int, name: str, stream: int = 0):
  """The raw (``PRNGKey``-style) key of one image: ``fold_in(fold_in(PRNGKey(seed), stream), id)``.

  ``stream`` separates independent uses of randomness (initial codes, observation noise, …).
  """
  import jax
  key = jax.random.PRNGKey(seed)
  if stream:
    key = jax.random.fold_in(key, stream)
  return jax.random.fold_in(key, identity_of(name))


def image_keys(seed: int, names: Sequence[str], stream: int = 0):
  """``[B, 2]`` raw keys, one per name (see :func:`image_key`)."""
  import jax.numpy as jnp
  return jnp.stack([image_key(seed, n, stream) for n in names])


def describe(seed: int, stream: int = 0) -> str:
  """How a run's per-image keys are made, for ``config.json``."""
  base = f"PRNGKey({seed})" if not stream else f"fold_in(PRNGKey({seed}), {stream})"
  return f"fold_in({base}, crc32(image name))"
