"""PadInv's generator: a Hammer-format StyleGAN2 ("skip") whose borders can be image-specific.

PadInv (Bai et al., ECCV 2022) keeps a StyleGAN2 generator frozen and replaces, for
one image, (a) the learned 4x4 constant and (b) the zero padding of the early
*non-upsampling* 3x3 convolutions with maps predicted by an encoder. The inversion
space is w+ plus those maps ("padding space").

Padding maps are given per **slot** as raw ``[B, S, S, C]`` arrays (NHWC; ``S`` is
the encoder's map size, ``2**(pad_layer_num+1) + 2``):

* slot 0 replaces the constant: its centre ``4x4`` crop is the synthesis input;
* slot ``k + 1`` feeds ``synthesis.layer{k}`` (``k`` even: a non-upsampling conv at
  resolution ``r``): the centre ``(r+2)x(r+2)`` crop of the map supplies the 1-pixel
  border, its interior is overwritten by the *modulated* activation, and the 3x3 conv
  runs without padding. The ring is therefore not multiplied by the style, but the
  demodulation (which depends on weights and style only) scales the whole output.

A slot that is absent (or ``None``) behaves exactly as plain StyleGAN2 (zero border,
learned constant); with zero rings and the learned constant in the slot-0 centre the
output is identical to the plain generator (tested).

Layer order (Hammer): ``layer0`` is the 4x4 conv; at each resolution ``2**(j+2)``,
``j >= 1``, ``layer{2j-1}`` is the upsampling conv and ``layer{2j}`` the second conv;
``output{j}`` (ToRGB) follows ``layer{2j}``. ``layer{k}`` reads w+ row ``k``;
``output{j}`` reads row ``2j + 1``. ``num_ws = num_layers + 1``.

Parameters mirror the Hammer state_dict (``mapping.dense{i}.*``, ``w_avg``,
``synthesis.early_layer.const``, ``synthesis.layer{k}.{weight, bias, noise_strength,
noise, style.*, filter}``, ``synthesis.output{j}.*``, ``synthesis.filter``), with
kernels HWIO, dense weights ``[in, out]``, the constant and the noise buffers NHWC.
Weights are stored unscaled; the equalized-lr multipliers are applied here.

Relation to :mod:`jaxinv.models.stylegan2` (same math, different checkpoint layout): the
noise/bias/activation tail is shared (:func:`stylegan2.noise_inject`, :func:`stylegan2.fused_lrelu`).
The padded conv cannot use :func:`stylegan2.modulated_conv2d` because that function modulates
its (pre-padded) input, while PadInv's ring must enter *after* the modulation; the up-conv
uses the Hammer kernel orientation (PyTorch ``conv_transpose2d`` of the stored weight, i.e.
the genforce kernel flipped) and each layer's own stored FIR ``filter``.

References:
  Bai et al., High-fidelity GAN Inversion with Padding Space, https://arxiv.org/abs/2203.11105
  Karras et al., Analyzing and Improving the Image Quality of StyleGAN, https://arxiv.org/abs/1912.04958
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv.models import layers as L
from jaxinv.models import stylegan2
from jaxinv.models.upfirdn import upfirdn2d

__all__ = ["PadInvGeneratorConfig", "PadInvGenerator", "infer_config", "padded_slots",
           "identity_maps", "PaddingSlotError"]

_SQRT2 = math.sqrt(2.0)


class PaddingSlotError(ValueError):
  """A padding map was given for a slot that cannot take one."""


@dataclasses.dataclass(frozen=True)
class PadInvGeneratorConfig:
  """Architecture of a Hammer ``StyleGAN2GeneratorPadInv`` (skip architecture)."""
  resolution: int = 1024        # output size, a power of two >= 8
  z_dim: int = 512              # latent z size
  w_dim: int = 512              # w size (style input of every layer)
  mapping_layers: int = 8       # dense layers of the mapping network
  mapping_fmaps: int = 512      # hidden width of the mapping network
  mapping_lr_mul: float = 0.01  # equalized-lr multiplier of the mapping network (not in the weights)
  fmaps_base: int = 32768       # channels at resolution r: min(fmaps_base // r, fmaps_max)
  fmaps_max: int = 512
  image_channels: int = 3

  def __post_init__(self):
    r = self.resolution
    if r < 8 or r & (r - 1):
      raise ValueError(f"StyleGAN2 resolution must be a power of two >= 8, got {r}")

  @property
  def num_layers(self) -> int:
    """Modulated 3x3 convs ``layer0 .. layer{n-1}``."""
    return 2 * (int(math.log2(self.resolution)) - 2) + 1

  @property
  def num_ws(self) -> int:
    """Rows of w+ the synthesis network reads."""
    return self.num_layers + 1

  @property
  def num_outputs(self) -> int:
    return int(math.log2(self.resolution)) - 1

  def channels_at(self, res: int) -> int:
    return min(self.fmaps_base // res, self.fmaps_max)

  def layer_resolution(self, k: int) -> int:
    """Output resolution of ``layer{k}``."""
    return 4 * 2 ** ((k + 1) // 2)

  def layer_channels(self, k: int) -> tuple[int, int]:
    """``(in, out)`` channels of ``layer{k}``."""
    res = self.layer_resolution(k)
    cin = self.channels_at(res // 2) if k % 2 == 1 else self.channels_at(res)
    return cin, self.channels_at(res)

  def slot_shapes(self) -> dict[int, tuple[int, int]]:
    """``{slot: (resolution r, channels C)}`` of every slot that can take a map.

    Slot 0 (the constant) and ``k + 1`` for every non-upsampling ``layer{k}``; a map for
    slot ``k+1`` must be at least ``(r+2)`` wide and have the layer's input channels.
    """
    out = {0: (4, self.channels_at(4))}
    for k in range(0, self.num_layers, 2):
      out[k + 1] = (self.layer_resolution(k), self.layer_channels(k)[0])
    return out


def infer_config(shapes: Mapping[str, tuple], **overrides) -> PadInvGeneratorConfig:
  """Architecture from Hammer state_dict shapes (``mapping_lr_mul`` is not inferable: default 0.01)."""
  n_out = sum(1 for k in shapes if re.fullmatch(r"synthesis\.output\d+\.bias", k))
  n_map = sum(1 for k in shapes if re.fullmatch(r"mapping\.dense\d+\.weight", k))
  if n_out < 2 or n_map < 1:
    raise ValueError("not a Hammer StyleGAN2 generator (no synthesis.output*/mapping.dense*)")
  resolution = 2 ** (n_out + 1)
  c4 = shapes["synthesis.early_layer.const"][1]
  last = shapes[f"synthesis.layer{2 * n_out - 2}.weight"][0]
  fmaps_max = c4
  fmaps_base = last * resolution if last < c4 else c4 * resolution
  cfg = dict(resolution=resolution, z_dim=shapes["mapping.dense0.weight"][1],
             w_dim=shapes["w_avg"][0], mapping_layers=n_map,
             mapping_fmaps=shapes["mapping.dense0.weight"][0], fmaps_base=fmaps_base,
             fmaps_max=fmaps_max, image_channels=shapes["synthesis.output0.bias"][0])
  cfg.update(overrides)
  out = PadInvGeneratorConfig(**cfg)
  for k in range(out.num_layers):
    want = (out.layer_channels(k)[1], out.layer_channels(k)[0])
    got = tuple(shapes[f"synthesis.layer{k}.weight"][:2])
    if got != want:
      # channel rule not of the form min(base // r, max): keep the checkpoint honest.
      raise ValueError(f"synthesis.layer{k}.weight has [out, in] {got}, expected {want} for "
                       f"fmaps_base {fmaps_base}, fmaps_max {fmaps_max}")
  return out


def padded_slots(pad_layer_num: int, only_pad_even: bool = True) -> tuple[int, ...]:
  """Slots PadInv's encoder fills: 0 and ``2i + 1`` for ``i < pad_layer_num`` (only_pad_even)."""
  if not only_pad_even:
    raise NotImplementedError("only_pad_even=False (padding the upsampling layers) is not supported")
  return (0,) + tuple(2 * i + 1 for i in range(pad_layer_num))


