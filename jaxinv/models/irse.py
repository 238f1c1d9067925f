"""PadInv's encoder: IR-SE-50 backbone + FPN, w+ heads and padding-map heads (NHWC, inference BN).

Given an image ``[B, R, R, 3]`` in [-1, 1] the encoder returns

* ``wp [B, n_latents, w_dim]``: the stacked latent-head codes plus ``avg_latent``
  (pSp's ``start_from_latent_avg``),
* ``maps {slot: [B, S, S, C]}`` with ``S = 2**(pad_layer_num+1) + 2``: slot 0 = the raw
  map (bicubic resize of the padding branch), slot ``2i+1`` = padding modulation head
  ``i`` (1x1 conv) applied to the raw map — the slots of :mod:`jaxinv.models.padinv`.

Architecture (pSp's IR-SE family, as PadInv uses it):

* ``input_layer``: conv3x3 → BN → PReLU; ``backbone_stages.{s}.{b}``: IR-SE bottlenecks
  ``BN → conv3x3 → PReLU → conv3x3(stride) → BN → SE`` plus a shortcut (1x1 max-pool, i.e.
  subsampling, when the widths agree, else conv1x1 + BN); the first block of a stage has stride 2.
* FPN over the last three stages, top-down and cumulative: ``P_c = stage3``,
  ``P_m = up(P_c) + lateral1(stage2)``, ``P_f = up(P_m) + lateral0(stage1)``, ``up`` bilinear
  with align_corners=True; levels are ordered coarse-first.
* latent heads (map2style): level ``l`` head = ``head_convs[l]`` stride-2 3x3 convs, each
  followed by LeakyReLU(0.01) (they keep running on 1x1 maps), then EqualLinear.
* padding branch: FPN level ``feature_idx`` → ``depth_padding_extractor`` bottlenecks →
  bicubic (Keys a = -0.75, align_corners=True, clamped borders) resize to ``S``.

Params mirror the PadInv state_dict (``input_layer/0/weight``, ``backbone_stages/1/0/res_layer/5/
fc1/weight``, ``latent_heads/3/convs/2/bias``, ...): conv kernels HWIO, the EqualLinear
weight ``[in, out]``, BatchNorm ``weight, bias, running_mean, running_var`` (inference
statistics; ``train_bn=True`` uses batch statistics with biased variance instead, as
PyTorch training mode computes them, without updating anything).

References:
  Bai et al., High-fidelity GAN Inversion with Padding Space, https://arxiv.org/abs/2203.11105
  Richardson et al., Encoding in Style (pSp), https://arxiv.org/abs/2008.00951
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.ops import resize as ops_resize

from jaxinv.models import layers as L

__all__ = ["PadInvEncoderConfig", "PadInvEncoder", "infer_config", "resize_matrix",
           "resize_align_corners"]


@dataclasses.dataclass(frozen=True)
class PadInvEncoderConfig:
  """Architecture of PadInv's ``PadInvEncoder`` (defaults: the released FFHQ/LSUN encoders)."""
  resolution: int = 256                                   # input size
  image_channels: int = 3
  inplanes: int = 64                                      # input_layer width
  blocks_per_stage: tuple[int, ...] = (3, 4, 14, 3)       # IR-SE-50
  stage_in_channels: tuple[int, ...] = (64, 64, 128, 256)
  stage_out_channels: tuple[int, ...] = (64, 128, 256, 512)
  se_reduction: int = 16                                  # SE hidden width = C // se_reduction
  fpn_channels: int = 512                                 # = last stage width = map channels
  w_dim: int = 512
  num_latents_per_level: tuple[int, ...] = (3, 4, 11)    # heads on FPN levels, coarse-first
  head_convs: tuple[int, ...] = (4, 5, 6)                 # stride-2 convs per head, per level
  pad_layer_num: int = 4                                  # padded synthesis layers (<= 5)
  depth_padding_extractor: int = 2                        # bottlenecks of the padding branch
  use_padding_modulation_head: bool = True                # 1x1 head per padded layer
  encode_const_input: bool = True                         # slot 0 replaces the constant
  only_pad_even: bool = True                              # only non-upsampling convs
  start_from_latent_avg: bool = True                      # wp = heads + avg_latent
  feature_idx: int = 1                                    # FPN level of the padding branch
  bn_eps: float = 1e-5

  def __post_init__(self):
    for f in ("blocks_per_stage", "stage_in_channels", "stage_out_channels",
              "num_latents_per_level", "head_convs"):
      object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
    if self.pad_layer_num > 5:
      raise ValueError("pad_layer_num must be <= 5 (PadInv refuses larger values)")
    if not self.only_pad_even:
      raise NotImplementedError("only_pad_even=False is not supported")

  @property
  def num_latents(self) -> int:
    return sum(self.num_latents_per_level)

  @property
  def map_size(self) -> int:
    return 2 ** (self.pad_layer_num + 1) + 2

  @property
  def slots(self) -> tuple[int, ...]:
    """Generator slots the encoder fills (see :mod:`jaxinv.models.padinv`)."""
    return ((0,) if self.encode_const_input else ()) + tuple(
        2 * i + 1 for i in range(self.pad_layer_num))


