"""Swapping Autoencoder (Park et al., NeurIPS 2020): encoder, generator, D and patch D in Flax.

The encoder E maps an image ``[B, H, W, 3]`` (NHWC, [-1, 1]) to a spatial
*structure* code ``[B, H/16, W/16, Cs]`` and a global *texture* code ``[B, Ct]``,
both L2-normalised over channels. The generator G decodes any (structure,
texture) pair; the image discriminator D and the patch co-occurrence
discriminator Dpatch are needed only to train.

Parameter trees mirror the official ``latest_checkpoint.pth`` keys (``E.``,
``G.``, ``D.stylegan2_D.``, ``Dpatch.``): ``E/FromRGB/Conv/weight`` (HWIO),
``G/HeadResnetBlock0/conv1/conv/modulation/weight`` (``[style, in]``), ... so the
converter is a table. Blur kernels are constants, not parameters.

The generator's modulated convolution is the official "new demodulation" variant,
not StyleGAN2's: the RMS-normalised style multiplies the *activations* and the
demodulation factor is computed from the static weight alone.

All randomness is explicit: G takes a ``noise`` dict ``{"HeadResnetBlock0.conv1":
[1 or B, h, w, 1], ...}`` (missing entry = zero noise; see :func:`make_noise`),
and the patch crops take the uniform draws of :func:`crop_draws`.

References:
  Park et al., Swapping Autoencoder for Deep Image Manipulation, https://arxiv.org/abs/2007.00653
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax import lax

from jaxinv.models import layers as L
from jaxinv.ops import resize as ops_resize

__all__ = ["SAEConfig", "SwappingAutoencoder", "Encoder", "Generator", "Discriminator",
           "PatchDiscriminator", "normalize", "swap_pairs", "blur", "make_noise", "noise_shapes",
           "crop_draws", "crop_params", "random_crops", "infer_config", "from_options", "upsample_bilinear2x"]

SQRT2 = math.sqrt(2.0)
_BLUR_E = (1.0, 2.0, 1.0)          # use_antialias=True encoder kernel
_BLUR_SG2 = (1.0, 3.0, 3.0, 1.0)   # G / D / Dpatch kernel


# --------------------------------------------------------------------------- config

@dataclasses.dataclass(frozen=True)
class SAEConfig:
  """Architecture of a Swapping Autoencoder (E, G, D, Dpatch); widths as the checkpoint has them."""
  crop_size: int = 256                     # training / D input side (E and G are fully convolutional)
  spatial_code_ch: int = 8                 # structure-code channels
  global_code_ch: int = 2048               # texture-code size (also G's style size)
  enc_channels: tuple = (32, 64, 128, 256, 512)   # FromRGB out, then each ResBlockDownBy{1,2,4,..} out
  enc_global_channels: tuple = (1024, 2048)       # DownToGlobalCode ConvLayerDownBy* outs
  gen_head_channels: tuple = (256, 512)           # HeadResnetBlock{0,1} outs
  gen_up_channels: tuple = (512, 512, 256, 128)   # UpsamplingResBlock{16,32,64,128,...} outs
  use_noise: bool = True                   # netG_use_noise (noise weights exist either way)
  d_names: tuple = ("1", "2", "3", "4", "5", "6")  # D ResBlock stage names, high resolution first
  d_channels: tuple = (128, 256, 512, 512, 512, 512, 512)  # convs.0 out, then each stage's out
  d_final_side: int = 4                    # side of D's last map (final_linear in = C * side^2)
  d_linear_ch: int = 512                   # final_linear.0 width
  patch_size: int = 128                    # Dpatch crop side
  patch_names: tuple = ("2", "3", "4", "5") # Dpatch downsampling ResBlock names (before "5","6")
  patch_channels: tuple = (256, 384, 384, 384, 384)  # convs.0 out, then each down block's out
  patch_mid_ch: int = 768                  # convs.5 (non-downsampling ResBlock) out
  patch_out_ch: int = 384                  # convs.6 (3x3, no padding) out
  patch_mlp: tuple = (2048, 2048, 1024)    # pairlinear.0..2 widths (pairlinear.3 -> 1)

  def __post_init__(self):
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if isinstance(v, list):
        object.__setattr__(self, f.name, tuple(v))
    if len(self.enc_channels) < 2 or len(self.gen_up_channels) != len(self.enc_channels) - 1:
      raise ValueError("SAEConfig: gen_up_channels needs one entry per encoder downsampling "
                       f"({len(self.enc_channels) - 1}), got {len(self.gen_up_channels)}")
    if len(self.d_channels) != len(self.d_names) + 1:
      raise ValueError("SAEConfig: d_channels needs convs.0 plus one width per D stage")
    if len(self.patch_channels) != len(self.patch_names) + 1:
      raise ValueError("SAEConfig: patch_channels needs convs.0 plus one width per Dpatch stage")

  @property
  def num_down_sp(self) -> int:
    return len(self.enc_channels) - 1

  @property
  def code_stride(self) -> int:
    """Image side / structure-code side."""
    return 2 ** self.num_down_sp

  def enc_block_names(self) -> list[str]:
    return [f"ResBlockDownBy{2 ** i}" for i in range(self.num_down_sp)]

  def enc_global_names(self) -> list[str]:
    return [f"ConvLayerDownBy{2 ** (self.num_down_sp + i)}"
            for i in range(len(self.enc_global_channels))]

  def gen_up_names(self) -> list[str]:
    return [f"UpsamplingResBlock{2 ** (4 + j)}" for j in range(len(self.gen_up_channels))]

  def noise_layers(self) -> list[str]:
    """Noise-injection layers of G in order (``"HeadResnetBlock0.conv1"``, ...)."""
    blocks = [f"HeadResnetBlock{i}" for i in range(len(self.gen_head_channels))]
    return [f"{b}.conv{c}" for b in blocks + self.gen_up_names() for c in (1, 2)]


def from_options(opts: Mapping) -> SAEConfig:
  """The architecture the official option parser builds from ``opts`` (official names/defaults).

  Implements the official channel rules (see the fixture README); used to train
  from scratch and to cross-check a converted checkpoint against its options.
  """
  g = lambda k, d: opts.get(k, d)
  crop = int(g("crop_size", 256))
  gl_ch, sp_ch = int(g("global_code_ch", 2048)), int(g("spatial_code_ch", 8))
  n_sp, n_gl = int(g("netE_num_downsampling_sp", 4)), int(g("netE_num_downsampling_gl", 2))
  ecap = float(g("netE_scale_capacity", 1.0))
  if float(g("netE_nc_steepness", 2.0)) != 2.0 or not g("use_antialias", True):
    raise ValueError("only netE_nc_steepness=2 and use_antialias=True are supported")
  nc = lambda i: min(gl_ch, int(round(2 ** (5 + i) * ecap)))
  enc = tuple(nc(i) for i in range(n_sp + 1))
  enc_gl = tuple(nc(n_sp + 1 + i) for i in range(n_gl))
  gcap = float(g("netG_scale_capacity", 1.0))
  nf = lambda j: int(min(512, 128 * 2 ** (4 - j)) * gcap)
  n_head = int(g("netG_num_base_resnet_layers", 2))
  head = tuple([max(sp_ch, int(round(nf(0) / 2)))] * (n_head - 1) + [nf(0)])
  up = tuple(nf(j + 1) for j in range(n_sp))
  # D: rosinality widths with multiplier 2*cap, at most 512; the 8x8 and 4x4 stages stay 512
  # (reproduces the fixture's widths and the church D's 28.9M parameters).
  cm = 2 * float(g("netD_scale_capacity", 1.0))
  base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
  dch = lambda r: 512 if r <= 8 else min(512, int(base[r] * cm))
  log_size = int(round(math.log2(crop)))
  d_res = [2 ** i for i in range(log_size, 2, -1)]
  d_names = tuple(str(9 - int(math.log2(r))) if 9 - int(math.log2(r)) > 0 else f"{r}x{r}"
                  for r in d_res)
  d_channels = (dch(2 ** log_size),) + tuple(dch(r // 2) for r in d_res)
  side = int(4 * crop / 2 ** log_size)
  # Dpatch.
  pc = float(g("netPatchD_scale_capacity", 4.0))
  max_nc = int(g("netPatchD_max_nc", 256 + 128))
  pch = {4: min(max_nc, 256 * pc), 8: min(max_nc, 128 * pc), 16: min(max_nc, 64 * pc),
         32: 32 * pc, 64: 16 * pc, 128: 8 * pc, 256: 4 * pc, 512: 2 * pc}
  pch = {k: int(v) for k, v in pch.items()}
  psize = int(g("patch_size", 128))
  p_log = int(math.log2(psize))
  p_res = [2 ** i for i in range(p_log, 2, -1)]
  p_names = tuple(str(7 - int(math.log2(r))) if 7 - int(math.log2(r)) > 0 else f"{r}x{r}"
                  for r in p_res)
  p_channels = (pch[psize],) + tuple(pch[r // 2] for r in p_res)
  return SAEConfig(crop_size=crop, spatial_code_ch=sp_ch, global_code_ch=gl_ch,
                   enc_channels=enc, enc_global_channels=enc_gl, gen_head_channels=head,
                   gen_up_channels=up, use_noise=bool(g("netG_use_noise", True)),
                   d_names=d_names, d_channels=d_channels, d_final_side=side, d_linear_ch=dch(4),
                   patch_size=psize, patch_names=p_names, patch_channels=p_channels,
                   patch_mid_ch=2 * pch[4], patch_out_ch=pch[4])


def _stage_order(names):
  """D/Dpatch stage names high resolution first: ``"512x512"`` ... then ``"1"``, ``"2"``, ..."""
  big = sorted((n for n in names if "x" in n), key=lambda n: -int(n.split("x")[0]))
  small = sorted((n for n in names if "x" not in n), key=int)
  return big + small


def infer_config(shapes: Mapping[str, Sequence[int]], crop_size: int | None = None,
                 use_noise: bool = True) -> SAEConfig:
  """Architecture from the official state_dict shapes ``{key: shape}`` (``E.``/``G.``/``D.``/``Dpatch.``).

  ``crop_size`` is not fully determined by the shapes (E and G are convolutional;
  D fixes only ``int(4 * crop / 2^round(log2 crop))``); when None the power of two
  of D's depth is used.
  """
  s = {k: tuple(v) for k, v in shapes.items()}
  def need(k):
    if k not in s:
      raise KeyError(f"missing {k}")
    return s[k]
  enc = [need("E.FromRGB.Conv.weight")[0]]
  i = 0
  while f"E.DownToSpatialCode.ResBlockDownBy{2 ** i}.conv2.Conv.weight" in s:
    enc.append(s[f"E.DownToSpatialCode.ResBlockDownBy{2 ** i}.conv2.Conv.weight"][0])
    i += 1
  n_sp = i
  if n_sp == 0:
    raise KeyError("no E.DownToSpatialCode.ResBlockDownBy1")
  enc_gl = []
  j = 0
  while f"E.DownToGlobalCode.ConvLayerDownBy{2 ** (n_sp + j)}.Conv.weight" in s:
    enc_gl.append(s[f"E.DownToGlobalCode.ConvLayerDownBy{2 ** (n_sp + j)}.Conv.weight"][0])
    j += 1
  sp_ch = need("E.ToSpatialCode.1.Conv.weight")[0]
  gl_ch = need("E.ToGlobalCode.0.weight")[0]
  head = []
  while f"G.HeadResnetBlock{len(head)}.conv1.conv.weight" in s:
    head.append(s[f"G.HeadResnetBlock{len(head)}.conv1.conv.weight"][1])
  up = []
  while f"G.UpsamplingResBlock{2 ** (4 + len(up))}.conv1.conv.weight" in s:
    up.append(s[f"G.UpsamplingResBlock{2 ** (4 + len(up))}.conv1.conv.weight"][1])
  pre = "D.stylegan2_D.convs."
  d_names = _stage_order({k[len(pre):].split(".")[0] for k in s if k.startswith(pre)} - {"0"})
  d_channels = [need(pre + "0.Conv.weight")[0]] + [
      need(f"{pre}{n}.conv2.Conv.weight")[0] for n in d_names]
  lin_in = need("D.stylegan2_D.final_linear.0.weight")[1]
  side = int(round(math.sqrt(lin_in / d_channels[-1])))
  if side * side * d_channels[-1] != lin_in:
    raise ValueError(f"D final_linear input {lin_in} is not C*side^2 with C={d_channels[-1]}")
  n_down = len(d_names)
  if crop_size is None:
    crop_size = 2 ** (n_down + 2)
  ppre = "Dpatch.convs."
  p_all = {k[len(ppre):].split(".")[0] for k in s if k.startswith(ppre)}
  p_names = _stage_order(p_all - {"0", "5", "6"})
  p_channels = [need(ppre + "0.Conv.weight")[0]] + [
      need(f"{ppre}{n}.conv2.Conv.weight")[0] for n in p_names]
  mlp = []
  while f"Dpatch.pairlinear.{len(mlp) + 1}.weight" in s:
    mlp.append(s[f"Dpatch.pairlinear.{len(mlp)}.weight"][0])
  return SAEConfig(crop_size=int(crop_size), spatial_code_ch=sp_ch, global_code_ch=gl_ch,
                   enc_channels=tuple(enc), enc_global_channels=tuple(enc_gl),
                   gen_head_channels=tuple(head), gen_up_channels=tuple(up), use_noise=use_noise,
                   d_names=tuple(d_names), d_channels=tuple(d_channels), d_final_side=side,
                   d_linear_ch=need("D.stylegan2_D.final_linear.0.weight")[0],
                   patch_size=2 ** (len(p_names) + 2), patch_names=tuple(p_names),
                   patch_channels=tuple(p_channels), patch_mid_ch=need(ppre + "5.conv2.Conv.weight")[0],
                   patch_out_ch=need(ppre + "6.Conv.weight")[0], patch_mlp=tuple(mlp))


# --------------------------------------------------------------------------- ops

def normalize(v: jax.Array, axis: int = -1) -> jax.Array:
  """``v * rsqrt(sum(v^2, axis) + 1e-8)`` (the official code normalisation; channels last here)."""
  return v * lax.rsqrt(jnp.sum(jnp.square(v), axis=axis, keepdims=True) + 1e-8)


def swap_pairs(v: jax.Array) -> jax.Array:
  """Reverses each consecutive pair along axis 0: (0, 1, 2, 3) -> (1, 0, 3, 2)."""
  b = v.shape[0]
  if b % 2:
    raise ValueError(f"swap needs an even batch, got {b}")
  return v.reshape((b // 2, 2) + v.shape[1:])[:, ::-1].reshape(v.shape)


def fused_lrelu(x, bias=None):
  """StyleGAN2's fused leaky ReLU: ``leaky_relu(x + b, 0.2) * sqrt(2)`` (b per channel, last axis)."""
  if bias is not None:
    x = x + bias
  return jnp.where(x >= 0, x, 0.2 * x) * SQRT2