def identity_maps(params, cfg: PadInvGeneratorConfig, slots, size: int, batch: int = 1):
  """Maps that reproduce the plain generator: zero rings, slot-0 centre = the learned constant.

  Returns ``{slot: [batch, size, size, C]}`` (the start of ``--space padding`` without encoder).
  """
  shapes = cfg.slot_shapes()
  out = {}
  for s in slots:
    _, c = shapes[s]
    m = jnp.zeros((batch, size, size, c), jnp.float32)
    if s == 0:
      o = (size - 4) // 2
      const = params["synthesis"]["early_layer"]["const"]
      m = m.at[:, o:o + 4, o:o + 4, :].set(jnp.broadcast_to(const, (batch, 4, 4, c)))
    out[s] = m
  return out


def _centre_crop(m, size):
  s = m.shape[1]
  if s < size:
    raise PaddingSlotError(f"padding map of size {s} is smaller than the needed {size}x{size} crop")
  o = (s - size) // 2
  return m[:, o:o + size, o:o + size, :]


class _Dense(nn.Module):
  """Equalized-lr dense layer, ``weight [in, out]``; optional lrelu(0.2)*sqrt(2)."""
  in_dim: int
  out_dim: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  act: bool = True

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0 / self.lr_mul), (self.in_dim, self.out_dim))
    b = self.param("bias", nn.initializers.constant(self.bias_init), (self.out_dim,))
    y = x @ (w * (self.lr_mul / math.sqrt(self.in_dim))) + b * self.lr_mul
    return L.lrelu(y) * _SQRT2 if self.act else y