def infer_config(shapes: Mapping[str, tuple], **overrides) -> PadInvEncoderConfig:
  """Architecture from the encoder state_dict shapes; see the README for what is not inferable.

  Not inferable (pass as overrides, e.g. from ``model_kwargs_init``): ``resolution``,
  ``encode_const_input``, ``only_pad_even``, ``start_from_latent_avg``, ``feature_idx``,
  and ``pad_layer_num`` when there are no modulation heads.
  """
  def count(rx):
    return len({m.group(1) for k in shapes for m in [re.fullmatch(rx, k)] if m})
  n_stages = count(r"backbone_stages\.(\d+)\..*")
  blocks = tuple(count(rf"backbone_stages\.{s}\.(\d+)\..*") for s in range(n_stages))
  sin, sout = [], []
  for s in range(n_stages):
    o, i = shapes[f"backbone_stages.{s}.0.res_layer.1.weight"][:2]
    sin.append(i)
    sout.append(o)
  se_hidden = shapes["backbone_stages.0.0.res_layer.5.fc1.weight"][0]
  n_heads = count(r"latent_heads\.(\d+)\..*")
  convs = [count(rf"latent_heads\.{h}\.convs\.(\d+)\.weight") for h in range(n_heads)]
  per_level, head_convs = [], []
  for c in convs:
    if head_convs and head_convs[-1] == c:
      per_level[-1] += 1
    else:
      head_convs.append(c)
      per_level.append(1)
  n_mod = count(r"padding_modulation_heads\.(\d+)\.weight")
  cfg = dict(
      image_channels=shapes["input_layer.0.weight"][1], inplanes=shapes["input_layer.0.weight"][0],
      blocks_per_stage=blocks, stage_in_channels=tuple(sin), stage_out_channels=tuple(sout),
      se_reduction=max(1, sout[0] // se_hidden), fpn_channels=sout[-1],
      w_dim=shapes["latent_heads.0.linear.weight"][0], num_latents_per_level=tuple(per_level),
      head_convs=tuple(head_convs), depth_padding_extractor=count(r"padding_extractor\.(\d+)\..*"),
      use_padding_modulation_head=n_mod > 0)
  if n_mod:
    cfg["pad_layer_num"] = n_mod
  cfg.update(overrides)
  return PadInvEncoderConfig(**cfg)


def resize_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
  """``[n_out, n_in]`` float64 matrix of a 1-D align_corners=True resize ('bilinear'|'bicubic')."""
  return ops_resize.resize_matrix(n_in, n_out, mode, None, True)


def resize_align_corners(x, size: int, mode: str):
  """Resizes NHWC ``x`` to ``size x size`` like ``F.interpolate(..., align_corners=True)``."""
  return ops_resize.resize(x, size, mode, align_corners=True)


class _Conv(nn.Module):
  cin: int
  cout: int
  k: int
  stride: int = 1
  bias: bool = False

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.lecun_normal(), (self.k, self.k, self.cin, self.cout))
    y = L.conv2d(x, w, stride=self.stride, padding=self.k // 2)
    if self.bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.cout,))
    return y


class _BN(nn.Module):
  c: int
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x, train_bn=False):
    w = self.param("weight", nn.initializers.ones, (self.c,))
    b = self.param("bias", nn.initializers.zeros, (self.c,))
    mean = self.param("running_mean", nn.initializers.zeros, (self.c,))
    var = self.param("running_var", nn.initializers.ones, (self.c,))
    if train_bn:
      mean = jnp.mean(x, axis=(0, 1, 2))
      var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * w + b


class _PReLU(nn.Module):
  c: int

  @nn.compact
  def __call__(self, x):
    a = self.param("weight", nn.initializers.constant(0.25), (self.c,))
    return jnp.where(x >= 0, x, a * x)