def upsample_bilinear2x(x: jax.Array) -> jax.Array:
  """``F.interpolate(scale_factor=2, mode='bilinear', align_corners=False)`` on NHWC."""
  def up(a, axis):
    n = a.shape[axis]
    prev = jnp.concatenate([lax.slice_in_dim(a, 0, 1, axis=axis),
                            lax.slice_in_dim(a, 0, n - 1, axis=axis)], axis)
    nxt = jnp.concatenate([lax.slice_in_dim(a, 1, n, axis=axis),
                           lax.slice_in_dim(a, n - 1, n, axis=axis)], axis)
    even = 0.25 * prev + 0.75 * a
    odd = 0.75 * a + 0.25 * nxt
    out = jnp.stack([even, odd], axis=axis + 1)
    shape = list(a.shape)
    shape[axis] = 2 * n
    return out.reshape(shape)
  return up(up(x, 1), 2)


def blur(x: jax.Array, taps: Sequence[float], pad: tuple = (0, 0, 0, 0), gain: float = 1.0) -> jax.Array:
  """FIR blur of NHWC with the separable kernel ``gain * outer(t, t) / sum(t)^2`` (zero ``pad`` = (t, b, l, r)).

  The same result as ``upfirdn2d(x, make_kernel(taps) * gain, pad=(l, r, t, b))``
  (the taps are symmetric, so flipping does not matter), computed as shifted sums:
  much cheaper to compile and differentiate than a depthwise convolution.
  """
  x = _pad(x, pad, "zero")
  t = [float(v) / sum(taps) for v in taps]
  k = len(t)
  h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
  y = sum(t[i] * x[:, i:i + h] for i in range(k))
  y = sum(t[i] * y[:, :, i:i + w] for i in range(k))
  return y * gain if gain != 1.0 else y


