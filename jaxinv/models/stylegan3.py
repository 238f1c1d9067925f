"""StyleGAN3 generator (alias-free; configs T and R), NHWC.

Parts (each callable through ``module.apply(vars, ..., method=...)``):

* ``mapping(z, c=None)``: as StyleGAN2-ADA (PixelNorm of z, optional normalised label
  embedding concatenated, ``mapping_layers`` equalized-lr FC layers with lrelu·√2).
* ``truncate(w, psi, layers)``: ``w_avg + psi·(w − w_avg)`` on rows ``< layers``.
* ``synthesis(state, wp, start, stop, noise=None, transform=None)``: a **sequence of
  units**: unit 0 is the Fourier-feature input (row ``wp[:, 0]``), unit ``k ≥ 1`` the
  synthesis layer ``k − 1`` (row ``wp[:, k]``); the last one is the ToRGB layer.
  ``num_layers = num_ws``; ``stop = num_layers`` returns the image ``× output_scale``.
  ``noise`` is accepted and ignored (StyleGAN3 has no noise inputs).

The input layer: ``t = affine(w)`` normalised by ``‖t[:2]‖`` gives a rotation and a
translation, composed with the user ``transform`` (stored as its inverse, as NVIDIA's
tools do); the per-channel frequencies and phases are transformed, band-limited by
``amp = clip(1 − (‖f‖ − bandwidth)/(sampling_rate/2 − bandwidth), 0, 1)`` and sampled on
the ``size`` grid: ``sin(2π(grid·f + φ))·amp``, then a linear map (``weight/√C``).

A synthesis layer: style ``s = affine(w)`` (× 1/√C_in for ToRGB); with demodulation the
weight is first normalised per output channel and ``s`` by its RMS over the whole
``[B, C_in]`` tensor, then ``W·s`` is demodulated; the result is scaled by
``rsqrt(magnitude_ema)`` (the input gain) and convolved with padding ``k − 1``. Then the
filtered leaky ReLU: ``+ bias`` → upfirdn2d(up filter, up, padding, gain up²) → lrelu
(slope 0.2, ×√2; ToRGB: identity) → clamp ±conv_clamp → upfirdn2d(down filter, down).
1-D filters are applied separably (along W, then H); 2-D (radial) ones directly. The
filters, frequencies, phases and layer geometry come from the checkpoint.

References:
  Karras et al., Alias-Free Generative Adversarial Networks, https://arxiv.org/abs/2106.12423
"""

from __future__ import annotations

import dataclasses
import math

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxinv.models import layers as L
from jaxinv.models.layered import LayeredConfig
from jaxinv.models.stylegan2 import MappedGenerator, clip
from jaxinv.models.upfirdn import upfirdn2d

__all__ = ["StyleGAN3Config", "StyleGAN3Generator", "LayerSpec", "filtered_lrelu", "fir"]

SQRT2 = math.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """Geometry of one synthesis layer (read from the checkpoint)."""
  name: str
  cin: int
  cout: int
  kernel: int
  up: int
  down: int
  padding: tuple            # (x0, x1, y0, y1) of the up-sampling upfirdn2d
  is_torgb: bool
  in_size: int
  out_size: int
  up_filter: tuple = ()     # filter shape; () = none (identity)
  down_filter: tuple = ()

  def __post_init__(self):
    for f in ("padding", "up_filter", "down_filter"):
      object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))


@dataclasses.dataclass(frozen=True)
class StyleGAN3Config(LayeredConfig):
  FAMILY = "StyleGAN3"
  resolution: int = 1024
  z_dim: int = 512
  w_dim: int = 512
  c_dim: int = 0
  image_channels: int = 3
  mapping_layers: int = 2
  mapping_lr_mul: float = 0.01
  input_channels: int = 512
  input_size: tuple = (36, 36)       # (width, height) of the Fourier-feature grid
  sampling_rate: float = 16.0
  bandwidth: float = 2.0
  output_scale: float = 0.25
  conv_clamp: float | None = 256.0
  layers: tuple = ()                 # LayerSpec per synthesis layer (last: ToRGB)

  def __post_init__(self):
    specs = tuple(s if isinstance(s, LayerSpec) else LayerSpec(**s) for s in self.layers)
    object.__setattr__(self, "layers", specs)
    object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
    if self.conv_clamp is not None:
      object.__setattr__(self, "conv_clamp", float(self.conv_clamp))
    if specs and not specs[-1].is_torgb:
      raise ValueError("the last StyleGAN3 synthesis layer must be the ToRGB layer")

  @property
  def mapping_hidden(self) -> int:
    return self.w_dim

  @property
  def num_ws(self) -> int:
    return len(self.layers) + 1

  @property
  def num_layers(self) -> int:
    """Length of the synthesis unit sequence (input + layers)."""
    return len(self.layers) + 1

  def layer_names(self) -> list[str]:
    return ["input"] + [s.name for s in self.layers]

  def w_index(self, k: int) -> int:
    return k

  def feature_shapes(self) -> list[tuple[int, int, int] | None]:
    """``(H, W, C)`` of the ``x`` unit ``k`` receives (0: nothing; last: the image)."""
    w, h = self.input_size
    out = [None, (h, w, self.input_channels)]
    out += [(s.out_size, s.out_size, s.cout) for s in self.layers]
    return out


