"""The domain-guided encoder of In-Domain GAN inversion (genforce ``StyleGANEncoderNet``).

An image ``[B, R, R, 3]`` (NHWC, [-1, 1]) is mapped to a w+ code ``[B, L, w_dim]``
in one forward pass. ``log2(R)`` blocks::

  block0            3x3 conv (no bias, no scale) -> BN -> lrelu 0.2          R
  block1..n-2       2x2 average pool, then a residual block                 R/2 ... 4
  block{n-1}        flatten (in NCHW order, as torch's ``view``) -> FC
                    (no bias, x 1/sqrt(in)) -> BN                           [B, L*w_dim]

Residual block: shortcut = 1x1 conv (no bias, no scale) -> BN -> lrelu when the
channel count changes, identity otherwise; main path = conv1 (3x3, in -> hidden)
then conv2 (3x3, hidden -> out), ``hidden = min(in, out)``, each followed by a bias
(the released ``WScaleLayer``; its divide-then-multiply by the he-scale is a no-op
and is dropped), BN and lrelu. Output = main + shortcut (not rescaled).

Batch norm (eps 1e-5) multiplies by the stored ``weight`` (gamma; 1 in released
files, frozen in training) and adds ``bias``. With ``train=False`` it uses the
stored running statistics (the official code must run in eval mode). With
``train=True`` it uses batch statistics, all-reduced over ``axis_name`` when
given (synchronised batch norm), and writes them to the ``bn_stats`` collection
(same paths as the params, leaves ``mean`` and ``var``) so a training step can
update the running averages: call ``apply(..., train=True, mutable=["bn_stats"])``.

Params mirror the genforce state_dict: ``block{i}/conv/weight`` (HWIO),
``block{i}/bn/{weight,bias,running_mean,running_var}``, ``block{i}/conv1/weight``,
``block{i}/wscale1/bias``, ``block{i}/bn1/...``, ``conv2``/``wscale2``/``bn2``,
``block{n-1}/fc/weight`` ([in, out], in = C*4*4 in NCHW flatten order).

References:
  Zhu, Shen, Zhao, Zhou, In-Domain GAN Inversion for Real Image Editing, ECCV 2020,
  https://arxiv.org/abs/2004.00049
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxinv.models import layers as L

__all__ = ["EncoderConfig", "IDInvertEncoder", "infer_config", "avg_pool_2x2", "BN_EPS"]

BN_EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Architecture of a ``StyleGANEncoderNet``."""
  resolution: int = 256          # input size R (power of two, >= 8); log2(R) blocks
  num_layers: int = 14           # L, the w+ layers of the generator it inverts
  w_dim: int = 512               # w_space_dim
  image_channels: int = 3
  channels_base: int = 64        # channels of block0; doubled each block ...
  channels_max: int = 1024       # ... up to this cap

  def __post_init__(self):
    r = self.resolution
    if r < 8 or r & (r - 1):
      raise ValueError(f"encoder resolution must be a power of two >= 8, got {r}")

  @property
  def num_blocks(self) -> int:
    return int(math.log2(self.resolution))

  def channels(self, i: int) -> int:
    """Output channels of conv block ``i`` (``0 <= i < num_blocks - 1``)."""
    return min(self.channels_base * 2 ** i, self.channels_max)

  @property
  def code_shape(self) -> tuple[int, int]:
    return (self.num_layers, self.w_dim)


def infer_config(shapes: Mapping[str, tuple], num_layers: int | None = None) -> EncoderConfig:
  """The architecture from a state_dict's ``{key: shape}``.

  Args:
    shapes: torch keys → shapes.
    num_layers: L; the FC width is ``L * w_dim`` and only the product is stored,
      so one of them must be known. Default: the genforce rule for a StyleGAN of
      the same resolution, ``L = 2 * log2(R) - 2``.
  """
  blocks = sorted({int(m.group(1)) for k in shapes if (m := re.match(r"block(\d+)\.", k))})
  if not blocks or blocks != list(range(len(blocks))):
    raise ValueError(f"encoder blocks {blocks} are not block0..block{{n-1}}")
  n = len(blocks)
  resolution = 2 ** n
  last = n - 1
  fc = shapes.get(f"block{last}.fc.weight")
  if fc is None:
    raise ValueError(f"block{last}.fc.weight missing")
  c0 = shapes["block0.conv.weight"][0]
  chans = [c0]
  for i in range(1, last):
    w = shapes.get(f"block{i}.conv2.weight")
    if w is None:
      raise ValueError(f"block{i}.conv2.weight missing")
    chans.append(w[0])
  cmax = max(chans)
  if fc[1] != chans[-1] * 16:
    raise ValueError(f"block{last}.fc.weight {fc} does not take {chans[-1]}x4x4 features")
  L_ = num_layers if num_layers is not None else 2 * n - 2
  if fc[0] % L_:
    raise ValueError(f"FC width {fc[0]} is not a multiple of num_layers {L_}")
  cfg = EncoderConfig(resolution=resolution, num_layers=L_, w_dim=fc[0] // L_,
                      image_channels=shapes["block0.conv.weight"][1], channels_base=c0,
                      channels_max=cmax)
  got = [cfg.channels(i) for i in range(last)]
  if got != chans:
    raise ValueError(f"block channels {chans} do not follow base {c0} doubling to max {cmax}")
  return cfg