def _pad(x, pad, mode):
  """``pad = (top, bottom, left, right)``; mode 'zero' or 'reflect' (``nn.ReflectionPad2d``)."""
  if not any(pad):
    return x
  t, b, l, r = pad
  return jnp.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), mode="constant" if mode == "zero" else "reflect")


# --------------------------------------------------------------------------- param holders

_INITS = {"normal": nn.initializers.normal(1.0), "zeros": nn.initializers.zeros,
          "ones": nn.initializers.ones}


class _Params(nn.Module):
  """A named group of parameters (mirrors a torch child that holds only tensors)."""
  specs: tuple    # ((name, shape, init), ...)

  @nn.compact
  def __call__(self):
    return {n: self.param(n, _INITS[i], tuple(s)) for n, s, i in self.specs}


class EqualLinear(nn.Module):
  """rosinality EqualLinear: ``x @ (W / sqrt(in)) + b`` (W stored ``[in, out]``), optional fused lrelu."""
  in_dim: int
  out_dim: int
  activate: bool = False
  bias_init: str = "zeros"

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", _INITS["normal"], (self.in_dim, self.out_dim))
    b = self.param("bias", _INITS[self.bias_init], (self.out_dim,))
    y = jnp.dot(x, w * (1.0 / math.sqrt(self.in_dim)))
    return fused_lrelu(y, b) if self.activate else y + b