class _Bottleneck(nn.Module):
  """IR-SE bottleneck with ``res_layer`` and optional ``shortcut_layer`` children."""
  cin: int
  cout: int
  stride: int
  reduction: int
  eps: float

  @nn.compact
  def __call__(self, x, train_bn=False):
    res = _ResLayer(self.cin, self.cout, self.stride, self.reduction, self.eps, name="res_layer")
    if self.cin == self.cout:
      short = x[:, ::self.stride, ::self.stride]
    else:
      short = _Shortcut(self.cin, self.cout, self.stride, self.eps, name="shortcut_layer")(
          x, train_bn)
    return res(x, train_bn) + short


class _ResLayer(nn.Module):
  cin: int
  cout: int
  stride: int
  reduction: int
  eps: float

  @nn.compact
  def __call__(self, x, train_bn=False):
    x = _BN(self.cin, self.eps, name="0")(x, train_bn)
    x = _Conv(self.cin, self.cout, 3, name="1")(x)
    x = _PReLU(self.cout, name="2")(x)
    x = _Conv(self.cout, self.cout, 3, self.stride, name="3")(x)
    x = _BN(self.cout, self.eps, name="4")(x, train_bn)
    return _SEBlock(self.cout, self.reduction, name="5")(x)


class _SEBlock(nn.Module):
  """Squeeze-excitation: global average → fc1 → ReLU → fc2 → sigmoid → scale (no biases)."""
  c: int
  reduction: int

  @nn.compact
  def __call__(self, x):
    h = max(1, self.c // self.reduction)
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = jax.nn.relu(_Conv(self.c, h, 1, name="fc1")(s))
    s = jax.nn.sigmoid(_Conv(h, self.c, 1, name="fc2")(s))
    return x * s


class _Shortcut(nn.Module):
  cin: int
  cout: int
  stride: int
  eps: float

  @nn.compact
  def __call__(self, x, train_bn=False):
    x = _Conv(self.cin, self.cout, 1, self.stride, name="0")(x)
    return _BN(self.cout, self.eps, name="1")(x, train_bn)


class _Seq(nn.Module):
  """A list of bottlenecks named ``0 .. n-1`` (a stage or the padding extractor)."""
  cin: int
  cout: int
  n: int
  stride: int
  reduction: int
  eps: float

  @nn.compact
  def __call__(self, x, train_bn=False):
    for b in range(self.n):
      x = _Bottleneck(self.cin if b == 0 else self.cout, self.cout, self.stride if b == 0 else 1,
                      self.reduction, self.eps, name=str(b))(x, train_bn)
    return x


class _Stages(nn.Module):
  cfg: PadInvEncoderConfig

  @nn.compact
  def __call__(self, x, train_bn=False):
    c = self.cfg
    feats = []
    for s, n in enumerate(c.blocks_per_stage):
      x = _Seq(c.stage_in_channels[s], c.stage_out_channels[s], n, 2, c.se_reduction, c.bn_eps,
               name=str(s))(x, train_bn)
      feats.append(x)
    return feats


class _Input(nn.Module):
  cfg: PadInvEncoderConfig

  @nn.compact
  def __call__(self, x, train_bn=False):
    c = self.cfg
    x = _Conv(c.image_channels, c.inplanes, 3, name="0")(x)
    x = _BN(c.inplanes, c.bn_eps, name="1")(x, train_bn)
    return _PReLU(c.inplanes, name="2")(x)


class _FPN(nn.Module):
  cfg: PadInvEncoderConfig

  @nn.compact
  def __call__(self, feats):
    """``feats`` = the last three stage outputs, fine → coarse; returns levels coarse → fine."""
    c = self.cfg
    n = len(feats)
    lat = _Laterals(c, [f.shape[-1] for f in feats[:-1]], name="lateral_layers")
    p = feats[-1]
    levels = [p]
    for i in range(n - 2, -1, -1):
      lateral = lat(feats[i], i)
      p = resize_align_corners(p, lateral.shape[1], "bilinear") + lateral
      levels.append(p)
    return levels


class _Laterals(nn.Module):
  cfg: PadInvEncoderConfig
  cins: tuple

  def setup(self):
    self.convs = [_Conv(ci, self.cfg.fpn_channels, 1, bias=True, name=str(i))
                  for i, ci in enumerate(self.cins)]

  def __call__(self, x, i):
    return self.convs[i](x)


class _Head(nn.Module):
  """map2style: ``n_convs`` stride-2 3x3 convs + LeakyReLU(0.01), then EqualLinear."""
  cin: int
  w_dim: int
  n_convs: int

  @nn.compact
  def __call__(self, x):
    convs = _HeadConvs(self.cin, self.w_dim, self.n_convs, name="convs")
    x = convs(x)
    if x.shape[1:3] != (1, 1):
      raise ValueError(f"latent head ends on {x.shape[1:3]} features, expected 1x1: the input "
                       "resolution does not match the encoder's head depth")
    x = x.reshape(x.shape[0], -1)
    return _EqualLinear(self.w_dim, self.w_dim, name="linear")(x)


class _HeadConvs(nn.Module):
  cin: int
  cout: int
  n: int

  @nn.compact
  def __call__(self, x):
    for m in range(self.n):
      x = _Conv(self.cin if m == 0 else self.cout, self.cout, 3, 2, bias=True, name=str(2 * m))(x)
      x = jnp.where(x >= 0, x, 0.01 * x)
    return x


class _EqualLinear(nn.Module):
  """pSp EqualLinear (lr_mul 1): ``x @ weight / sqrt(in) + bias``; weight ``[in, out]``."""
  cin: int
  cout: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (self.cin, self.cout))
    b = self.param("bias", nn.initializers.zeros, (self.cout,))
    return x @ (w / math.sqrt(self.cin)) + b