def fir(x, f, up: int = 1, down: int = 1, pad=(0, 0, 0, 0), gain: float = 1.0):
  """upfirdn2d with a stored filter: 1-D → separable (W then H), 2-D → direct, None → identity."""
  if f is None:
    f = jnp.ones((1, 1), x.dtype)
  if f.ndim == 1:
    g = math.sqrt(gain)
    x = upfirdn2d(x, (f * g)[None, :], up=up, pad=pad)
    return upfirdn2d(x, (f * g)[:, None], down=down)
  return upfirdn2d(x, f * gain, up=up, down=down, pad=pad)


def filtered_lrelu(x, bias, up_filter, down_filter, up, down, padding, gain, slope, clamp):
  """StyleGAN3's filtered leaky ReLU (reference path), NHWC."""
  x = x + bias
  x = fir(x, up_filter, up=up, pad=padding, gain=up * up)
  x = clip(jnp.where(x >= 0, x, x * slope) * gain, clamp)
  return fir(x, down_filter, down=down)


class _Input(nn.Module):
  cfg: StyleGAN3Config

  def setup(self):
    cfg = self.cfg
    c = cfg.input_channels
    normal = nn.initializers.normal(1.0)
    self.weight = self.param("weight", normal, (c, c))
    self.affine_weight = self.param("affine_weight", nn.initializers.zeros, (cfg.w_dim, 4))
    self.affine_bias = self.param("affine_bias", lambda k, s: jnp.array([1.0, 0, 0, 0]), (4,))
    self.freqs = self.param("freqs", normal, (c, 2))
    self.phases = self.param("phases", nn.initializers.uniform(1.0), (c,))
    self.transform = self.param("transform", lambda k, s: jnp.eye(3), (3, 3))

  def affine(self, w):
    return w @ (self.affine_weight / math.sqrt(self.cfg.w_dim)) + self.affine_bias

  def __call__(self, w, transform=None):
    cfg = self.cfg
    b = w.shape[0]
    t = self.affine(w)
    t = t / jnp.linalg.norm(t[:, :2], axis=1, keepdims=True)
    one, zero = jnp.ones((b,), t.dtype), jnp.zeros((b,), t.dtype)
    m_r = jnp.stack([jnp.stack([t[:, 0], -t[:, 1], zero], -1),
                     jnp.stack([t[:, 1], t[:, 0], zero], -1),
                     jnp.stack([zero, zero, one], -1)], 1)
    m_t = jnp.stack([jnp.stack([one, zero, -t[:, 2]], -1),
                     jnp.stack([zero, one, -t[:, 3]], -1),
                     jnp.stack([zero, zero, one], -1)], 1)
    user = self.transform if transform is None else jnp.asarray(transform, t.dtype)
    tr = m_r @ m_t @ user[None]
    phases = self.phases[None] + (self.freqs[None] @ tr[:, :2, 2:])[..., 0]     # [B, C]
    freqs = self.freqs[None] @ tr[:, :2, :2]                                     # [B, C, 2]
    amp = jnp.clip(1 - (jnp.linalg.norm(freqs, axis=2) - cfg.bandwidth)
                   / (cfg.sampling_rate / 2 - cfg.bandwidth), 0, 1)
    width, height = cfg.input_size
    xs = ((2 * jnp.arange(width) + 1) / width - 1) * (0.5 * width / cfg.sampling_rate)
    ys = ((2 * jnp.arange(height) + 1) / height - 1) * (0.5 * height / cfg.sampling_rate)
    x = (xs[None, None, :, None] * freqs[:, None, None, :, 0]       # [B, H, W, C]
         + ys[None, :, None, None] * freqs[:, None, None, :, 1])
    x = jnp.sin((x + phases[:, None, None, :]) * (2 * math.pi)) * amp[:, None, None, :]
    return x @ (self.weight / math.sqrt(cfg.input_channels)).T


