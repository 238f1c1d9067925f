"""scikit-learn's handwritten digits (1,797 real 8×8 scans) as a 32×32 RGB training set.

``load_split`` needs scikit-learn (training and tests only); ``to_images`` does
not, so the bundled demo can upsample the held-out digits it ships.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_split", "to_images"]


def load_split(seed: int, n_test: int) -> dict:
  """The fixed train/test split: ``{"x8": [1797, 8, 8] uint8 in 0..16, "labels", "train_idx",
  "test_idx"}`` with ``test_idx`` the first ``n_test`` entries of a ``RandomState(seed)``
  permutation (sorted) and ``train_idx`` the rest."""
  from sklearn.datasets import load_digits
  d = load_digits()
  x8 = d.images.astype(np.uint8)
  perm = np.random.RandomState(seed).permutation(len(x8))
  return {"x8": x8, "labels": d.target.astype(np.int64),
          "test_idx": np.sort(perm[:n_test]), "train_idx": np.sort(perm[n_test:])}


def to_images(x8: np.ndarray, resolution: int = 32, channels: int = 3) -> np.ndarray:
  """``[B, 8, 8]`` values 0..16 → ``[B, R, R, C]`` float32 NHWC in [-1, 1].

  Bicubic upsampling (``jax.image.resize``), clipped to [-1, 1]; the gray value
  is replicated over ``channels``.
  """
  import jax
  x = np.asarray(x8, np.float32) / 16.0 * 2.0 - 1.0
  b = x.shape[0]
  up = jax.image.resize(x[..., None], (b, resolution, resolution, 1), method="cubic")
  up = np.clip(np.asarray(up), -1.0, 1.0)
  return np.repeat(up, channels, axis=-1).astype(np.float32)