class _ModConv(nn.Module):
  """Modulated 3x3 conv (non-fused), optionally upsampling x2, with noise, bias, lrelu*sqrt2."""
  cin: int
  cout: int
  w_dim: int
  res: int                   # output resolution
  up: bool = False

  @nn.compact
  def __call__(self, x, w, pad_map=None):
    style = _Dense(self.w_dim, self.cin, bias_init=1.0, act=False, name="style")(w)   # [B, Cin]
    weight = self.param("weight", nn.initializers.normal(1.0), (3, 3, self.cin, self.cout))
    bias = self.param("bias", nn.initializers.zeros, (self.cout,))
    strength = self.param("noise_strength", nn.initializers.zeros, ())
    noise = self.param("noise", nn.initializers.normal(1.0), (1, self.res, self.res, 1))
    if self.up:
      fir = self.param("filter", lambda k, s: _fir(), (4, 4))
    k = weight * (1.0 / math.sqrt(self.cin * 9))
    xm = x * style[:, None, None, :]
    if self.up:
      if pad_map is not None:
        raise PaddingSlotError("padding maps for upsampling layers are not supported")
      y = L.conv_transpose2d_torch(xm, k, stride=2)
      y = upfirdn2d(y, fir * 4.0, pad=(1, 1, 1, 1))
    elif pad_map is None:
      y = L.conv2d(xm, k, padding=1)
    else:
      crop = _centre_crop(jnp.asarray(pad_map, xm.dtype), self.res + 2)
      y = L.conv2d(crop.at[:, 1:-1, 1:-1, :].set(xm), k, padding=0)
    dcoef = jax.lax.rsqrt(jnp.einsum("hwio,bi->bo", jnp.square(k), jnp.square(style)) + 1e-8)
    y = y * dcoef[:, None, None, :]
    return stylegan2.fused_lrelu(stylegan2.noise_inject(y, noise, strength), bias), style


def _fir():
  """The default [1, 3, 3, 1] FIR (normalised outer product); checkpoints carry their own."""
  return jnp.outer(jnp.array([1., 3., 3., 1.]), jnp.array([1., 3., 3., 1.])) / 64.0


class _ToRGB(nn.Module):
  """1x1 modulated conv without demodulation; linear output."""
  cin: int
  cout: int
  w_dim: int

  @nn.compact
  def __call__(self, x, w):
    style = _Dense(self.w_dim, self.cin, bias_init=1.0, act=False, name="style")(w)
    weight = self.param("weight", nn.initializers.normal(1.0), (1, 1, self.cin, self.cout))
    bias = self.param("bias", nn.initializers.zeros, (self.cout,))
    xm = x * (style * (1.0 / math.sqrt(self.cin)))[:, None, None, :]
    return L.conv2d(xm, weight) + bias, style


class _Mapping(nn.Module):
  cfg: PadInvGeneratorConfig

  @nn.compact
  def __call__(self, z, intermediates=None):
    c = self.cfg
    x = L.pixel_norm(z)
    if intermediates is not None:
      intermediates["mapping.normalized_z"] = x
    for i in range(c.mapping_layers):
      din = c.z_dim if i == 0 else c.mapping_fmaps
      dout = c.w_dim if i == c.mapping_layers - 1 else c.mapping_fmaps
      x = _Dense(din, dout, lr_mul=c.mapping_lr_mul, name=f"dense{i}")(x)
      if intermediates is not None:
        intermediates[f"mapping.dense{i}"] = x
    return x