class _Layer(nn.Module):
  spec: LayerSpec
  w_dim: int
  clamp: float | None

  def setup(self):
    s = self.spec
    normal = nn.initializers.normal(1.0)
    self.weight = self.param("weight", normal, (s.kernel, s.kernel, s.cin, s.cout))
    self.bias = self.param("bias", nn.initializers.zeros, (s.cout,))
    self.magnitude_ema = self.param("magnitude_ema", nn.initializers.ones, ())
    self.style_weight = self.param("style_weight", normal, (self.w_dim, s.cin))
    self.style_bias = self.param("style_bias", nn.initializers.ones, (s.cin,))
    ones = lambda shape: (lambda k, sh: jnp.ones(sh) / math.prod(sh))
    self.up_filter = self.param("up_filter", ones(s.up_filter), s.up_filter) if s.up_filter else None
    self.down_filter = (self.param("down_filter", ones(s.down_filter), s.down_filter)
                        if s.down_filter else None)

  def style(self, w):
    return w @ (self.style_weight / math.sqrt(self.w_dim)) + self.style_bias

  def __call__(self, x, w):
    sp = self.spec
    s = self.style(w)
    kernel = self.weight
    if sp.is_torgb:
      s = s / math.sqrt(sp.cin * sp.kernel * sp.kernel)
    else:
      kernel = kernel * lax.rsqrt(jnp.mean(jnp.square(kernel), axis=(0, 1, 2), keepdims=True))
      s = s * lax.rsqrt(jnp.mean(jnp.square(s)))
    x = L.conv2d(x * s[:, None, None, :], kernel, padding=sp.kernel - 1)
    if not sp.is_torgb:
      d = lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(kernel), axis=(0, 1)) + 1e-8)
      x = x * d[:, None, None, :]
    x = x * lax.rsqrt(self.magnitude_ema)
    gain, slope = (1.0, 1.0) if sp.is_torgb else (SQRT2, 0.2)
    return filtered_lrelu(x, self.bias, self.up_filter, self.down_filter, sp.up, sp.down,
                          sp.padding, gain, slope, self.clamp)


class _Synthesis(nn.Module):
  cfg: StyleGAN3Config

  def setup(self):
    cfg = self.cfg
    self.input = _Input(cfg, name="input")
    self.layers = [_Layer(s, cfg.w_dim, cfg.conv_clamp, name=s.name) for s in cfg.layers]

  def unit(self, k, x, wp, transform=None):
    if k == 0:
      return self.input(wp[:, 0], transform)
    return self.layers[k - 1](x, wp[:, k])

  def __call__(self, state, wp, start=0, stop=None, transform=None):
    cfg = self.cfg
    stop = cfg.num_layers if stop is None else stop
    cfg.check_layer(start)
    cfg.check_layer(stop)
    chex.assert_shape(wp, (None, cfg.num_ws, cfg.w_dim))
    x = state
    for k in range(start, stop):
      x = self.unit(k, x, wp, transform)
    return x * cfg.output_scale if stop == cfg.num_layers else x

  def intermediates(self, wp, transform=None):
    """``input.affine`` (t before normalisation), ``input``, then per layer its output and
    ``{name}.styles`` (the affine output)."""
    out = {"input.affine": self.input.affine(wp[:, 0])}
    x = None
    for k, name in enumerate(self.cfg.layer_names()):
      if k:
        out[f"{name}.styles"] = self.layers[k - 1].style(wp[:, k])
      x = self.unit(k, x, wp, transform)
      out[name] = x
    return out


class StyleGAN3Generator(MappedGenerator):
  """StyleGAN3 generator: ``__call__(z, psi, layers, noise, c)`` → image ``[B, R, R, C]``."""
  config: StyleGAN3Config
  synthesis_module = _Synthesis

  def __call__(self, z, truncation_psi: float = 1.0, truncation_layers: int | None = None,
               noise=None, c=None, transform=None):
    wp = self.mapped_wp(z, c, truncation_psi, truncation_layers)
    return self.synthesis_net(None, wp, 0, None, transform)

  def synthesis(self, state, wp, start: int = 0, stop: int | None = None, noise=None,
                transform=None):
    """Runs units ``[start, stop)`` on ``state`` (x NHWC) with w+ ``wp``; ``noise`` is ignored."""
    del noise
    return self.synthesis_net(state, wp, start, stop, transform)

  def intermediates(self, wp, transform=None):
    return self.synthesis_net.intermediates(wp, transform)
