"""The StyleGAN2 "resnet" discriminator in Hammer's format (PadInv's adversarial loss), NHWC.

``input{0}``: FromRGB 1x1 conv + lrelu*sqrt2 at the top resolution. Block ``i`` (resolution
``R / 2**i`` down to 8): ``layer{2i}`` 3x3 conv, ``layer{2i+1}`` 3x3 conv with x2 FIR
downsampling (blur pad 2, stride 2), both + bias, lrelu*sqrt2; ``residual{i}`` 1x1 conv
with x2 downsampling (blur pad 1, keep every 2nd) and no bias; the block returns
``(main + residual) * sqrt(0.5)``. Epilogue at 4x4: minibatch stddev (group
``min(mbstd_groups, B)``, one channel), ``layer{2n}`` 3x3 conv, ``layer{2n+1}`` dense on the
NCHW-flattened features, ``output`` dense to one logit. Equalized lr everywhere
(``gain / sqrt(fan_in)`` at run time). Params mirror the Hammer keys (kernels HWIO, dense
``[in, out]``, FIR ``filter [4, 4]``).

References:
  Karras et al., Analyzing and Improving the Image Quality of StyleGAN, https://arxiv.org/abs/1912.04958
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

from jaxinv.models import layers as L
from jaxinv.models.upfirdn import upfirdn2d
from jaxinv.ops.minibatch import minibatch_stddev

__all__ = ["PadInvDiscriminatorConfig", "PadInvDiscriminator", "infer_config"]

_SQRT2 = math.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class PadInvDiscriminatorConfig:
  """Architecture of Hammer's ``StyleGAN2Discriminator`` (resnet)."""
  resolution: int = 1024
  image_channels: int = 3
  fmaps_base: int = 32768      # channels at resolution r: min(fmaps_base // r, fmaps_max)
  fmaps_max: int = 512
  mbstd_groups: int = 4        # minibatch-stddev group size (min with the batch)

  def channels_at(self, res: int) -> int:
    return min(self.fmaps_base // res, self.fmaps_max)

  @property
  def num_blocks(self) -> int:
    return int(math.log2(self.resolution)) - 2


def infer_config(shapes: Mapping[str, tuple], **overrides) -> PadInvDiscriminatorConfig:
  n_res = sum(1 for k in shapes if re.fullmatch(r"residual\d+\.weight", k))
  res = 2 ** (n_res + 2)
  top = shapes["input0.weight"][0]
  c4 = shapes["output.weight"][1]
  cfg = dict(resolution=res, image_channels=shapes["input0.weight"][1],
             fmaps_base=top * res if top < c4 else c4 * res, fmaps_max=c4)
  cfg.update(overrides)
  return PadInvDiscriminatorConfig(**cfg)


class _Conv(nn.Module):
  cin: int
  cout: int
  k: int
  bias: bool = True
  down: bool = False

  @nn.compact
  def __call__(self, x, act=True):
    w = self.param("weight", nn.initializers.normal(1.0), (self.k, self.k, self.cin, self.cout))
    w = w * (1.0 / math.sqrt(self.cin * self.k * self.k))
    if self.down:
      f = self.param("filter", lambda *_: _fir(), (4, 4))
      if self.k == 1:
        x = upfirdn2d(x, f, down=2, pad=(1, 1, 1, 1))
        x = L.conv2d(x, w)
      else:
        x = upfirdn2d(x, f, pad=(2, 2, 2, 2))
        x = L.conv2d(x, w, stride=2)
    else:
      x = L.conv2d(x, w, padding=self.k // 2)
    if self.bias:
      x = x + self.param("bias", nn.initializers.zeros, (self.cout,))
    return L.lrelu(x) * _SQRT2 if act else x


class _Dense(nn.Module):
  cin: int
  cout: int

  @nn.compact
  def __call__(self, x, act=True):
    w = self.param("weight", nn.initializers.normal(1.0), (self.cin, self.cout))
    b = self.param("bias", nn.initializers.zeros, (self.cout,))
    x = x @ (w * (1.0 / math.sqrt(self.cin))) + b
    return L.lrelu(x) * _SQRT2 if act else x


def _fir():
  return jnp.outer(jnp.array([1., 3., 3., 1.]), jnp.array([1., 3., 3., 1.])) / 64.0


class PadInvDiscriminator(nn.Module):
  """``apply(v, image [B, R, R, 3]) -> logits [B, 1]``."""
  cfg: PadInvDiscriminatorConfig

  @nn.compact
  def __call__(self, image):
    c = self.cfg
    r = c.resolution
    x = _Conv(c.image_channels, c.channels_at(r), 1, name="input0")(image)
    for i in range(c.num_blocks):
      res = r // 2 ** i
      cin, cout = c.channels_at(res), c.channels_at(res // 2)
      skip = _Conv(cin, cout, 1, bias=False, down=True, name=f"residual{i}")(x, act=False)
      x = _Conv(cin, cin, 3, name=f"layer{2 * i}")(x)
      x = _Conv(cin, cout, 3, down=True, name=f"layer{2 * i + 1}")(x)
      x = (x + skip) * math.sqrt(0.5)
    n = 2 * c.num_blocks
    c4 = c.channels_at(4)
    x = minibatch_stddev(x, c.mbstd_groups)
    x = _Conv(c4 + 1, c4, 3, name=f"layer{n}")(x)
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)     # PyTorch's NCHW flatten
    x = _Dense(c4 * 16, c4, name=f"layer{n + 1}")(x)
    return _Dense(c4, 1, name="output")(x, act=False)