class ConvLayer(nn.Module):
  """The official ``ConvLayer``: [pad] → [blur] → equalized conv (stride) → [fused lrelu].

  Children as in the checkpoint: ``Conv/weight`` (HWIO), ``Conv/bias`` (bias without
  activation), ``Act/bias`` (fused lrelu bias). Padding is explicit
  ``(top, bottom, left, right)`` and is applied before the blur (or the conv).
  """
  in_ch: int
  out_ch: int
  kernel: int
  stride: int = 1
  pad: tuple = (0, 0, 0, 0)
  pad_mode: str = "zero"
  blur: tuple | None = None     # 1-D taps of the blur before a strided conv
  bias: bool = True
  activate: bool = True

  @nn.compact
  def __call__(self, x):
    x = _pad(x, self.pad, self.pad_mode)
    if self.blur is not None and len(self.blur) > 1:
      x = blur(x, self.blur)
    specs = (("weight", (self.kernel, self.kernel, self.in_ch, self.out_ch), "normal"),)
    if self.bias and not self.activate:
      specs += (("bias", (self.out_ch,), "zeros"),)
    p = _Params(specs, name="Conv")()
    y = L.conv2d(x, p["weight"] * (1.0 / math.sqrt(self.in_ch * self.kernel ** 2)), self.stride)
    if "bias" in p:
      y = y + p["bias"]
    if self.activate:
      b = _Params((("bias", (self.out_ch,), "zeros"),), name="Act")()["bias"] if self.bias else None
      y = fused_lrelu(y, b)
    return y


# --------------------------------------------------------------------------- encoder

class _EncResBlock(nn.Module):
  """ResBlockDownBy*: reflection-padded conv1, blurred strided conv2, blurred strided 1x1 skip."""
  in_ch: int
  out_ch: int

  @nn.compact
  def __call__(self, x):
    h = ConvLayer(self.in_ch, self.in_ch, 3, pad=(1, 1, 1, 1), pad_mode="reflect", name="conv1")(x)
    h = ConvLayer(self.in_ch, self.out_ch, 3, stride=2, pad=(2, 1, 2, 1), pad_mode="reflect",
                  blur=_BLUR_E, name="conv2")(h)
    s = ConvLayer(self.in_ch, self.out_ch, 1, stride=2, pad=(1, 0, 1, 0), blur=_BLUR_E,
                  bias=False, activate=False, name="skip")(x)
    return (h + s) * (1.0 / SQRT2)