def avg_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 average pooling, stride 2, of NHWC."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class BatchNorm(nn.Module):
  """Torch ``BatchNorm`` (eps 1e-5) over the last axis; see the module docstring."""
  features: int
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    gamma = self.param("weight", nn.initializers.ones, (self.features,))
    beta = self.param("bias", nn.initializers.zeros, (self.features,))
    rmean = self.param("running_mean", nn.initializers.zeros, (self.features,))
    rvar = self.param("running_var", nn.initializers.ones, (self.features,))
    if train:
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(x, axes)
      meansq = jnp.mean(jnp.square(x), axes)
      if self.axis_name is not None:
        mean, meansq = lax.pmean((mean, meansq), self.axis_name)
      var = jnp.maximum(meansq - jnp.square(mean), 0.0)
      self.put_variable("bn_stats", "mean", lax.stop_gradient(mean))
      self.put_variable("bn_stats", "var", lax.stop_gradient(var))
    else:
      mean, var = rmean, rvar
    return (x - mean) * lax.rsqrt(var + BN_EPS) * gamma + beta


class _Conv(nn.Module):
  cin: int
  cout: int
  k: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0 / math.sqrt(self.cin * self.k ** 2)),
                   (self.k, self.k, self.cin, self.cout))
    return L.conv2d(x, w, padding=self.k // 2)


class _Bias(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return x + self.param("bias", nn.initializers.zeros, (self.features,))


class _FirstBlock(nn.Module):
  cin: int
  cout: int
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train):
    x = _Conv(self.cin, self.cout, 3, name="conv")(x)
    return L.lrelu(BatchNorm(self.cout, self.axis_name, name="bn")(x, train))


class _ResBlock(nn.Module):
  cin: int
  cout: int
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train):
    if self.cin != self.cout:
      s = _Conv(self.cin, self.cout, 1, name="conv")(x)
      s = L.lrelu(BatchNorm(self.cout, self.axis_name, name="bn")(s, train))
    else:
      s = x
    hidden = min(self.cin, self.cout)
    y = _Conv(self.cin, hidden, 3, name="conv1")(x)
    y = _Bias(hidden, name="wscale1")(y)
    y = L.lrelu(BatchNorm(hidden, self.axis_name, name="bn1")(y, train))
    y = _Conv(hidden, self.cout, 3, name="conv2")(y)
    y = _Bias(self.cout, name="wscale2")(y)
    y = L.lrelu(BatchNorm(self.cout, self.axis_name, name="bn2")(y, train))
    return y + s


class _LastBlock(nn.Module):
  cin: int        # C * 4 * 4
  cout: int       # L * w_dim
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train):
    b = x.shape[0]
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(b, -1)    # torch's view(B, -1) of NCHW
    x = _FC(self.cin, self.cout, name="fc")(x)
    return BatchNorm(self.cout, self.axis_name, name="bn")(x, train)


class _FC(nn.Module):
  cin: int
  cout: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (self.cin, self.cout))
    return (x @ w) * (1.0 / math.sqrt(self.cin))


class IDInvertEncoder(nn.Module):
  """``x [B, R, R, C]`` in [-1, 1] → w+ code ``[B, L, w_dim]``.

  ``__call__(x, train=False, stop=None)``: ``stop=k`` returns the output of
  ``block{k-1}`` instead (NHWC, or ``[B, L*w_dim]`` for the last block), for
  per-block checks.
  """
  config: EncoderConfig
  axis_name: str | None = None     # mesh axis for synchronised batch norm in training

  def setup(self):
    cfg = self.config
    n = cfg.num_blocks
    blocks = [_FirstBlock(cfg.image_channels, cfg.channels(0), self.axis_name, name="block0")]
    for i in range(1, n - 1):
      blocks.append(_ResBlock(cfg.channels(i - 1), cfg.channels(i), self.axis_name,
                              name=f"block{i}"))
    blocks.append(_LastBlock(cfg.channels(n - 2) * 16, cfg.num_layers * cfg.w_dim,
                             self.axis_name, name=f"block{n - 1}"))
    self.blocks = blocks

  def __call__(self, x, train: bool = False, stop: int | None = None):
    cfg = self.config
    chex.assert_shape(x, (None, cfg.resolution, cfg.resolution, cfg.image_channels))
    n = cfg.num_blocks
    if stop is not None and not 1 <= stop <= n:
      raise ValueError(f"stop must be in [1, {n}], got {stop}")
    for i in range(n if stop is None else stop):
      if 1 <= i <= n - 2:
        x = avg_pool_2x2(x)
      x = self.blocks[i](x, train)
    if stop is None:
      x = x.reshape(x.shape[0], cfg.num_layers, cfg.w_dim)
    return x