class _EarlyLayer(nn.Module):
  channels: int

  @nn.compact
  def __call__(self):
    return self.param("const", nn.initializers.normal(1.0), (1, 4, 4, self.channels))


class _Synthesis(nn.Module):
  cfg: PadInvGeneratorConfig

  @nn.compact
  def __call__(self, wp, maps=None, intermediates=None):
    c = self.cfg
    maps = {k: v for k, v in (maps or {}).items() if v is not None}
    allowed = c.slot_shapes()
    for s, m in maps.items():
      if s not in allowed:
        raise PaddingSlotError(
            f"slot {s} cannot take a padding map; allowed slots: {sorted(allowed)} (0 = constant, "
            f"k+1 = non-upsampling synthesis.layer{{k}})")
      if m.ndim != 4 or m.shape[-1] != allowed[s][1] or m.shape[0] != wp.shape[0]:
        raise PaddingSlotError(f"slot {s}: map shape {m.shape}, expected [B={wp.shape[0]}, S, S, "
                               f"C={allowed[s][1]}]")
    const = _EarlyLayer(c.channels_at(4), name="early_layer")()
    fir = self.param("filter", lambda k, s: _fir(), (4, 4))
    b = wp.shape[0]
    if 0 in maps:
      x = _centre_crop(jnp.asarray(maps[0], wp.dtype), 4)
    else:
      x = jnp.broadcast_to(const.astype(wp.dtype), (b,) + const.shape[1:])
    img = None
    for k in range(c.num_layers):
      cin, cout = c.layer_channels(k)
      x, style = _ModConv(cin, cout, c.w_dim, c.layer_resolution(k), up=k % 2 == 1,
                          name=f"layer{k}")(x, wp[:, k], maps.get(k + 1))
      if intermediates is not None:
        intermediates[f"act.layer{k}"] = x
        intermediates[f"style.layer{k}"] = style
      if k % 2 == 0:
        j = k // 2
        rgb, style = _ToRGB(cout, c.image_channels, c.w_dim, name=f"output{j}")(x, wp[:, k + 1])
        if intermediates is not None:
          intermediates[f"rgb.output{j}"] = rgb
          intermediates[f"style.output{j}"] = style
        img = rgb if img is None else upfirdn2d(img, fir * 4.0, up=2, pad=(2, 1, 2, 1)) + rgb
    return img


class PadInvGenerator(nn.Module):
  """Hammer StyleGAN2 generator with optional padding maps.

  ``apply(v, z)`` → image; ``apply(v, z, method="mapping")`` → w ``[B, w_dim]``;
  ``apply(v, wp, maps, method="synthesis")`` → image ``[B, R, R, 3]`` (NHWC, nominal [-1, 1]).
  """
  cfg: PadInvGeneratorConfig

  def setup(self):
    self.mapping_net = _Mapping(self.cfg, name="mapping")
    self.synthesis_net = _Synthesis(self.cfg, name="synthesis")
    self.w_avg = self.param("w_avg", nn.initializers.zeros, (self.cfg.w_dim,))

  def mapping(self, z, intermediates=None):
    """``z [B, z_dim]`` → ``w [B, w_dim]`` (no truncation)."""
    chex.assert_shape(z, (None, self.cfg.z_dim))
    return self.mapping_net(z, intermediates)

  def synthesis(self, wp, maps: Optional[Mapping[int, jax.Array]] = None, intermediates=None):
    """Renders ``wp [B, n >= num_ws, w_dim]`` with padding ``maps {slot: [B, S, S, C]}``.

    Rows ``>= num_ws`` are ignored (PadInv's encoder may emit more). ``intermediates``, when
    a dict, receives ``act.layer{k}``, ``style.layer{k}``, ``rgb.output{j}``, ``style.output{j}``.
    """
    if wp.ndim != 3 or wp.shape[1] < self.cfg.num_ws or wp.shape[2] != self.cfg.w_dim:
      raise ValueError(f"wp must be [B, >= {self.cfg.num_ws}, {self.cfg.w_dim}], got {wp.shape}")
    return self.synthesis_net(wp, maps, intermediates)

  def average_w(self):
    return self.w_avg

  def __call__(self, z, maps=None):
    w = self.mapping(z)
    wp = jnp.broadcast_to(w[:, None, :], (w.shape[0], self.cfg.num_ws, w.shape[1]))
    return self.synthesis(wp, maps)
