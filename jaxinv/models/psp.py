"""pSp-framework encoders (``GradualStyleEncoder``, ``Encoder4Editing``) and the pSp wrapper.

Both encoders share pSp's IR-SE-50 backbone and FPN (building blocks from
:mod:`jaxinv.models.irse`) and map an image ``[B, R, R, 3]`` in [-1, 1] (NHWC) to w+
``[B, style_count, w_dim]``; they differ in how the style heads become codes:

* ``GradualStyleEncoder`` (pSp): row ``i`` = head ``i``; heads ``0 .. coarse_ind-1`` read
  ``c3``, ``coarse_ind .. middle_ind-1`` read ``p2``, the rest ``p1``.
* ``Encoder4Editing`` (e4e): head 0 gives the base code ``w0`` for every row; head ``i >= 1``
  adds its delta to row ``i`` only (not cumulatively). ``progressive_stage`` k applies deltas
  ``1 .. k`` (the trained model runs at the last stage: all of them).

Backbone: ``input_layer`` (conv3x3 → BN → PReLU), 24 IR-SE bottleneck units ``body.{i}``
(stages of ``units_per_stage``, the first unit of each stage stride 2); ``c1, c2, c3`` are the
outputs of the last unit of stages 1, 2, 3. FPN: ``p2 = up(c3) + latlayer1(c2)``,
``p1 = up(p2) + latlayer2(c1)``, ``up`` bilinear with align_corners=True to the lateral's size.
Heads (``GradualStyleBlock``): ``n`` stride-2 conv3x3 + LeakyReLU(0.01), kept even on 1x1
maps, then EqualLinear (``x @ W / sqrt(in) + b``).

:class:`PSP` bundles an encoder, the rosinality StyleGAN2 decoder and ``latent_avg``
``[style_count, w_dim]``: ``encode`` gives ``codes = encoder(x) + latent_avg`` (when
``start_from_latent_avg``), ``decode`` renders w+ with the stored noise.

Params mirror the official state_dict with ``/`` for ``.``: ``encoder/body/3/shortcut_layer/0/
weight``, ``encoder/styles/5/convs/2/bias``, ``encoder/latlayer1/weight``; conv kernels HWIO,
the EqualLinear weight ``[in, out]``; ``decoder/...`` is :mod:`jaxinv.models.stylegan2`'s tree.

References:
  Richardson et al., Encoding in Style (pSp), https://arxiv.org/abs/2008.00951
  Tov et al., Designing an Encoder for StyleGAN Image Manipulation (e4e), https://arxiv.org/abs/2102.02766
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

from jaxinv.models import stylegan2
from jaxinv.models.irse import (_BN, _Bottleneck, _Conv, _EqualLinear, _HeadConvs, _PReLU,
                                resize_align_corners)

__all__ = ["PSPEncoderConfig", "PSPEncoder", "PSPConfig", "PSP", "ENCODER_TYPES",
           "infer_encoder_config"]

ENCODER_TYPES = ("Encoder4Editing", "GradualStyleEncoder")


@dataclasses.dataclass(frozen=True)
class PSPEncoderConfig:
  """Architecture of a pSp/e4e encoder (defaults: the released 1024 px FFHQ encoders)."""
  encoder_type: str = "Encoder4Editing"                   # one of ENCODER_TYPES
  input_size: int = 256                                   # the inference transform's resize
  image_channels: int = 3
  input_width: int = 64                                   # input_layer conv width
  units_per_stage: tuple[int, ...] = (3, 4, 14, 3)        # IR-SE-50
  stage_widths: tuple[int, ...] = (64, 128, 256, 512)
  se_reduction: int = 16                                  # SE hidden width = C // se_reduction
  fpn_width: int = 512                                    # = c3 width = lateral output width
  w_dim: int = 512
  head_convs: tuple[int, ...] = (4,) * 3 + (5,) * 4 + (6,) * 11   # log2(spatial) per head
  coarse_ind: int = 3
  middle_ind: int = 7
  bn_eps: float = 1e-5

  def __post_init__(self):
    for f in ("units_per_stage", "stage_widths", "head_convs"):
      object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
    if self.encoder_type not in ENCODER_TYPES:
      raise ValueError(f"encoder_type must be one of {ENCODER_TYPES}, got {self.encoder_type!r}")
    if len(self.units_per_stage) != 4 or len(self.stage_widths) != 4:
      raise ValueError("the pSp backbone has 4 stages")

  @property
  def style_count(self) -> int:
    return len(self.head_convs)

  def feature_units(self) -> tuple[int, int, int]:
    """Body indices whose outputs are ``c1, c2, c3`` (ends of stages 1, 2, 3)."""
    ends = [sum(self.units_per_stage[:s + 1]) - 1 for s in range(4)]
    return ends[1], ends[2], ends[3]


def infer_encoder_config(shapes: Mapping[str, tuple], encoder_type: str,
                         **overrides) -> PSPEncoderConfig:
  """Architecture from encoder state_dict shapes (keys without the ``encoder.`` prefix)."""
  import re

  def idx(rx):
    return sorted({int(m.group(1)) for k in shapes for m in [re.fullmatch(rx, k)] if m})
  units = idx(r"body\.(\d+)\..*")
  if units != list(range(len(units))) or not units:
    raise ValueError("no body.{i} units")
  # A unit opens a stage when its conv widens or strides; the stage widths come from the
  # first conv of each unit; stage boundaries are where the width changes or a shortcut sits.
  widths = [shapes[f"body.{i}.res_layer.1.weight"][0] for i in units]
  starts = [0] + [i for i in units[1:] if widths[i] != widths[i - 1]
                  or f"body.{i}.shortcut_layer.0.weight" in shapes]
  if len(starts) != 4:
    raise ValueError(f"expected 4 backbone stages, found {len(starts)}")
  per_stage = tuple(b - a for a, b in zip(starts, starts[1:] + [len(units)]))
  heads = idx(r"styles\.(\d+)\..*")
  head_convs = tuple(len(idx(rf"styles\.{h}\.convs\.(\d+)\.weight")) for h in heads)
  se_hidden = shapes["body.0.res_layer.5.fc1.weight"][0]
  cfg = dict(
      encoder_type=encoder_type, image_channels=shapes["input_layer.0.weight"][1],
      input_width=shapes["input_layer.0.weight"][0], units_per_stage=per_stage,
      stage_widths=tuple(widths[s] for s in starts),
      se_reduction=max(1, widths[0] // se_hidden), fpn_width=shapes["latlayer1.weight"][0],
      w_dim=shapes["styles.0.linear.weight"][0], head_convs=head_convs)
  cfg.update(overrides)
  return PSPEncoderConfig(**cfg)


class _StyleHead(nn.Module):
  """``GradualStyleBlock``: ``n`` stride-2 conv3x3 + LeakyReLU(0.01), flatten, EqualLinear."""
  cin: int
  w_dim: int
  n_convs: int

  @nn.compact
  def __call__(self, x, intermediates=None, tag=""):
    x = _HeadConvs(self.cin, self.w_dim, self.n_convs, name="convs")(x)
    if x.shape[1:3] != (1, 1):
      raise ValueError(f"style head ends on {x.shape[1:3]} features, not 1x1: the input size "
                       "does not match the encoder's head depth")
    x = x.reshape(x.shape[0], -1)
    if intermediates is not None:
      intermediates[tag + ".convs"] = x
    return _EqualLinear(self.w_dim, self.w_dim, name="linear")(x)


class _InputLayer(nn.Module):
  cfg: PSPEncoderConfig

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    x = _Conv(c.image_channels, c.input_width, 3, name="0")(x)
    x = _BN(c.input_width, c.bn_eps, name="1")(x)
    return _PReLU(c.input_width, name="2")(x)


class _Body(nn.Module):
  cfg: PSPEncoderConfig

  @nn.compact
  def __call__(self, x, intermediates):
    c = self.cfg
    cin, i, feats = c.input_width, 0, {}
    c1, c2, c3 = c.feature_units()
    for s, (n, d) in enumerate(zip(c.units_per_stage, c.stage_widths)):
      for u in range(n):
        x = _Bottleneck(cin, d, 2 if u == 0 else 1, c.se_reduction, c.bn_eps, name=str(i))(x)
        intermediates[f"body{i:02d}"] = x
        cin = d
        i += 1
      intermediates[f"stage{s}"] = x
    return intermediates[f"body{c1:02d}"], intermediates[f"body{c2:02d}"], x


class _Styles(nn.Module):
  cfg: PSPEncoderConfig

  def setup(self):
    c = self.cfg
    self.heads = [_StyleHead(c.fpn_width, c.w_dim, n, name=str(i))
                  for i, n in enumerate(c.head_convs)]

  def __call__(self, i, x, intermediates):
    out = self.heads[i](x, intermediates, f"head{i:02d}")
    intermediates[f"head{i:02d}"] = out
    return out


class PSPEncoder(nn.Module):
  """``apply(v, image [B, R, R, 3]) -> w+ [B, style_count, w_dim]`` (without latent_avg).

  ``progressive_stage`` (e4e only; None = all deltas) and ``intermediates`` (a dict that
  receives ``input_layer``, ``body{i:02d}``, ``stage{s}``, ``latlayer1``, ``latlayer2``,
  ``p2``, ``p1``, ``head{i:02d}``, ``head{i:02d}.convs`` and, for e4e, ``w0`` / ``deltas``; NHWC).
  """
  cfg: PSPEncoderConfig

  @nn.compact
  def __call__(self, image, progressive_stage: int | None = None, intermediates=None):
    c = self.cfg
    if image.ndim != 4 or image.shape[-1] != c.image_channels:
      raise ValueError(f"encoder input must be [B, H, W, {c.image_channels}], got {image.shape}")
    rec = intermediates if intermediates is not None else {}
    x = _InputLayer(c, name="input_layer")(image)
    rec["input_layer"] = x
    c1, c2, c3 = _Body(c, name="body")(x, rec)
    lat1 = _Conv(c.stage_widths[2], c.fpn_width, 1, bias=True, name="latlayer1")
    lat2 = _Conv(c.stage_widths[1], c.fpn_width, 1, bias=True, name="latlayer2")
    styles = _Styles(c, name="styles")
    levels = {}

    def features(i):
      if i < c.coarse_ind:
        return c3
      if "p2" not in levels:
        rec["latlayer1"] = lat1(c2)
        levels["p2"] = rec["p2"] = resize_align_corners(c3, c2.shape[1], "bilinear") + rec["latlayer1"]
      if i < c.middle_ind:
        return levels["p2"]
      if "p1" not in levels:
        rec["latlayer2"] = lat2(c1)
        levels["p1"] = rec["p1"] = (resize_align_corners(levels["p2"], c1.shape[1], "bilinear")
                                    + rec["latlayer2"])
      return levels["p1"]

    if c.encoder_type == "GradualStyleEncoder":
      return jnp.stack([styles(i, features(i), rec) for i in range(c.style_count)], axis=1)
    w0 = styles(0, c3, rec)
    rec["w0"] = w0
    last = c.style_count - 1 if progressive_stage is None else min(progressive_stage,
                                                                   c.style_count - 1)
    deltas = [styles(i, features(i), rec) for i in range(1, last + 1)]
    rows = [w0] + [w0 + d for d in deltas] + [w0] * (c.style_count - 1 - last)
    if deltas:
      rec["deltas"] = jnp.stack(deltas, axis=1)
    return jnp.stack(rows, axis=1)


@dataclasses.dataclass(frozen=True)
class PSPConfig:
  """An encoder, a rosinality StyleGAN2 decoder and whether ``latent_avg`` is added."""
  encoder: PSPEncoderConfig = PSPEncoderConfig()
  decoder: stylegan2.StyleGAN2Config = stylegan2.StyleGAN2Config.rosinality(1024)
  start_from_latent_avg: bool = True

  def __post_init__(self):
    if isinstance(self.encoder, Mapping):
      object.__setattr__(self, "encoder", PSPEncoderConfig(**self.encoder))
    if isinstance(self.decoder, Mapping):
      object.__setattr__(self, "decoder", stylegan2.StyleGAN2Config(**self.decoder))
    if self.encoder.style_count != self.decoder.num_ws:
      raise ValueError(f"encoder has {self.encoder.style_count} style heads, the decoder "
                       f"{self.decoder.num_ws} w rows")


class PSP(nn.Module):
  """pSp / e4e: ``encode(image) -> codes``, ``decode(codes) -> image``, ``__call__`` both.

  ``image`` ``[B, R, R, 3]`` in [-1, 1] at ``encoder.input_size``; codes ``[B, L, w_dim]``;
  the decoder output ``[B, R_G, R_G, 3]`` (NHWC, not clamped). ``latent_avg`` ``[L, w_dim]``.
  """
  cfg: PSPConfig

  def setup(self):
    c = self.cfg
    self.encoder = PSPEncoder(c.encoder)
    self.decoder = stylegan2.StyleGAN2Generator(c.decoder)
    self.latent_avg = self.param("latent_avg", nn.initializers.zeros,
                                 (c.encoder.style_count, c.encoder.w_dim))

  def encode(self, image, progressive_stage: int | None = None, intermediates=None):
    out = self.encoder(image, progressive_stage, intermediates)
    if intermediates is not None:
      intermediates["out"] = out
    return out + self.latent_avg[None] if self.cfg.start_from_latent_avg else out

  def decode(self, codes, noise="const"):
    return self.decoder.synthesis(None, codes, noise=noise)

  def __call__(self, image):
    if self.is_initializing():
      self.decoder(jnp.zeros((1, self.cfg.decoder.z_dim)))
    codes = self.encode(image)
    return codes, self.decode(codes)