class _Heads(nn.Module):
  cfg: PadInvEncoderConfig

  @nn.compact
  def __call__(self, levels):
    c = self.cfg
    codes = []
    h = 0
    for lvl, (n, nc) in enumerate(zip(c.num_latents_per_level, c.head_convs)):
      for _ in range(n):
        codes.append(_Head(c.fpn_channels, c.w_dim, nc, name=str(h))(levels[lvl]))
        h += 1
    return jnp.stack(codes, axis=1)


class _ModHeads(nn.Module):
  cfg: PadInvEncoderConfig

  @nn.compact
  def __call__(self, raw):
    c = self.cfg
    return [_Conv(c.fpn_channels, c.fpn_channels, 1, bias=True, name=str(i))(raw)
            for i in range(c.pad_layer_num)]


class PadInvEncoder(nn.Module):
  """``apply(v, image [B, R, R, 3]) -> {"wp", "wp_residual", "maps"}`` (see the module doc).

  ``intermediates`` (a dict) receives ``input_layer``, ``stage{s}``, ``fpn_level{l}``
  (coarse-first) and ``padding_extractor``, all NHWC.
  """
  cfg: PadInvEncoderConfig

  @nn.compact
  def __call__(self, image, train_bn: bool = False, intermediates=None):
    c = self.cfg
    if image.ndim != 4 or image.shape[1:] != (c.resolution, c.resolution, c.image_channels):
      raise ValueError(f"encoder input must be [B, {c.resolution}, {c.resolution}, "
                       f"{c.image_channels}], got {image.shape}")
    rec = intermediates if intermediates is not None else {}
    x = _Input(c, name="input_layer")(image, train_bn)
    rec["input_layer"] = x
    feats = _Stages(c, name="backbone_stages")(x, train_bn)
    for s, f in enumerate(feats):
      rec[f"stage{s}"] = f
    levels = _FPN(c, name="fpn")(feats[-3:])
    for lvl, f in enumerate(levels):
      rec[f"fpn_level{lvl}"] = f
    residual = _Heads(c, name="latent_heads")(levels)
    avg = self.param("avg_latent", nn.initializers.zeros, (c.w_dim,))
    wp = residual + avg if c.start_from_latent_avg else residual
    p = _Seq(c.fpn_channels, c.fpn_channels, c.depth_padding_extractor, 1, c.se_reduction,
             c.bn_eps, name="padding_extractor")(levels[c.feature_idx], train_bn)
    rec["padding_extractor"] = p
    raw = resize_align_corners(p, c.map_size, "bicubic")
    if c.use_padding_modulation_head:
      per_layer = _ModHeads(c, name="padding_modulation_heads")(raw)
    else:
      per_layer = [raw] * c.pad_layer_num
    maps = {2 * i + 1: m for i, m in enumerate(per_layer)}
    if c.encode_const_input:
      maps[0] = raw
    return {"wp": wp, "wp_residual": residual, "maps": maps}