class _Seq(nn.Module):
  """A named sequence of layers built from ``(name, factory)`` rows (for torch ``Sequential`` names)."""
  layers: tuple   # ((name, cls, kwargs-tuple), ...)

  @nn.compact
  def __call__(self, x):
    for name, cls, kw in self.layers:
      x = cls(**dict(kw), name=name)(x)
    return x


class Encoder(nn.Module):
  """``StyleGAN2ResnetEncoder``: image ``[B, H, W, 3]`` → (structure ``[B, H/16, W/16, Cs]``, texture ``[B, Ct]``).

  Both codes are normalised over channels. H and W must be multiples of 16.
  """
  config: SAEConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] % cfg.code_stride or x.shape[2] % cfg.code_stride:
      raise ValueError(f"encoder input must be [B, H, W, 3] with H, W multiples of "
                       f"{cfg.code_stride}, got {x.shape}")
    ch = cfg.enc_channels
    x = ConvLayer(3, ch[0], 1, name="FromRGB")(x)
    x = _Seq(tuple((n, _EncResBlock, (("in_ch", ch[i]), ("out_ch", ch[i + 1])))
                   for i, n in enumerate(cfg.enc_block_names())), name="DownToSpatialCode")(x)
    sp = _Seq((("0", ConvLayer, (("in_ch", ch[-1]), ("out_ch", ch[-1]), ("kernel", 1))),
               ("1", ConvLayer, (("in_ch", ch[-1]), ("out_ch", cfg.spatial_code_ch), ("kernel", 1),
                                 ("activate", False)))), name="ToSpatialCode")(x)
    gch = (ch[-1],) + tuple(cfg.enc_global_channels)
    g = _Seq(tuple((n, ConvLayer, (("in_ch", gch[i]), ("out_ch", gch[i + 1]), ("kernel", 3),
                                   ("stride", 2)))
                   for i, n in enumerate(cfg.enc_global_names())), name="DownToGlobalCode")(x)
    g = jnp.mean(g, axis=(1, 2))
    g = _Seq((("0", EqualLinear, (("in_dim", gch[-1]), ("out_dim", cfg.global_code_ch))),),
             name="ToGlobalCode")(g)
    return normalize(sp), normalize(g)


# --------------------------------------------------------------------------- generator

