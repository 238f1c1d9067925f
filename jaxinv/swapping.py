"""Using a Swapping Autoencoder: encode, swap every structure/texture pair, interpolate textures, masked transfer.

Images are NHWC float32 in [-1, 1]. A :class:`Swapper` wraps a loaded
``swapping_autoencoder`` model with jit-compiled, fixed-batch encode/decode
functions (the last chunk is padded, so a run compiles each function once).

Noise modes: ``"fixed"`` (one noise map per layer drawn from ``seed`` and shared by
every image, as the official ``fix_noise``; or the maps given in ``fixed_noise``),
``"zero"`` (no noise) and ``"random"`` (independent per image, from ``seed``).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.models import swapping_autoencoder as sae

__all__ = ["Swapper", "load_images", "to_uint8", "interp_codes", "NOISE_MODES"]

NOISE_MODES = ("fixed", "zero", "random")


def load_images(paths: Sequence[str], size: int) -> np.ndarray:
  """Image files (or TFDS examples) → ``[N, size, size, 3]`` float32 in [-1, 1].

  The official test-time transform for square crops: a PIL bicubic resize of the
  whole image to ``size`` x ``size``, then ``u8 / 127.5 - 1``.
  """
  from jaxinv.io.images import load_resized_uint8
  u8 = np.stack([load_resized_uint8(p, size) for p in paths])
  return (u8.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def load_mask(path: str, size: int) -> np.ndarray:
  """A grayscale mask file → ``[size, size, 1]`` in [0, 1] (white = where the texture is transferred)."""
  from PIL import Image
  from jaxinv.io.images import open_image
  with open_image(path) as im:
    im = im.convert("L").resize((size, size), Image.BILINEAR)
    return (np.asarray(im, np.float32) / 255.0)[:, :, None]


def to_uint8(x) -> np.ndarray:
  """[-1, 1] → uint8 as the official evaluator writes PNGs: clamp, ``(x+1)/2*255``, truncate."""
  x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
  return ((x + 1.0) / 2.0 * 255.0).astype(np.uint8)


def interp_codes(a: jax.Array, b: jax.Array, alphas: Sequence[float]) -> jax.Array:
  """Plain linear interpolation of (normalised) texture codes ``a*(1-alpha) + b*alpha`` → ``[K, Ct]``.

  The official ``SimpleSwappingEvaluator`` recipe (not slerp; G re-normalises).
  """
  al = jnp.asarray(alphas, jnp.float32)[:, None]
  return a[None] * (1.0 - al) + b[None] * al


@dataclasses.dataclass
class Swapper:
  """Batched encode / decode for a loaded ``swapping_autoencoder`` model.

  Args:
    model: :class:`jaxinv.models.registry.Model` of family ``swapping_autoencoder``.
    batch: images per compiled call.
    noise: one of :data:`NOISE_MODES`.
    seed: key for the fixed / random noise.
    fixed_noise: optional ``{layer: [1, h, w, 1]}`` maps for ``noise="fixed"``.
  """
  model: object
  batch: int = 8
  noise: str = "fixed"
  seed: int = 0
  fixed_noise: Mapping | None = None

  def __post_init__(self):
    if self.noise not in NOISE_MODES:
      raise ValueError(f"noise mode {self.noise!r}; choose one of {NOISE_MODES}")
    self.config: sae.SAEConfig = self.model.config
    p = self.model.params
    self._pE, self._pG = p["E"], p["G"]
    E, G = sae.Encoder(self.config), sae.Generator(self.config)
    self._enc = jax.jit(lambda p, x: E.apply({"params": p}, x))
    self._dec = jax.jit(lambda p, s, t, n: G.apply({"params": p}, s, t, n))
    self._calls = 0

  def _noise(self, code_hw, n):
    cfg = self.config
    if self.noise == "zero":
      return None
    if self.noise == "fixed":
      if self.fixed_noise is not None:
        return sae.make_noise(cfg, code_hw, "fixed", fixed=self.fixed_noise)
      return sae.make_noise(cfg, code_hw, "random", jax.random.key(self.seed), batch=1)
    self._calls += 1
    key = jax.random.fold_in(jax.random.key(self.seed), self._calls)
    return sae.make_noise(cfg, code_hw, "random", key, batch=n)

  def _chunks(self, fn, *arrays):
    n = arrays[0].shape[0]
    outs = []
    for i in range(0, n, self.batch):
      parts = [a[i:i + self.batch] for a in arrays]
      m = parts[0].shape[0]
      if m < self.batch:
        parts = [jnp.concatenate([a, jnp.repeat(a[-1:], self.batch - m, 0)]) for a in parts]
      out = fn(*parts)
      outs.append(jax.tree_util.tree_map(lambda o: np.asarray(o[:m]), out))
    return jax.tree_util.tree_map(lambda *o: np.concatenate(o), *outs)

  def encode(self, images) -> tuple[np.ndarray, np.ndarray]:
    """``[N, H, W, 3]`` → (structure ``[N, h, w, Cs]``, texture ``[N, Ct]``)."""
    images = jnp.asarray(images, jnp.float32)
    return self._chunks(lambda x: self._enc(self._pE, x), images)

  def decode(self, structure, texture) -> np.ndarray:
    """Codes (paired along axis 0) → images ``[N, H, W, 3]``."""
    structure, texture = jnp.asarray(structure), jnp.asarray(texture)
    hw = structure.shape[1:3]
    return self._chunks(lambda s, t: self._dec(self._pG, s, t, self._noise(hw, self.batch)),
                        structure, texture)

  def swap_all(self, structure_images, texture_images) -> np.ndarray:
    """Every pair: ``out[i, j]`` = structure of image i with the texture of image j → ``[S, T, H, W, 3]``."""
    sp, _ = self.encode(structure_images)
    _, tex = self.encode(texture_images)
    s, t = sp.shape[0], tex.shape[0]
    out = self.decode(np.repeat(sp, t, 0), np.tile(tex, (s, 1)))
    return out.reshape((s, t) + out.shape[1:])

  def interpolate(self, structure_images, texture_images, k: int) -> np.ndarray:
    """Strips ``[S, T, K, H, W, 3]``: structure i, texture moving from its own (alpha 0) to image j's (alpha 1)."""
    if k < 2:
      raise ValueError("interpolation needs at least 2 steps")
    sp, own = self.encode(structure_images)
    _, tex = self.encode(texture_images)
    alphas = np.linspace(0.0, 1.0, k)
    s, t = sp.shape[0], tex.shape[0]
    codes = np.stack([np.asarray(interp_codes(own[i], tex[j], alphas))
                      for i in range(s) for j in range(t)]).reshape(s * t * k, -1)
    out = self.decode(np.repeat(sp, t * k, 0), codes)
    return out.reshape((s, t, k) + out.shape[1:])

  def masked_swap(self, structure_images, texture_images, mask) -> np.ndarray:
    """Region-limited transfer ``[S, T, H, W, 3]``: texture j inside ``mask``, image i's own texture outside.

    G's texture code is global, so the two decodings (own texture, texture j; same
    structure and noise) are blended by the mask ``[H, W, 1]`` in [0, 1].
    """
    swapped = self.swap_all(structure_images, texture_images)
    sp, own = self.encode(structure_images)
    rec = self.decode(sp, own)
    m = np.asarray(mask, np.float32)[None, None]
    return m * swapped + (1.0 - m) * rec[:, None]
