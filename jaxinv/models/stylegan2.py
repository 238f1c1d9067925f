"""StyleGAN2 generator (config F, "skip" architecture) and the rosinality discriminator.

One generator module serves the PyTorch formats (genforce/mGANprior, rosinality
``stylegan2-pytorch`` and NVIDIA's StyleGAN2-ADA pickles — the last add ``c_dim``, a
label embedding ``mapping/embed`` concatenated to the normalised z, and ``conv_clamp``,
a clip of every conv / toRGB output); the converters map their key names onto the
genforce-style tree below, and the two formats' differences are explicit:
the channel table is a config field (``channels``), the modulation bias offset
(genforce/NVlabs add a constant +1 at run time, rosinality stores it included)
is ``style_bias_offset``, and rosinality's up-conv kernels are flipped back by
its converter.

Parts (each callable through ``module.apply(vars, ..., method=...)``):

* ``mapping(z)``: PixelNorm then ``mapping_layers`` × ``lrelu(x·W/√in·lr + b·lr)·√2`` → w ``[B, w_dim]``.
* ``truncate(w, psi, layers)``: ``w_avg + (wp - w_avg)·c_l`` (``c_l = psi`` for rows
  ``< layers``); accepts w ``[B, D]`` (repeated to all rows) or w+ ``[B, L, D]``.
* ``synthesis(state, wp, start, stop)``: a **sequence of layers**::

    k:     0            1       2        3        4        5        ...  3n-1
    unit:  early_layer  layer0  output0  layer1   layer2   output1  ...  output{n-1}
           (const)      (4x4)   (toRGB)  (up 8x8) (8x8)    (toRGB)

  with ``n`` resolution blocks. ``layer{i}`` uses row ``wp[:, i]``; ``output{b}``
  uses ``wp[:, 2b+1]`` (the row of the next block's up-conv). The state passed
  between units is ``(x, img)``: ``x [B, r, r, C]`` and the running skip image
  (None before ``output0``); ``stop = num_layers`` returns the image
  ``[B, R, R, C_img]`` (NHWC, not clamped). L = ``num_ws`` = 2·log2(R) - 2.

Reusable building blocks (PadInv and the Swapping Autoencoder use them):
:func:`style_affine`, :func:`modulated_conv2d` (modulates activations, then
demodulates the outputs: equal to the grouped-conv form), :func:`noise_inject`,
:func:`fused_lrelu`, :func:`upsample_conv_transpose`, :func:`upsample_skip`,
:class:`ModulatedLayer`, :class:`ToRGB`.

Params: ``mapping/dense{i}/{weight [in,out], bias}``, ``truncation/w_avg``,
``synthesis/early_layer/const [4,4,C]``, ``synthesis/layer{i}/{weight [3,3,in,out],
bias, noise_strength [], noise [r,r], style_weight [w_dim,in], style_bias [in]}``,
``synthesis/output{b}/{weight [1,1,C,3], bias, style_weight, style_bias}``.
Noise modes as in :mod:`jaxinv.models.stylegan` (``"const"``, ``"zero"``,
``"random"`` via the ``"noise"`` rng, or explicit per-layer maps).

References:
  Karras et al., Analyzing and Improving the Image Quality of StyleGAN, https://arxiv.org/abs/1912.04958
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxinv.models import layers as L
from jaxinv.models.layered import LayeredConfig, LayerIndexError
from jaxinv.models.stylegan import _Dense, _Truncation, resolve_noise, truncate_wp, truncation_coefs
from jaxinv.models.upfirdn import make_kernel, upfirdn2d
from jaxinv.ops.minibatch import minibatch_stddev

__all__ = ["StyleGAN2Config", "StyleGAN2Generator", "StyleGAN2Discriminator",
           "DiscriminatorConfig", "style_affine", "modulated_conv2d", "noise_inject",
           "fused_lrelu", "upsample_conv_transpose", "upsample_skip", "blur", "ModulatedLayer",
           "ToRGB", "minibatch_stddev", "truncation_coefs", "clip", "NvidiaDiscriminatorConfig", "NvidiaDiscriminator", "infer_config", "rosinality_channels", "MODEL_SETTINGS",
           "LayerIndexError"]

SQRT2 = math.sqrt(2.0)

# genforce models/model_settings.py STYLEGAN2_* defaults (the files carry none).
MODEL_SETTINGS = {"truncation_psi": 0.5, "truncation_layers": 18, "randomize_noise": False}

_DIMS = ("NHWC", "HWIO", "NHWC")


# ----------------------------------------------------------------------------- building blocks

def fused_lrelu(x, bias=None):
  """``lrelu(x + bias, 0.2)·√2`` (StyleGAN2 / rosinality ``FusedLeakyReLU``)."""
  if bias is not None:
    x = x + bias
  return L.lrelu(x) * SQRT2


def style_affine(w, weight, bias, offset: float = 1.0):
  """Style ``s = w·W/√w_dim + b + offset`` ``[B, C_in]`` from w ``[B, w_dim]``, ``W [w_dim, C_in]``."""
  return w @ (weight * (1.0 / math.sqrt(weight.shape[0]))) + bias + offset


def upsample_conv_transpose(x, kernel):
  """StyleGAN2's stride-2 transposed conv (size ``2H+1``), before the blur.

  ``kernel [k, k, in, out]`` in genforce/NVlabs orientation: the result is
  ``conv_transpose2d`` with the spatially flipped kernel, i.e. a correlation of the
  zero-dilated input with ``kernel`` and padding ``k - 1``.
  """
  k = kernel.shape[0]
  return lax.conv_general_dilated(x, kernel, (1, 1), ((k - 1, k - 1), (k - 1, k - 1)),
                                  lhs_dilation=(2, 2), dimension_numbers=_DIMS)


def blur(x, fir=(1, 3, 3, 1), pad=(1, 1, 1, 1), gain: float = 1.0, up: int = 1, down: int = 1):
  """FIR filter ``outer(fir)/sum·gain`` through upfirdn2d (NHWC)."""
  return upfirdn2d(x, make_kernel(fir) * gain, up=up, down=down, pad=pad)


def upsample_skip(img, fir=(1, 3, 3, 1)):
  """Skip-image ×2 upsampling: upfirdn2d(up=2, kernel·4, pad (2, 1)) (``[B,H,W,C]`` → ``[B,2H,2W,C]``)."""
  p = len(fir) - 2
  return blur(img, fir, pad=((p + 1) // 2 + 1, p // 2, (p + 1) // 2 + 1, p // 2), gain=4.0, up=2)


def modulated_conv2d(x, kernel, s, *, demodulate: bool = True, up: bool = False,
                     padding=None, fir=(1, 3, 3, 1), eps: float = 1e-8):
  """Modulated convolution with equalized lr, NHWC.

  Computes ``conv(x, W'[b])`` with ``W'[b] = W/√(in·k²)·s[b, in]``, demodulated by
  ``rsqrt(Σ_{kh,kw,in} W'² + eps)`` per (b, out) when ``demodulate``. Implemented by
  scaling the activations and the outputs (mathematically the grouped conv).

  Args:
    x: ``[B, H, W, in]``.
    kernel: ``[k, k, in, out]`` (raw stored weight, no lr scale).
    s: styles ``[B, in]``.
    up: stride-2 transposed conv + ``[1,3,3,1]`` blur (×4, pad 1) → ``[B, 2H, 2W, out]``.
    padding: conv padding (default ``k // 2``; pass 0 with a pre-padded ``x``, as PadInv does).
  """
  k, _, cin, cout = kernel.shape
  chex.assert_shape(x, (None, None, None, cin))
  chex.assert_shape(s, (x.shape[0], cin))
  w = kernel * (1.0 / math.sqrt(cin * k * k))
  x = x * s[:, None, None, :].astype(x.dtype)
  if up:
    x = upsample_conv_transpose(x, w)
    p = len(fir) - 2 - (k - 1)
    pad0, pad1 = (p + 1) // 2 + 1, p // 2 + 1
    x = blur(x, fir, pad=(pad0, pad1, pad0, pad1), gain=4.0)
  else:
    x = L.conv2d(x, w, padding=k // 2 if padding is None else padding)
  if demodulate:
    d = lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(w), axis=(0, 1)) + eps)   # [B, out]
    x = x * d[:, None, None, :]
  return x


def clip(x, limit: float | None):
  """NVIDIA ``conv_clamp``: ``clamp(x, -limit, limit)``; None leaves ``x`` as it is."""
  return x if limit is None else jnp.clip(x, -limit, limit)


def noise_inject(x, noise, strength):
  """``x + noise·strength``; noise ``[B|1, H, W, 1]``, strength a scalar (StyleGAN2) or ``[C]``."""
  return x + noise * strength


class ModulatedLayer(nn.Module):
  """Modulated 3×3 conv (optionally ×2 up) → noise → bias → lrelu·√2 (genforce ``layer{i}``)."""
  cin: int
  cout: int
  w_dim: int
  res: int                      # output resolution (noise map size)
  up: bool = False
  index: int = 0                # position in the noise list
  style_bias_offset: float = 1.0
  kernel_size: int = 3
  clamp: float | None = None    # NVIDIA conv_clamp: output clipped to ±clamp after the activation

  def setup(self):
    normal = nn.initializers.normal(1.0)
    k = self.kernel_size
    self.weight = self.param("weight", normal, (k, k, self.cin, self.cout))
    self.bias = self.param("bias", nn.initializers.zeros, (self.cout,))
    self.noise_strength = self.param("noise_strength", nn.initializers.zeros, ())
    self.noise = self.param("noise", normal, (self.res, self.res))
    self.style_weight = self.param("style_weight", normal, (self.w_dim, self.cin))
    self.style_bias = self.param("style_bias", nn.initializers.zeros, (self.cin,))

  def style(self, w):
    return style_affine(w, self.style_weight, self.style_bias, self.style_bias_offset)

  def __call__(self, x, w, noise="const", padding=None):
    s = self.style(w)
    x = modulated_conv2d(x, self.weight, s, demodulate=True, up=self.up, padding=padding)
    n = resolve_noise(noise, self.index, self.res, x.shape[0], self.noise,
                      lambda: self.make_rng("noise"))
    return clip(fused_lrelu(noise_inject(x, n, self.noise_strength), self.bias), self.clamp)


class ToRGB(nn.Module):
  """Modulated 1×1 conv without demodulation + bias (genforce ``output{b}``); no skip here."""
  cin: int
  cout: int
  w_dim: int
  style_bias_offset: float = 1.0
  clamp: float | None = None

  def setup(self):
    normal = nn.initializers.normal(1.0)
    self.weight = self.param("weight", normal, (1, 1, self.cin, self.cout))
    self.bias = self.param("bias", nn.initializers.zeros, (self.cout,))
    self.style_weight = self.param("style_weight", normal, (self.w_dim, self.cin))
    self.style_bias = self.param("style_bias", nn.initializers.zeros, (self.cin,))

  def style(self, w):
    return style_affine(w, self.style_weight, self.style_bias, self.style_bias_offset)

  def __call__(self, x, w):
    return clip(modulated_conv2d(x, self.weight, self.style(w), demodulate=False) + self.bias,
                self.clamp)


class _Const(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, batch: int):
    c = self.param("const", nn.initializers.normal(1.0), (4, 4, self.channels))
    return jnp.broadcast_to(c[None], (batch,) + c.shape)


# ----------------------------------------------------------------------------- generator

def rosinality_channels(size: int, channel_multiplier: int = 2) -> tuple[int, ...]:
  """The stock rosinality channel table ``{4..32: 512, 64: 256·cm, …}`` for 4 .. size."""
  table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
           128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
           512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
  return tuple(table[4 * 2 ** b] for b in range(int(math.log2(size)) - 1))


def fmaps_channels(size: int, fmaps_base: int, fmaps_max: int) -> tuple[int, ...]:
  """genforce/NVlabs ``min(fmaps_base // r, fmaps_max)`` for r = 4 .. size."""
  return tuple(min(fmaps_base // (4 * 2 ** b), fmaps_max) for b in range(int(math.log2(size)) - 1))


@dataclasses.dataclass(frozen=True)
class StyleGAN2Config(LayeredConfig):
  """Architecture of a StyleGAN2 ("skip") generator."""
  FAMILY = "StyleGAN2"
  resolution: int = 1024            # output size, a power of two in [8, 1024]
  z_dim: int = 512
  w_dim: int = 512
  channels: tuple = (512,) * 7 + (256, 128)   # channels at 4, 8, …, resolution (one per block)
  image_channels: int = 3
  mapping_layers: int = 8
  mapping_hidden: int = 512         # hidden width of the mapping MLP
  mapping_lr_mul: float = 0.01
  style_bias_offset: float = 1.0    # constant added to the stored modulation bias (rosinality: 0)
  final_tanh: bool = False
  c_dim: int = 0                    # NVIDIA StyleGAN2-ADA label size (0: unconditional)
  conv_clamp: float | None = None   # NVIDIA StyleGAN2-ADA clamp of conv / toRGB outputs

  def __post_init__(self):
    r = self.resolution
    if r < 8 or r > 1024 or r & (r - 1):
      raise ValueError(f"StyleGAN2 resolution must be a power of two in [8, 1024], got {r}")
    object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
    if self.conv_clamp is not None:
      object.__setattr__(self, "conv_clamp", float(self.conv_clamp))
    if len(self.channels) != self.num_blocks:
      raise ValueError(f"channels needs one entry per resolution 4..{r} ({self.num_blocks}), "
                       f"got {len(self.channels)}")

  @classmethod
  def genforce(cls, resolution, z_dim, w_dim, fmaps_base, fmaps_max, **kw):
    return cls(resolution=resolution, z_dim=z_dim, w_dim=w_dim,
               channels=fmaps_channels(resolution, fmaps_base, fmaps_max),
               mapping_hidden=fmaps_max, **kw)

  @classmethod
  def rosinality(cls, size, style_dim=512, n_mlp=8, channel_multiplier=2, lr_mlp=0.01,
                 channels=None):
    return cls(resolution=size, z_dim=style_dim, w_dim=style_dim,
               channels=tuple(channels) if channels else rosinality_channels(size, channel_multiplier),
               mapping_layers=n_mlp, mapping_hidden=style_dim, mapping_lr_mul=lr_mlp,
               style_bias_offset=0.0)

  @property
  def num_blocks(self) -> int:
    return int(math.log2(self.resolution)) - 1

  @property
  def num_ws(self) -> int:
    """Rows of w+: 2·log2(R) - 2."""
    return 2 * self.num_blocks

  @property
  def num_convs(self) -> int:
    """Synthesis conv layers (= noise maps)."""
    return 2 * self.num_blocks - 1

  @property
  def num_layers(self) -> int:
    """Length of the synthesis unit sequence (const, convs, toRGBs)."""
    return 3 * self.num_blocks

  def channels_at(self, res: int) -> int:
    return self.channels[int(math.log2(res)) - 2]

  def units(self) -> list[tuple[str, int, int | None]]:
    """``(kind, index, w_row)`` per unit: ``("const", 0, None)``, ``("conv", i, i)``, ``("rgb", b, 2b+1)``."""
    out = [("const", 0, None), ("conv", 0, 0), ("rgb", 0, 1)]
    for b in range(1, self.num_blocks):
      out += [("conv", 2 * b - 1, 2 * b - 1), ("conv", 2 * b, 2 * b), ("rgb", b, 2 * b + 1)]
    return out

  def layer_names(self) -> list[str]:
    names = {"const": lambda i: "early_layer", "conv": lambda i: f"layer{i}",
             "rgb": lambda i: f"output{i}"}
    return [names[kind](i) for kind, i, _ in self.units()]

  def w_index(self, k: int) -> int | None:
    return self.units()[k][2]

  def feature_shapes(self) -> list[tuple[int, int, int] | None]:
    """``(H, W, C)`` of the ``x`` that unit ``k`` receives (0: nothing; last: the image)."""
    shapes: list = [None]
    for kind, i, _ in self.units():
      if kind == "const":
        shapes.append((4, 4, self.channels[0]))
      elif kind == "conv":
        res = 4 * 2 ** ((i + 1) // 2)
        shapes.append((res, res, self.channels_at(res)))
      else:
        shapes.append(shapes[-1])
    shapes[-1] = (self.resolution, self.resolution, self.image_channels)
    return shapes


class _Mapping(nn.Module):
  cfg: StyleGAN2Config

  @nn.compact
  def __call__(self, z, c=None):
    cfg = self.cfg
    chex.assert_shape(z, (None, cfg.z_dim))
    x = L.pixel_norm(z)
    if cfg.c_dim:
      if c is None:
        raise ValueError(f"this generator is conditional: it needs labels c [B, {cfg.c_dim}]")
      chex.assert_shape(c, (z.shape[0], cfg.c_dim))
      y = _Dense(cfg.c_dim, cfg.w_dim, name="embed")(c.astype(x.dtype))
      x = jnp.concatenate([x, L.pixel_norm(y)], axis=1)
    elif c is not None and c.size:
      raise ValueError("this generator is unconditional: it takes no labels")
    for i in range(cfg.mapping_layers):
      cin = (cfg.z_dim + (cfg.w_dim if cfg.c_dim else 0)) if i == 0 else cfg.mapping_hidden
      cout = cfg.w_dim if i == cfg.mapping_layers - 1 else cfg.mapping_hidden
      x = fused_lrelu(_Dense(cin, cout, cfg.mapping_lr_mul, 1.0, name=f"dense{i}")(x))
    return x


class _Synthesis(nn.Module):
  cfg: StyleGAN2Config

  def setup(self):
    cfg = self.cfg
    off = cfg.style_bias_offset
    self.early_layer = _Const(cfg.channels[0])
    convs = []
    for i in range(cfg.num_convs):
      res = 4 * 2 ** ((i + 1) // 2)
      up = i % 2 == 1
      cin = cfg.channels_at(res // 2 if up else res)
      convs.append(ModulatedLayer(cin, cfg.channels_at(res), cfg.w_dim, res, up, i, off,
                                  clamp=cfg.conv_clamp, name=f"layer{i}"))
    self.layers = convs
    self.outputs = [ToRGB(cfg.channels[b], cfg.image_channels, cfg.w_dim, off,
                          clamp=cfg.conv_clamp, name=f"output{b}")
                    for b in range(cfg.num_blocks)]

  def unit(self, k, state, wp, noise="const"):
    kind, i, row = self.cfg.units()[k]
    if kind == "const":
      return self.early_layer(wp.shape[0]), None
    x, img = state
    if kind == "conv":
      return self.layers[i](x, wp[:, row], noise), img
    rgb = self.outputs[i](x, wp[:, row])
    return x, rgb if img is None else rgb + upsample_skip(img)

  def __call__(self, state, wp, start=0, stop=None, noise="const"):
    cfg = self.cfg
    stop = cfg.num_layers if stop is None else stop
    cfg.check_layer(start)
    cfg.check_layer(stop)
    chex.assert_shape(wp, (None, cfg.num_ws, cfg.w_dim))
    for k in range(start, stop):
      state = self.unit(k, state, wp, noise)
    if stop == cfg.num_layers:
      img = state[1]
      return jnp.tanh(img) if cfg.final_tanh else img
    return state

  def styles(self, wp):
    out = []
    for kind, i, row in self.cfg.units():
      if kind == "conv":
        out.append(self.layers[i].style(wp[:, row]))
    out.append(self.outputs[-1].style(wp[:, -1]))
    return out

  def intermediates(self, wp, noise="const"):
    """Every unit's output by name: ``early_layer`` / ``layer{i}`` → x; ``output{b}`` → the
    toRGB output **before** the skip addition (genforce hooks), ``skip{b}`` → after it
    (rosinality), ``style.layer{i}`` / ``style.output{b}`` → the modulation styles."""
    out, state = {}, None
    names = self.cfg.layer_names()
    for k, (kind, i, row) in enumerate(self.cfg.units()):
      if kind == "rgb":
        out[f"output{i}"] = self.outputs[i](state[0], wp[:, row])
        out[f"style.output{i}"] = self.outputs[i].style(wp[:, row])
      elif kind == "conv":
        out[f"style.layer{i}"] = self.layers[i].style(wp[:, row])
      state = self.unit(k, state, wp, noise)
      if kind == "rgb":
        out[f"skip{i}"] = state[1]
      else:
        out[names[k]] = state[0]
    return out


class MappedGenerator(nn.Module):
  """What StyleGAN2's and StyleGAN3's generators share: mapping ``(z, c) → w``, truncation toward
  ``w_avg`` and a synthesis network (``synthesis_module``, set by the subclass) under the
  checkpoint names ``mapping`` / ``truncation`` / ``synthesis``."""
  synthesis_module = None

  def setup(self):
    self.mapping_net = _Mapping(self.config, name="mapping")
    self.truncation = _Truncation(self.config.w_dim, name="truncation")
    self.synthesis_net = self.synthesis_module(self.config, name="synthesis")

  def mapped_wp(self, z, c, truncation_psi, truncation_layers):
    """The w+ ``__call__`` renders: mapping then truncation (at init: creates ``w_avg`` and, for a
    conditional model, stands in zero labels)."""
    if self.is_initializing():
      self.truncation.average()
      if self.config.c_dim and c is None:
        c = jnp.zeros((z.shape[0], self.config.c_dim), z.dtype)
    return self.truncate(self.mapping(z, c), truncation_psi, truncation_layers)

  def mapping(self, z, c=None):
    """z ``[B, z_dim]`` (and labels c ``[B, c_dim]`` when conditional) → w ``[B, w_dim]``."""
    return self.mapping_net(z, c)

  def truncate(self, w, truncation_psi: float = 1.0, truncation_layers: int | None = None):
    """w ``[B, D]`` or w+ ``[B, L, D]`` → truncated w+ ``[B, L, D]`` (layers None: all rows)."""
    layers = self.config.num_ws if truncation_layers is None else truncation_layers
    return truncate_wp(self.truncation, self.config, w, truncation_psi, layers)

  def average_w(self):
    return self.truncation.average()


class StyleGAN2Generator(MappedGenerator):
  """StyleGAN2 generator: ``__call__(z)`` → image ``[B, R, R, C]`` (see module doc)."""
  config: StyleGAN2Config
  synthesis_module = _Synthesis

  def __call__(self, z, truncation_psi: float = 1.0, truncation_layers: int | None = None,
               noise="const", c=None):
    wp = self.mapped_wp(z, c, truncation_psi, truncation_layers)
    return self.synthesis_net(None, wp, 0, None, noise)

  def synthesis(self, state, wp, start: int = 0, stop: int | None = None, noise="const"):
    """Runs units ``[start, stop)`` on ``state = (x, img)`` with w+ ``wp [B, L, D]``."""
    return self.synthesis_net(state, wp, start, stop, noise)

  def styles(self, wp):
    """genforce ``generate_style``: ``layer{i}`` styles, then the last toRGB's."""
    return self.synthesis_net.styles(wp)

  def intermediates(self, wp, noise="const"):
    return self.synthesis_net.intermediates(wp, noise)


def infer_config(shapes: dict[str, Sequence[int]]) -> StyleGAN2Config:
  """Infers the architecture from genforce StyleGAN2 state_dict shapes."""
  if "synthesis.early_layer.const" not in shapes:
    raise ValueError("not a genforce StyleGAN2 state_dict (no synthesis.early_layer.const)")
  import re
  out_idx = sorted(int(m.group(1)) for m in map(re.compile(r"synthesis\.output(\d+)\.weight").fullmatch, shapes) if m)
  nb = out_idx[-1] + 1
  if out_idx != list(range(nb)):
    raise ValueError(f"toRGB layers {out_idx} are not 0..{nb - 1} (only the 'skip' "
                     "architecture is supported)")
  mapping_layers = len([k for k in shapes if k.startswith("mapping.dense") and k.endswith(".fc.weight")])
  channels = tuple(int(shapes[f"synthesis.output{b}.weight"][2]) for b in range(nb))
  return StyleGAN2Config(
      resolution=4 * 2 ** out_idx[-1], z_dim=int(shapes["mapping.dense0.fc.weight"][1]),
      w_dim=int(shapes["truncation.w_avg"][0]), channels=channels,
      image_channels=int(shapes[f"synthesis.output{nb - 1}.weight"][3]),
      mapping_layers=mapping_layers, mapping_hidden=int(shapes["mapping.dense0.fc.weight"][0]))


# ----------------------------------------------------------------------------- discriminator

@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """rosinality StyleGAN2 ``Discriminator`` (resnet), channels per resolution 4 .. size."""
  resolution: int = 1024
  channels: tuple = (512,) * 5 + (512, 256, 128, 64)
  image_channels: int = 3
  stddev_group: int = 4
  stddev_feat: int = 1

  def __post_init__(self):
    object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

  def channels_at(self, res):
    return self.channels[int(math.log2(res)) - 2]


class _EqConv(nn.Module):
  cin: int
  cout: int
  k: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = False

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (self.k, self.k, self.cin, self.cout))
    x = L.conv2d(x, w * (1.0 / math.sqrt(self.cin * self.k * self.k)), stride=self.stride,
                 padding=self.padding)
    if self.use_bias:
      x = x + self.param("bias", nn.initializers.zeros, (self.cout,))
    return x


class _ConvLayer(nn.Module):
  """rosinality ``ConvLayer``: [Blur] → EqualConv2d → [FusedLeakyReLU(bias)]."""
  cin: int
  cout: int
  k: int
  downsample: bool = False
  activate: bool = True

  @nn.compact
  def __call__(self, x):
    if self.downsample:
      p = 4 - 2 + (self.k - 1)
      x = blur(x, pad=((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
      x = _EqConv(self.cin, self.cout, self.k, 2, 0, name="conv")(x)
    else:
      x = _EqConv(self.cin, self.cout, self.k, 1, self.k // 2, name="conv")(x)
    if self.activate:
      x = fused_lrelu(x, self.param("bias", nn.initializers.zeros, (self.cout,)))
    return x


class _ResBlock(nn.Module):
  cin: int
  cout: int

  @nn.compact
  def __call__(self, x):
    y = _ConvLayer(self.cin, self.cin, 3, name="conv1")(x)
    y = _ConvLayer(self.cin, self.cout, 3, downsample=True, name="conv2")(y)
    s = _ConvLayer(self.cin, self.cout, 1, downsample=True, activate=False, name="skip")(x)
    return (y + s) / SQRT2


class StyleGAN2Discriminator(nn.Module):
  """rosinality StyleGAN2 discriminator: image ``[B, R, R, 3]`` → logits ``[B, 1]``.

  Params: ``convs0``, ``convs{r}/{conv1,conv2,skip}/conv/weight`` (+ ``bias``),
  ``final_conv``, ``final_linear0``, ``final_linear1``. ``features`` returns the
  ``[B, 4, 4, C]`` map before minibatch stddev (usable as a feature loss).
  """
  config: DiscriminatorConfig

  def setup(self):
    cfg = self.config
    n = int(math.log2(cfg.resolution))
    self.convs0 = _ConvLayer(cfg.image_channels, cfg.channels_at(cfg.resolution), 1)
    self.blocks = [_ResBlock(cfg.channels_at(2 ** i), cfg.channels_at(2 ** (i - 1)),
                             name=f"convs{n - i + 1}") for i in range(n, 2, -1)]
    c4 = cfg.channels_at(4)
    self.final_conv = _ConvLayer(c4 + cfg.stddev_feat, c4, 3)
    self.final_linear0 = _Dense(c4 * 16, c4)
    self.final_linear1 = _Dense(c4, 1)

  def features(self, img):
    x = self.convs0(img)
    for blk in self.blocks:
      x = blk(x)
    return x

  def __call__(self, img):
    cfg = self.config
    x = self.features(img)
    x = minibatch_stddev(x, cfg.stddev_group, cfg.stddev_feat)
    x = self.final_conv(x)
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)   # flatten in (C, H, W) order
    x = fused_lrelu(self.final_linear0(x))
    return self.final_linear1(x)


# ----------------------------------------------------------------------------- NVIDIA (ADA) discriminator

@dataclasses.dataclass(frozen=True)
class NvidiaDiscriminatorConfig:
  """NVIDIA StyleGAN2-ADA / StyleGAN3 ``Discriminator`` ("resnet"), channels per resolution 4 .. R."""
  resolution: int = 1024
  channels: tuple = (512,) * 9      # min(channel_base // r, channel_max) for r = 4 .. R
  image_channels: int = 3
  c_dim: int = 0
  cmap_dim: int = 0                 # 0: unconditional
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  conv_clamp: float | None = None

  def __post_init__(self):
    object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
    if self.conv_clamp is not None:
      object.__setattr__(self, "conv_clamp", float(self.conv_clamp))

  def channels_at(self, res):
    return self.channels[int(math.log2(res)) - 2]


class _NvConv(nn.Module):
  """NVIDIA ``Conv2dLayer``: [FIR + stride-2 down] conv with ``1/√(in·k²)``, bias, act·gain, clamp."""
  cin: int
  cout: int
  k: int
  down: bool = False
  activate: bool = True
  use_bias: bool = True
  gain: float = 1.0
  clamp: float | None = None

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (self.k, self.k, self.cin, self.cout))
    w = w * (1.0 / math.sqrt(self.cin * self.k * self.k))
    if self.down:
      p = self.k // 2 + 1 if self.k > 1 else 1
      x = blur(x, pad=(p, p, p, p), down=1 if self.k > 1 else 2)
      x = L.conv2d(x, w, stride=2 if self.k > 1 else 1)
    else:
      x = L.conv2d(x, w, padding=self.k // 2)
    if self.use_bias:
      x = x + self.param("bias", nn.initializers.zeros, (self.cout,))
    gain = self.gain * (SQRT2 if self.activate else 1.0)
    x = (L.lrelu(x) if self.activate else x) * gain
    return clip(x, None if self.clamp is None else self.clamp * self.gain)


class NvidiaDiscriminator(nn.Module):
  """NVIDIA StyleGAN2-ADA discriminator (resnet): image ``[B, R, R, C]`` (+ labels) → ``[B, 1]``.

  Params: ``b{r}/{fromrgb (first block), conv0, conv1, skip}``, ``b4/{conv, fc, out}``,
  ``mapping/{embed, dense{i}}`` when conditional. ``intermediates`` returns every block's
  output, ``cmap`` and the epilogue stages.
  """
  config: NvidiaDiscriminatorConfig

  def setup(self):
    cfg = self.config
    n = int(math.log2(cfg.resolution))
    blocks = {}
    for i in range(n, 2, -1):
      r = 2 ** i
      tmp, out = cfg.channels_at(r), cfg.channels_at(r // 2)
      parts = {"conv0": _NvConv(tmp, tmp, 3, clamp=cfg.conv_clamp, name=f"b{r}_conv0"),
               "conv1": _NvConv(tmp, out, 3, down=True, gain=math.sqrt(0.5), clamp=cfg.conv_clamp,
                                name=f"b{r}_conv1"),
               "skip": _NvConv(tmp, out, 1, down=True, activate=False, use_bias=False,
                               gain=math.sqrt(0.5), name=f"b{r}_skip")}
      if i == n:
        parts["fromrgb"] = _NvConv(cfg.image_channels, tmp, 1, clamp=cfg.conv_clamp,
                                   name=f"b{r}_fromrgb")
      blocks[r] = parts
    self.blocks = blocks
    c4 = cfg.channels_at(4)
    self.b4_conv = _NvConv(c4 + cfg.mbstd_num_channels, c4, 3, clamp=cfg.conv_clamp)
    self.b4_fc = _Dense(c4 * 16, c4)
    self.b4_out = _Dense(c4, cfg.cmap_dim or 1)
    if cfg.c_dim:
      self.embed = _Dense(cfg.c_dim, cfg.cmap_dim)
      self.mapping = [_Dense(cfg.cmap_dim, cfg.cmap_dim, cfg.mapping_lr_mul)
                      for _ in range(cfg.mapping_layers)]

  def cmap(self, c):
    x = L.pixel_norm(self.embed(c))
    for layer in self.mapping:
      x = fused_lrelu(layer(x))
    return x

  def intermediates(self, img, c=None):
    cfg = self.config
    out, x = {}, None
    for r, parts in self.blocks.items():
      if "fromrgb" in parts:
        x = parts["fromrgb"](img)
      y = parts["skip"](x)
      x = parts["conv1"](parts["conv0"](x))
      x = y + x
      out[f"b{r}"] = x
    x = minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_channels)
    out["b4.mbstd"] = x
    x = self.b4_conv(x)
    out["b4.conv"] = x
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)   # NCHW flatten
    x = fused_lrelu(self.b4_fc(x))
    out["b4.fc"] = x
    x = self.b4_out(x)
    out["b4.out"] = x
    if cfg.c_dim:
      if c is None:
        raise ValueError(f"this discriminator is conditional: it needs labels c [B, {cfg.c_dim}]")
      cmap = self.cmap(c)
      out["cmap"] = cmap
      x = jnp.sum(x * cmap, axis=1, keepdims=True) / math.sqrt(cfg.cmap_dim)
    out["out"] = x
    return out

  def __call__(self, img, c=None):
    return self.intermediates(img, c)["out"]