class ModulatedConv(nn.Module):
  """The official modulated conv ("new demodulation"); ``conv/weight`` HWIO, ``conv/modulation``.

  s = modulation(style); if demodulating, ``s /= sqrt(mean_in(s^2) + 1e-8)``; then
  ``conv(x * s, W * d)`` with ``W`` the equalized static weight and
  ``d = rsqrt(sum_{kh,kw,in} W^2 + 1e-8)`` per output channel. ``upsample``: a stride-2
  transposed conv then blur [1,3,3,1]*4 with padding (1, 1) (2H out).
  """
  in_ch: int
  out_ch: int
  kernel: int
  style_dim: int
  demodulate: bool = True
  upsample: bool = False

  @nn.compact
  def __call__(self, x, style):
    w = self.param("weight", _INITS["normal"], (self.kernel, self.kernel, self.in_ch, self.out_ch))
    s = EqualLinear(self.style_dim, self.in_ch, bias_init="ones", name="modulation")(style)
    w = w * (1.0 / math.sqrt(self.in_ch * self.kernel ** 2))
    if self.demodulate:
      s = s * lax.rsqrt(jnp.mean(jnp.square(s), axis=-1, keepdims=True) + 1e-8)
      w = w * lax.rsqrt(jnp.sum(jnp.square(w), axis=(0, 1, 2), keepdims=True) + 1e-8)
    x = x * s[:, None, None, :]
    if self.upsample:
      y = L.conv_transpose2d_torch(x, w, stride=2, padding=0)
      return blur(y, _BLUR_SG2, pad=(1, 1, 1, 1), gain=4.0)
    return L.conv2d(x, w, padding=self.kernel // 2)


class StyledConv(nn.Module):
  """Modulated conv → noise injection ``x + w * noise`` → fused lrelu (``activate/bias``)."""
  in_ch: int
  out_ch: int
  style_dim: int
  upsample: bool = False

  @nn.compact
  def __call__(self, x, style, noise=None):
    y = ModulatedConv(self.in_ch, self.out_ch, 3, self.style_dim, upsample=self.upsample,
                      name="conv")(x, style)
    nw = _Params((("weight", (1,), "zeros"),), name="noise")()["weight"]
    if noise is not None:
      y = y + nw[0] * ops_resize.resize_nearest(noise, (y.shape[1], y.shape[2])).astype(y.dtype)
    b = _Params((("bias", (self.out_ch,), "zeros"),), name="activate")()["bias"]
    return fused_lrelu(y, b)


class _GenBlock(nn.Module):
  """HeadResnetBlock (``up=False``) or UpsamplingResBlock (``up=True``)."""
  in_ch: int
  out_ch: int
  style_dim: int
  up: bool

  @nn.compact
  def __call__(self, x, style, noise1=None, noise2=None):
    h = StyledConv(self.in_ch, self.out_ch, self.style_dim, upsample=self.up, name="conv1")(
        x, style, noise1)
    h = StyledConv(self.out_ch, self.out_ch, self.style_dim, name="conv2")(h, style, noise2)
    s = x
    if self.in_ch != self.out_ch:
      # Head skip: 1x1 without bias/act; upsampling skip: 1x1 + bias + lrelu.
      s = ConvLayer(self.in_ch, self.out_ch, 1, bias=self.up, activate=self.up, name="skip")(x)
    if self.up:
      s = upsample_bilinear2x(s)
    return (s + h) * (1.0 / SQRT2)


class _SpatialCodeModulation(nn.Module):
  sp_ch: int
  style_dim: int

  @nn.compact
  def __call__(self, sp, style):
    scale = EqualLinear(self.style_dim, self.sp_ch, name="scale")(style)
    bias = EqualLinear(self.style_dim, self.sp_ch, name="bias")(style)
    return sp * scale[:, None, None, :] + bias[:, None, None, :]


class _ToRGB(nn.Module):
  in_ch: int
  style_dim: int

  @nn.compact
  def __call__(self, x, style):
    y = ModulatedConv(self.in_ch, 3, 1, self.style_dim, demodulate=False, name="conv")(x, style)
    return y + self.param("bias", _INITS["zeros"], (3,))


class Generator(nn.Module):
  """``StyleGAN2ResnetGenerator``: (structure ``[B, h, w, Cs]``, texture ``[B, Ct]``) → image ``[B, 16h, 16w, 3]``.

  ``noise``: ``{layer: [1 or B, H, W, 1]}`` keyed by :meth:`SAEConfig.noise_layers`
  names; a missing layer (or ``noise=None``, or ``use_noise=False``) adds nothing.
  The output is not clamped (no tanh).
  """
  config: SAEConfig

  @nn.compact
  def __call__(self, sp, gl, noise: Mapping | None = None):
    cfg = self.config
    noise = dict(noise or {}) if cfg.use_noise else {}
    sp, gl = normalize(sp), normalize(gl)
    x = _SpatialCodeModulation(cfg.spatial_code_ch, cfg.global_code_ch,
                               name="SpatialCodeModulation")(sp, gl)
    chans = (cfg.spatial_code_ch,) + tuple(cfg.gen_head_channels)
    names = [f"HeadResnetBlock{i}" for i in range(len(cfg.gen_head_channels))]
    specs = [(n, chans[i], chans[i + 1], False) for i, n in enumerate(names)]
    up_in = (cfg.gen_head_channels[-1],) + tuple(cfg.gen_up_channels)
    specs += [(n, up_in[j], up_in[j + 1], True) for j, n in enumerate(cfg.gen_up_names())]
    for name, cin, cout, up in specs:
      x = _GenBlock(cin, cout, cfg.global_code_ch, up, name=name)(
          x, gl, noise.get(f"{name}.conv1"), noise.get(f"{name}.conv2"))
    return _ToRGB(up_in[-1], cfg.global_code_ch, name="ToRGB")(x, gl)


def noise_shapes(config: SAEConfig, code_hw: tuple[int, int]) -> dict[str, tuple[int, int]]:
  """``{layer: (H, W)}`` of each noise layer for a structure code of spatial size ``code_hw``."""
  h, w = code_hw
  out = {}
  for layer in config.noise_layers():
    block, conv = layer.split(".")
    if block.startswith("UpsamplingResBlock"):
      if conv == "conv1":
        h, w = 2 * h, 2 * w
    out[layer] = (h, w)
  return out


def make_noise(config: SAEConfig, code_hw: tuple[int, int], mode: str = "zero", key=None,
               batch: int = 1, fixed: Mapping | None = None) -> dict | None:
  """Noise inputs for :class:`Generator`.

  Args:
    mode: ``"zero"`` (no noise), ``"random"`` (``N(0, 1)`` from ``key``, one map per
      image unless ``batch=1``), ``"fixed"`` (the maps in ``fixed``, ``{layer: [1, H, W, 1]}``;
      resized by nearest neighbour to the current size, as the official ``fix_noise``).
  """
  shapes = noise_shapes(config, code_hw)
  if mode == "zero":
    return None
  if mode == "random":
    if key is None:
      raise ValueError("noise mode 'random' needs a jax.random key")
    keys = jax.random.split(key, len(shapes))
    return {n: jax.random.normal(k, (batch, h, w, 1)) for k, (n, (h, w)) in zip(keys, shapes.items())}
  if mode == "fixed":
    if fixed is None:
      raise ValueError("noise mode 'fixed' needs the stored noise maps")
    missing = [n for n in shapes if n not in fixed]
    if missing:
      raise ValueError(f"fixed noise lacks layers {missing}")
    return {n: ops_resize.resize_nearest(jnp.asarray(fixed[n]), (h, w)) for n, (h, w) in shapes.items()}
  raise ValueError(f"unknown noise mode {mode!r} (zero, random, fixed)")


# --------------------------------------------------------------------------- discriminators

class _DResBlock(nn.Module):
  """rosinality D ResBlock (``down``: blur + stride 2), skip 1x1 without bias."""
  in_ch: int
  out_ch: int
  down: bool = True

  @nn.compact
  def __call__(self, x):
    h = ConvLayer(self.in_ch, self.in_ch, 3, pad=(1, 1, 1, 1), name="conv1")(x)
    if self.down:
      h = ConvLayer(self.in_ch, self.out_ch, 3, stride=2, pad=(2, 2, 2, 2), blur=_BLUR_SG2,
                    name="conv2")(h)
      s = ConvLayer(self.in_ch, self.out_ch, 1, stride=2, pad=(1, 1, 1, 1), blur=_BLUR_SG2,
                    bias=False, activate=False, name="skip")(x)
    else:
      h = ConvLayer(self.in_ch, self.out_ch, 3, pad=(1, 1, 1, 1), name="conv2")(h)
      s = ConvLayer(self.in_ch, self.out_ch, 1, bias=False, activate=False, name="skip")(x)
    return (h + s) * (1.0 / SQRT2)


def _flatten_chw(x):
  """NHWC → ``[B, C*H*W]`` in torch's (C, H, W) order."""
  return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


class _StyleGAN2D(nn.Module):
  config: SAEConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    ch = cfg.d_channels
    rows = [("0", ConvLayer, (("in_ch", 3), ("out_ch", ch[0]), ("kernel", 1)))]
    rows += [(n, _DResBlock, (("in_ch", ch[i]), ("out_ch", ch[i + 1])))
             for i, n in enumerate(cfg.d_names)]
    x = _Seq(tuple(rows), name="convs")(x)
    x = ConvLayer(ch[-1], ch[-1], 3, pad=(1, 1, 1, 1), name="final_conv")(x)
    x = _flatten_chw(x)
    return _Seq((("0", EqualLinear, (("in_dim", x.shape[-1]), ("out_dim", cfg.d_linear_ch),
                                     ("activate", True))),
                 ("1", EqualLinear, (("in_dim", cfg.d_linear_ch), ("out_dim", 1)))),
                name="final_linear")(x)


class Discriminator(nn.Module):
  """``StyleGAN2Discriminator``: image ``[B, crop, crop, 3]`` → logits ``[B, 1]`` (no minibatch-stddev)."""
  config: SAEConfig

  def setup(self):
    self.stylegan2_D = _StyleGAN2D(self.config)

  def __call__(self, x):
    return self.stylegan2_D(x)


class _PatchConvs(nn.Module):
  config: SAEConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    ch = cfg.patch_channels
    rows = [("0", ConvLayer, (("in_ch", 3), ("out_ch", ch[0]), ("kernel", 3), ("pad", (1, 1, 1, 1))))]
    rows += [(n, _DResBlock, (("in_ch", ch[i]), ("out_ch", ch[i + 1])))
             for i, n in enumerate(cfg.patch_names)]
    rows += [("5", _DResBlock, (("in_ch", ch[-1]), ("out_ch", cfg.patch_mid_ch), ("down", False))),
             ("6", ConvLayer, (("in_ch", cfg.patch_mid_ch), ("out_ch", cfg.patch_out_ch),
                               ("kernel", 3)))]
    for name, cls, kw in rows:
      x = cls(**dict(kw), name=name)(x)
    return x


class _PairMLP(nn.Module):
  config: SAEConfig

  @nn.compact
  def __call__(self, x):
    widths = (x.shape[-1],) + tuple(self.config.patch_mlp)
    for i in range(len(widths) - 1):
      x = EqualLinear(widths[i], widths[i + 1], activate=True, name=str(i))(x)
    return EqualLinear(widths[-1], 1, name=str(len(widths) - 1))(x)


class PatchDiscriminator(nn.Module):
  """``StyleGAN2PatchDiscriminator``: patch features and the pairwise co-occurrence MLP."""
  config: SAEConfig

  def setup(self):
    self.convs = _PatchConvs(self.config)
    self.pairlinear = _PairMLP(self.config)

  def extract_features(self, crops, aggregate: bool = False):
    """``crops [B, n, P, P, 3]`` → features ``[B*n, h, w, C]`` (patch index ``b*n + j``).

    ``aggregate``: each image's features averaged over its n crops (repeated n times).
    """
    b, n = crops.shape[:2]
    f = self.convs(crops.reshape((b * n,) + crops.shape[2:]))
    if aggregate:
      f = jnp.broadcast_to(jnp.mean(f.reshape((b, n) + f.shape[1:]), axis=1, keepdims=True),
                           (b, n) + f.shape[1:]).reshape(f.shape)
    return f

  def discriminate_features(self, f1, f2):
    """Two feature batches ``[N, h, w, C]`` → co-occurrence logits ``[N, 1]``."""
    return self.pairlinear(jnp.concatenate([_flatten_chw(f1), _flatten_chw(f2)], axis=-1))

  def __call__(self, reference, query):
    """Logits of (aggregated reference crops, query crops), both ``[B, n, P, P, 3]``."""
    return self.discriminate_features(self.extract_features(reference, aggregate=True),
                                      self.extract_features(query))


# --------------------------------------------------------------------------- crops

def crop_draws(key, batch: int, num_crops: int) -> dict:
  """The three uniform draws of the official ``apply_random_crop``, in its order and shapes."""
  k1, k2, k3 = jax.random.split(key, 3)
  n = batch * num_crops
  return {"u_flip": jax.random.uniform(k1, (n, 1, 1, 1)),
          "u_scale": jax.random.uniform(k2, (n, 1, 1, 2)),
          "u_offset": jax.random.uniform(k3, (n, 1, 1, 2))}


def _bilinear_matrix(g, size):
  """Rows of bilinear weights ``[P, size]`` sampling coordinates ``g`` ([-1, 1], align_corners=False, zero pad)."""
  p = ((g + 1.0) * size - 1.0) / 2.0
  p0 = jnp.floor(p)
  w1 = p - p0
  idx = jnp.arange(size, dtype=g.dtype)
  return ((idx[None, :] == p0[:, None]) * (1.0 - w1)[:, None]
          + (idx[None, :] == p0[:, None] + 1.0) * w1[:, None])


def crop_params(draws: Mapping, scale_range=(0.125, 0.25)):
  """``(flip [N,1,1,1], scale [N,1,1,2], offset [N,1,1,2])`` from the draws (last axis: x, y)."""
  lo, hi = scale_range
  flip = jnp.round(draws["u_flip"]) * 2 - 1
  scale = draws["u_scale"] * (hi - lo) + lo
  offset = (draws["u_offset"] * 2 - 1) * (1 - scale)
  return flip, scale, offset


def random_crops(x: jax.Array, draws: Mapping, patch_size: int, scale_range=(0.125, 0.25),
                 num_crops: int = 8) -> jax.Array:
  """The official ``apply_random_crop`` given its draws: ``x [B, H, W, C]`` → ``[B, n, P, P, C]``.

  Crop ``b*n + j`` samples image b with ``grid_sample`` (bilinear, zero padding,
  align_corners=False) on the grid ``gx = L*flip*sx + ox``, ``gy = L*sy + oy``,
  ``L = linspace(-1, 1, P)``. The grid is separable, so the crop is ``Ay @ x @ Ax^T``.
  """
  b, h, w, c = x.shape
  n = num_crops
  flip, scale, offset = crop_params(draws, scale_range)
  flip = flip.reshape(b * n)
  scale, offset = scale.reshape(b * n, 2), offset.reshape(b * n, 2)
  lin = jnp.linspace(-1.0, 1.0, patch_size, dtype=jnp.float32)
  gx = lin[None, :] * (flip * scale[:, 0])[:, None] + offset[:, 0:1]
  gy = lin[None, :] * scale[:, 1:2] + offset[:, 1:2]
  ax = jax.vmap(lambda g: _bilinear_matrix(g, w))(gx).reshape(b, n, patch_size, w)
  ay = jax.vmap(lambda g: _bilinear_matrix(g, h))(gy).reshape(b, n, patch_size, h)
  return jnp.einsum("bnph,bhwc,bnqw->bnpqc", ay, x, ax, precision=lax.Precision.HIGHEST)


# --------------------------------------------------------------------------- the whole model

class SwappingAutoencoder(nn.Module):
  """E, G, D and Dpatch under the checkpoint's prefixes; pick a part with ``method=``.

  ``module.apply({"params": p}, x, method="encode")`` etc.; ``__call__`` is the
  reconstruction ``G(E(x))`` (used by ``init``).
  """
  config: SAEConfig

  def setup(self):
    self.E = Encoder(self.config)
    self.G = Generator(self.config)
    self.D = Discriminator(self.config)
    self.Dpatch = PatchDiscriminator(self.config)

  def encode(self, x):
    return self.E(x)

  def decode(self, sp, gl, noise=None):
    return self.G(sp, gl, noise)

  def discriminate(self, x):
    return self.D(x)

  def patch_features(self, crops, aggregate=False):
    return self.Dpatch.extract_features(crops, aggregate)

  def patch_logits(self, f1, f2):
    return self.Dpatch.discriminate_features(f1, f2)

  def __call__(self, x, crops=None):
    sp, gl = self.E(x)
    y = self.G(sp, gl)
    logits = self.D(y)
    if crops is not None:
      logits = (logits, self.Dpatch(crops, crops))
    return y, logits


def init_params(config: SAEConfig, key) -> dict:
  """Official initialisation (weights N(0,1), biases 0, modulation biases 1, noise strengths 0)."""
  module = SwappingAutoencoder(config)
  s, p = config.crop_size, config.patch_size
  x = jnp.zeros((1, s, s, 3))
  crops = jnp.zeros((1, 1, p, p, 3))
  return module.init(key, x, crops)["params"]


def example_inputs(config: SAEConfig):
  """Arguments of ``SwappingAutoencoder.init`` (shapes only matter)."""
  s, p = config.crop_size, config.patch_size
  return jnp.zeros((1, s, s, 3)), jnp.zeros((1, 1, p, p, 3))
