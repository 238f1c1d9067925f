"""PGGAN generator (Karras et al., ICLR 2018) in the genforce/mGANprior configuration.

The generator is a sequence of layers, indexed as mGANprior's ``get_gan_model``
Sequential indexes them (the intermediate toRGB layers removed)::

  k:      0        1        2        3     4        ...   2b       2b+1      n-1
  layer:  layer0   layer1   layer2   layer3  layer4 ...   layer2b  layer2b+1 output
          (dense   (conv    (up-conv (conv                 (up at    (conv)   (toRGB)
           4x4)     4x4)     8x8)     8x8)                  4*2^b)

``features(z, k)`` is the output of layers ``[0, k)`` (``k = 0``: z itself as a
``[B, 1, 1, z_dim]`` map) and ``render(f, k)`` runs layers ``[k, n)``, so
composing at layer ``k`` needs no model surgery. Activations are NHWC; the image
is NHWC in nominal [-1, 1], not clamped.

Parameters mirror the genforce state_dict: ``layer{i}/weight`` (HWIO; the
PyTorch ``layer{i}.conv.weight`` transposed, or the fused ``layer{i}.weight``
as stored) and ``layer{i}/bias`` (``layer{i}.wscale.bias``); ``output/weight``,
``output/bias`` for the final toRGB (``output{b_last}.*``).

References:
  Karras et al., Progressive Growing of GANs, https://arxiv.org/abs/1710.10196
  Gu, Shen, Zhou, Image Processing Using Multi-Code GAN Prior, https://arxiv.org/abs/1912.07116
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from jaxinv.models import layers as L
from jaxinv.models.layered import LayeredConfig, LayerIndexError
from jaxinv.ops import conv3x3

__all__ = ["PGGANConfig", "PGGANGenerator", "LayerIndexError", "prepare_variables", "PREPARED"]

# Flax collection of what the convolutions compute from the (frozen) weights alone.
PREPARED = "prepared"


@dataclasses.dataclass(frozen=True)
class PGGANConfig(LayeredConfig):
  """Architecture of a genforce PGGAN generator."""
  FAMILY = "PGGAN"
  resolution: int = 1024        # output size, a power of two in [8, 1024]
  z_dim: int = 512              # latent size (genforce z_space_dim)
  image_channels: int = 3       # output channels
  fused_scale: bool = False     # up-blocks use the fused transposed conv (TF "fused_scale")
  fmaps_base: int = 8192        # channels at resolution r: min(fmaps_base // r, fmaps_max)
  fmaps_max: int = 512
  # How the 3×3 convolutions run (jaxinv.ops.conv3x3.CONV_IMPLS): the same function, rounded
  # differently; "auto" is $JAXINV_CONV_IMPL, else "fast" on CPU and "direct" on accelerators.
  conv_impl: str = "auto"

  def __post_init__(self):
    if self.conv_impl not in conv3x3.CONV_IMPLS:
      raise ValueError(f"PGGAN conv_impl must be one of {conv3x3.CONV_IMPLS}, "
                       f"got {self.conv_impl!r}")
    r = self.resolution
    if r < 8 or r > 1024 or r & (r - 1):
      raise ValueError(f"PGGAN resolution must be a power of two in [8, 1024], got {r}")

  @property
  def num_blocks(self) -> int:
    """Resolution blocks 4, 8, ..., resolution."""
    return int(math.log2(self.resolution)) - 1

  @property
  def num_layers(self) -> int:
    """Length of the layer sequence (convs + final toRGB)."""
    return 2 * self.num_blocks + 1

  def channels_at(self, res: int) -> int:
    return min(self.fmaps_base // res, self.fmaps_max)

  def layer_names(self) -> list[str]:
    return [f"layer{i}" for i in range(2 * self.num_blocks)] + ["output"]

  def feature_shapes(self) -> list[tuple[int, int, int]]:
    """``(H, W, C)`` of what layer ``k`` receives, for ``k = 0 .. num_layers`` (last: the image)."""
    shapes = [(1, 1, self.z_dim)]
    for i in range(2 * self.num_blocks):
      res = 4 * 2 ** (i // 2)
      shapes.append((res, res, self.channels_at(res)))
    shapes.append((self.resolution, self.resolution, self.image_channels))
    return shapes


class _Block(nn.Module):
  """PixelNorm → (upsample) → conv → ×wscale + bias → lrelu (toRGB: 1×1, gain 1, linear)."""
  in_channels: int
  out_channels: int
  kind: str          # "dense4x4" | "conv" | "up_nearest" | "up_fused" | "torgb"
  conv_impl: str = "direct"

  @nn.compact
  def __call__(self, x):
    normal = nn.initializers.normal(1.0)
    x = L.pixel_norm(x)
    if self.kind == "torgb":
      w = self.param("weight", normal, (1, 1, self.in_channels, self.out_channels))
      b = self.param("bias", nn.initializers.zeros, (self.out_channels,))
      return L.conv2d(x, w * L.he_scale(self.in_channels, 1.0)) + b
    if self.kind == "dense4x4":
      w = self.param("weight", normal, (4, 4, self.in_channels, self.out_channels))
      z = x.reshape(x.shape[0], self.in_channels)
      scale = L.he_scale(16 * self.in_channels)
      # genforce applies a 4x4 conv with padding 3 to the 1x1 map: a dense layer whose
      # kernel is read spatially flipped; prepared as the [z_dim, 4·4·C] matrix.
      dense = self._prepared(lambda frozen: {"dense": (w[::-1, ::-1] * scale).transpose(
          2, 0, 1, 3).reshape(self.in_channels, 16 * self.out_channels)})["dense"]
      y = (z @ dense).reshape(z.shape[0], 4, 4, self.out_channels)
    elif self.kind == "up_fused":
      w = self.param("weight", normal, (3, 3, self.in_channels, self.out_channels))
      scale = L.he_scale(9 * self.in_channels)
      k = jnp.pad(w * scale, ((1, 1), (1, 1), (0, 0), (0, 0)))
      k = k[1:, 1:] + k[:-1, 1:] + k[1:, :-1] + k[:-1, :-1]
      y = L.conv_transpose2d_torch(x, k, stride=2, padding=1)
    else:
      w = self.param("weight", normal, (3, 3, self.in_channels, self.out_channels))
      w = w * L.he_scale(9 * self.in_channels)
      up = self.kind == "up_nearest"
      y = conv3x3.apply_prepared(x, self._prepared(
          lambda frozen: conv3x3.prepare(w, self.conv_impl, x.shape[1:3], up, frozen)), upsample=up)
    b = self.param("bias", nn.initializers.zeros, (self.out_channels,))
    return L.lrelu(y + b)

  def _prepared(self, make):
    """The kernel in the form the convolution runs on (:func:`jaxinv.ops.conv3x3.prepare`): from
    the ``"prepared"`` collection when given (see :func:`prepare_variables`), else made here (and
    stored when that collection is mutable: ``make(frozen=True)``, for a generator held fixed)."""
    if self.has_variable(PREPARED, "conv"):
      return self.get_variable(PREPARED, "conv")
    frozen = self.is_mutable_collection(PREPARED)
    prepared = make(frozen)
    if frozen:
      self.put_variable(PREPARED, "conv", prepared)
    return prepared


class PGGANGenerator(nn.Module):
  """PGGAN generator as a sequence of layers (see the module docstring).

  ``__call__(x, start, stop)`` runs layers ``[start, stop)``: with the defaults it
  maps z ``[B, z_dim]`` to the image ``[B, R, R, C]``.
  """
  config: PGGANConfig

  def setup(self):
    cfg = self.config
    blocks = {}
    for i in range(2 * cfg.num_blocks):
      res = 4 * 2 ** (i // 2)
      out_ch = cfg.channels_at(res)
      if i == 0:
        kind, in_ch = "dense4x4", cfg.z_dim
      elif i % 2 == 0:
        kind = "up_fused" if cfg.fused_scale else "up_nearest"
        in_ch = cfg.channels_at(res // 2)
      else:
        kind, in_ch = "conv", out_ch
      blocks[f"layer{i}"] = _Block(in_ch, out_ch, kind, cfg.conv_impl, name=f"layer{i}")
    blocks["output"] = _Block(cfg.channels_at(cfg.resolution), cfg.image_channels, "torgb",
                              name="output")
    self.blocks = [blocks[n] for n in cfg.layer_names()]

  def __call__(self, x: jax.Array, start: int = 0, stop: int | None = None) -> jax.Array:
    cfg = self.config
    stop = cfg.num_layers if stop is None else stop
    cfg.check_layer(start)
    cfg.check_layer(stop)
    if start == 0 and x.ndim == 2:
      x = x.reshape(x.shape[0], 1, 1, x.shape[1])
    for block in self.blocks[start:stop]:
      x = block(x)
    return x

  def features(self, z: jax.Array, layer: int) -> jax.Array:
    """Output of layers ``[0, layer)`` for z ``[B, z_dim]``."""
    return self(z, 0, layer)

  def render(self, features: jax.Array, layer: int) -> jax.Array:
    """Image from the features that layer ``layer`` receives."""
    return self(features, layer, None)


def prepare_variables(module: nn.Module, params) -> dict:
  """``{"params": params, "prepared": …}`` for ``module.apply``: every convolution's kernel already
  in the form its implementation runs on (Winograd-domain kernels, summed polyphase taps;
  :func:`jaxinv.ops.conv3x3.prepare`), so a loop over a frozen generator transforms them once
  instead of at every step. The same function of the weights as inline, so the same images;
  gradients with respect to ``params`` do not flow through prepared kernels."""
  prepared = _prepare_fn(module)(params)
  return {"params": params, PREPARED: prepared} if prepared else {"params": params}


@functools.lru_cache(maxsize=16)
def _prepare_fn(module):
  def prepare(params):
    z = jnp.zeros((1, module.config.z_dim), jax.tree_util.tree_leaves(params)[0].dtype)
    return module.apply({"params": params}, z, mutable=[PREPARED])[1].get(PREPARED, {})
  return jax.jit(prepare)     # only the kernels are returned: XLA drops the forward pass


def infer_config(shapes: dict[str, Sequence[int]]) -> PGGANConfig:
  """Infers the architecture from genforce state_dict shapes ``{key: shape}``."""
  out_idx = sorted(int(k[len("output"):].split(".")[0]) for k in shapes
                   if k.startswith("output") and k.endswith(".conv.weight"))
  if not out_idx or "layer0.conv.weight" not in shapes:
    raise ValueError("not a genforce PGGAN generator state_dict (no layer0.conv.weight / output*)")
  resolution = 4 * 2 ** out_idx[-1]
  z_dim = int(shapes["layer0.conv.weight"][1])
  image_channels = int(shapes[f"output{out_idx[-1]}.conv.weight"][0])
  fused = "layer2.weight" in shapes
  chans = {4 * 2 ** b: int(shapes[f"output{b}.conv.weight"][1]) for b in out_idx}
  fmaps_max = chans[4]
  fmaps_base = fmaps_max * resolution * 2  # channels never fall below the max
  for r in sorted(chans):
    if chans[r] < fmaps_max:
      fmaps_base = chans[r] * r
      break
  cfg = PGGANConfig(resolution=resolution, z_dim=z_dim, image_channels=image_channels,
                    fused_scale=fused, fmaps_base=fmaps_base, fmaps_max=fmaps_max)
  got = {r: cfg.channels_at(r) for r in chans}
  if got != chans:
    raise ValueError(f"PGGAN channel widths {chans} do not follow min(fmaps_base // r, fmaps_max)")
  return cfg
