"""StyleGAN generator (Karras et al., CVPR 2019) in the genforce / mGANprior / IDInvert layout.

Three parts, each callable on its own (``module.apply(vars, ..., method=...)``):

* ``mapping(z)``: PixelNorm then ``mapping_layers`` equalized-lr dense layers
  (lr multiplier 0.01 on weight **and** bias, lrelu 0.2 after every layer) →
  w ``[B, w_dim]`` (``repeat_w=False``: ``[B, L, w_dim]``, the last layer being
  ``L·w_dim`` wide, as IDInvert's generator).
* ``truncate(w, psi, layers)``: ``wp = w_avg + (repeat_L(w) - w_avg)·c_l`` with
  ``c_l = psi`` for ``l < layers`` else 1 → w+ ``[B, L, w_dim]``.
* ``synthesis(x, wp, start, stop)``: the synthesis network as a **sequence of
  layers** (the intermediate toRGBs, unused at lod 0, left out, as PGGAN's
  ``get_gan_model`` leaves them out)::

    k:      0          1        2          3       ...  L-1         L
    layer:  layer0     layer1   layer2     layer3  ...  layer{L-1}  output
            (const +   (conv    (up-conv   (conv        (conv)      (toRGB of the
             epilogue)  4x4)     8x8)       8x8)                     last block)

  Layer ``i < L`` uses row ``wp[:, i]``; ``output`` uses none. ``x`` is what
  layer ``start`` receives (ignored for ``start = 0``: the constant) and the
  result is what layer ``stop`` receives; ``stop = L + 1`` gives the image
  ``[B, R, R, C]`` (NHWC, nominal [-1, 1], not clamped unless ``final_tanh``).

Every conv layer is followed by the *epilogue*: ``+ noise·weight[c]`` → ``+ bias``
→ lrelu 0.2 → instance norm → AdaIN style ``x·(s[:C] + 1) + s[C:]`` with
``s = wp[:, i]·W/√w_dim + b``. Up-convs are nearest ×2 + 3×3 conv, or the fused
transposed conv (``fused_scale``), followed by a [1,2,1]² /16 blur.

Params mirror the genforce state_dict (see ``converters/genforce_stylegan.py``):
``mapping/dense{i}/{weight [in,out], bias}``, ``truncation/w_avg``,
``synthesis/layer{i}/{const | weight (HWIO), bias, noise_weight [C], noise [r,r],
style_weight [w_dim, 2C], style_bias [2C]}``, ``synthesis/output{b}/{weight, bias}``
(every block's toRGB is kept so intermediate outputs can be inspected).
The stored noise buffers and ``w_avg`` live in ``params`` but are data, not
trainable weights: inversion methods pass generator params as frozen ``shared``.

Noise modes (argument ``noise`` of ``synthesis``/``__call__``): ``"const"`` (the
stored buffers; genforce ``randomize_noise=False``), ``"zero"``, ``"random"``
(fresh N(0,1) from the ``"noise"`` rng stream: ``apply(..., rngs={"noise": key})``),
or a list of per-layer arrays ``[r, r]`` / ``[B, r, r]`` (one per synthesis conv layer).

References:
  Karras, Laine, Aila, A Style-Based Generator Architecture for GANs, https://arxiv.org/abs/1812.04948
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv.models import layers as L
from jaxinv.models.layered import LayeredConfig, LayerIndexError

__all__ = ["StyleGANConfig", "StyleGANGenerator", "infer_config", "truncation_coefs",
           "resolve_noise", "LayerIndexError", "MODEL_SETTINGS"]

# Defaults of genforce ``models/model_settings.py`` (STYLEGAN_*): the checkpoints
# carry no truncation settings, so the converter records these in the model extras.
MODEL_SETTINGS = {"truncation_psi": 0.7, "truncation_layers": 8, "randomize_noise": False}


@dataclasses.dataclass(frozen=True)
class StyleGANConfig(LayeredConfig):
  """Architecture of a genforce StyleGAN (v1) generator."""
  FAMILY = "StyleGAN"
  resolution: int = 1024          # output size, a power of two in [8, 1024]
  z_dim: int = 512                # genforce z_space_dim
  w_dim: int = 512                # genforce w_space_dim
  image_channels: int = 3
  fused_scale: Any = "auto"       # True | False | "auto" (fused up-conv from 128 px on)
  fmaps_base: int = 16384         # channels at resolution r: min(fmaps_base // r, fmaps_max)
  fmaps_max: int = 512            # also the mapping network's hidden width
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  repeat_w: bool = True           # False: the mapping outputs L·w_dim values reshaped to w+ (IDInvert)
  final_tanh: bool = False        # tanh on the image (IDInvert)

  def __post_init__(self):
    r = self.resolution
    if r < 8 or r > 1024 or r & (r - 1):
      raise ValueError(f"StyleGAN resolution must be a power of two in [8, 1024], got {r}")
    if self.fused_scale not in (True, False, "auto"):
      raise ValueError(f"fused_scale must be True, False or 'auto', got {self.fused_scale!r}")

  @property
  def num_blocks(self) -> int:
    return int(math.log2(self.resolution)) - 1

  @property
  def num_ws(self) -> int:
    """Rows of w+ (= synthesis conv layers), genforce ``num_layers``."""
    return 2 * self.num_blocks

  @property
  def num_layers(self) -> int:
    """Length of the synthesis layer sequence (conv layers + final toRGB)."""
    return self.num_ws + 1

  def channels_at(self, res: int) -> int:
    return min(self.fmaps_base // res, self.fmaps_max)

  def fused_at(self, res: int) -> bool:
    return res >= 128 if self.fused_scale == "auto" else bool(self.fused_scale)

  def layer_names(self) -> list[str]:
    return [f"layer{i}" for i in range(self.num_ws)] + ["output"]

  def w_index(self, k: int) -> int | None:
    """The w+ row layer ``k`` uses (None for the toRGB)."""
    return k if k < self.num_ws else None

  def feature_shapes(self) -> list[tuple[int, int, int] | None]:
    """``(H, W, C)`` of what layer ``k`` receives, ``k = 0 .. num_layers`` (0: nothing, the
    constant; last: the image)."""
    shapes: list = [None]
    for i in range(self.num_ws):
      res = 4 * 2 ** (i // 2)
      shapes.append((res, res, self.channels_at(res)))
    shapes.append((self.resolution, self.resolution, self.image_channels))
    return shapes


def truncation_coefs(num_ws: int, psi: float, layers: int) -> jnp.ndarray:
  """Per-row truncation coefficients ``[L]``: ``psi`` for rows ``< layers``, else 1."""
  return jnp.where(jnp.arange(num_ws) < layers, jnp.float32(psi), jnp.float32(1.0))


def truncate_wp(truncation, cfg, w, psi, layers: int):
  """w ``[B, D]`` (repeated to every row) or w+ ``[B, L, D]`` → w+ whose rows ``< layers`` are
  pulled toward ``w_avg`` by ``psi`` (``truncation`` the generator's :class:`_Truncation`). ``psi``
  1 returns w exactly, as the official code does (no round trip through w_avg)."""
  wp = w if w.ndim == 3 else jnp.broadcast_to(w[:, None], (w.shape[0], cfg.num_ws, cfg.w_dim))
  if isinstance(psi, (int, float)) and psi == 1:
    return wp
  return truncation(wp, truncation_coefs(cfg.num_ws, psi, layers)[None, :, None])


def resolve_noise(noise, index: int, res: int, batch: int, stored, make_rng):
  """The ``[B or 1, r, r, 1]`` noise map of conv layer ``index`` for a ``noise`` mode (see module doc)."""
  if isinstance(noise, str):
    if noise == "const":
      n = stored[None]
    elif noise == "zero":
      n = jnp.zeros((1, res, res), stored.dtype)
    elif noise == "random":
      n = jax.random.normal(make_rng(), (batch, res, res), stored.dtype)
    else:
      raise ValueError(f"noise mode must be 'const', 'zero', 'random' or a list of arrays, got {noise!r}")
  else:
    n = jnp.asarray(noise[index])
    if n.ndim == 4:            # [B|1, 1, r, r] torch layout
      n = n[:, 0]
    if n.ndim == 2:
      n = n[None]
  chex.assert_shape(n, (None, res, res))
  return n[..., None]


class _Dense(nn.Module):
  """Equalized-lr dense: ``x @ (W·gain/√in·lr_mul) + b·lr_mul`` (W stored ``[in, out]``)."""
  cin: int
  cout: int
  lr_mul: float = 1.0
  gain: float = 1.0

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0 / self.lr_mul), (self.cin, self.cout))
    b = self.param("bias", nn.initializers.zeros, (self.cout,))
    return x @ (w * (self.gain / math.sqrt(self.cin) * self.lr_mul)) + b * self.lr_mul


class _Truncation(nn.Module):
  """Holds ``w_avg [w_dim]`` and applies ``w_avg + (wp - w_avg)·c_l``."""
  w_dim: int

  def setup(self):
    self.w_avg = self.param("w_avg", nn.initializers.zeros, (self.w_dim,))

  def __call__(self, wp, coefs):
    return self.w_avg + (wp - self.w_avg) * coefs

  def average(self):
    return self.w_avg


class _Mapping(nn.Module):
  cfg: StyleGANConfig

  @nn.compact
  def __call__(self, z):
    cfg = self.cfg
    chex.assert_shape(z, (None, cfg.z_dim))
    x = L.pixel_norm(z)
    out_last = cfg.w_dim * (1 if cfg.repeat_w else cfg.num_ws)
    for i in range(cfg.mapping_layers):
      cin = cfg.z_dim if i == 0 else cfg.fmaps_max
      cout = out_last if i == cfg.mapping_layers - 1 else cfg.fmaps_max
      x = L.lrelu(_Dense(cin, cout, cfg.mapping_lr_mul, math.sqrt(2.0), name=f"dense{i}")(x))
    if not cfg.repeat_w:
      x = x.reshape(x.shape[0], cfg.num_ws, cfg.w_dim)
    return x


class _Layer(nn.Module):
  """One synthesis conv layer with its epilogue (NHWC)."""
  cfg: StyleGANConfig
  index: int

  def setup(self):
    cfg, i = self.cfg, self.index
    self.res = 4 * 2 ** (i // 2)
    self.cout = cfg.channels_at(self.res)
    self.cin = cfg.channels_at(self.res // 2) if (i % 2 == 0 and i > 0) else self.cout
    normal = nn.initializers.normal(1.0)
    if i == 0:
      self.const = self.param("const", normal, (4, 4, self.cout))
    else:
      self.weight = self.param("weight", normal, (3, 3, self.cin, self.cout))
    self.bias = self.param("bias", nn.initializers.zeros, (self.cout,))
    self.noise_weight = self.param("noise_weight", nn.initializers.zeros, (self.cout,))
    self.noise = self.param("noise", normal, (self.res, self.res))
    self.style_weight = self.param("style_weight", normal, (cfg.w_dim, 2 * self.cout))
    self.style_bias = self.param("style_bias", nn.initializers.zeros, (2 * self.cout,))

  def style(self, w):
    """AdaIN parameters ``[B, 2C]`` (scale - 1, shift) from w ``[B, w_dim]``."""
    return w @ (self.style_weight * L.he_scale(self.cfg.w_dim, 1.0)) + self.style_bias

  def __call__(self, x, w, noise="const"):
    cfg, i = self.cfg, self.index
    batch = w.shape[0]
    if i == 0:
      x = jnp.broadcast_to(self.const[None], (batch,) + self.const.shape)
    elif i % 2 == 0:
      scale = L.he_scale(9 * self.cin)
      if cfg.fused_at(self.res):
        k = jnp.pad(self.weight * scale, ((1, 1), (1, 1), (0, 0), (0, 0)))
        k = k[1:, 1:] + k[:-1, 1:] + k[1:, :-1] + k[:-1, :-1]
        x = L.conv_transpose2d_torch(x, k, stride=2, padding=1)
      else:
        x = L.conv2d(L.upsample_nearest(x, 2), self.weight * scale, padding=1)
      x = blur3(x)
    else:
      x = L.conv2d(x, self.weight * L.he_scale(9 * self.cin), padding=1)
    n = resolve_noise(noise, i, self.res, batch, self.noise, lambda: self.make_rng("noise"))
    x = x + n * self.noise_weight
    x = L.lrelu(x + self.bias)
    x = L.instance_norm(x)
    s = self.style(w)
    return x * (s[:, None, None, :self.cout] + 1) + s[:, None, None, self.cout:]


def blur3(x):
  """Depthwise ``[1,2,1]ᵀ[1,2,1]/16`` filter with zero padding 1 (StyleGAN v1 blur), NHWC."""
  c = x.shape[-1]
  k = jnp.array([1.0, 2.0, 1.0], x.dtype)
  k = (k[:, None] * k[None, :]) / 16.0
  k = jnp.tile(k[:, :, None, None], (1, 1, 1, c))
  return L.conv2d(x, k, padding=1, feature_group_count=c)


class _ToRGB(nn.Module):
  cin: int
  cout: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (1, 1, self.cin, self.cout))
    b = self.param("bias", nn.initializers.zeros, (self.cout,))
    return L.conv2d(x, w * L.he_scale(self.cin, 1.0)) + b


class _Synthesis(nn.Module):
  cfg: StyleGANConfig

  def setup(self):
    cfg = self.cfg
    self.layers = [_Layer(cfg, i, name=f"layer{i}") for i in range(cfg.num_ws)]
    self.outputs = [_ToRGB(cfg.channels_at(4 * 2 ** b), cfg.image_channels, name=f"output{b}")
                    for b in range(cfg.num_blocks)]

  def __call__(self, x, wp, start=0, stop=None, noise="const"):
    cfg = self.cfg
    stop = cfg.num_layers if stop is None else stop
    cfg.check_layer(start)
    cfg.check_layer(stop)
    chex.assert_shape(wp, (None, cfg.num_ws, cfg.w_dim))
    if self.is_initializing():      # create the side toRGBs' params too
      for b, out in enumerate(self.outputs[:-1]):
        r = 4 * 2 ** b
        out(jnp.zeros((1, r, r, cfg.channels_at(r))))
    for k in range(start, stop):
      if k < cfg.num_ws:
        x = self.layers[k](x, wp[:, k], noise)
      else:
        x = self.outputs[-1](x)
        if cfg.final_tanh:
          x = jnp.tanh(x)
    return x

  def styles(self, wp):
    return [self.layers[i].style(wp[:, i]) for i in range(self.cfg.num_ws)]

  def intermediates(self, wp, noise="const"):
    """Every child's output in genforce registration order (``layer0, layer1, output0, layer2,
    …``); the toRGBs are side outputs (lod 0), before any tanh."""
    out, x = {}, None
    for i in range(self.cfg.num_ws):
      x = self.layers[i](x, wp[:, i], noise)
      out[f"layer{i}"] = x
      if i % 2 == 1:
        out[f"output{i // 2}"] = self.outputs[i // 2](x)
    return out


class StyleGANGenerator(nn.Module):
  """genforce StyleGAN generator: ``__call__(z)`` → image ``[B, R, R, C]`` (see module doc)."""
  config: StyleGANConfig

  def setup(self):
    self.mapping_net = _Mapping(self.config, name="mapping")
    self.truncation = _Truncation(self.config.w_dim, name="truncation")
    self.synthesis_net = _Synthesis(self.config, name="synthesis")

  def __call__(self, z, truncation_psi: float = 1.0, truncation_layers: int = 0,
               noise="const"):
    if self.is_initializing():
      self.truncation.average()
    wp = self.truncate(self.mapping(z), truncation_psi, truncation_layers)
    return self.synthesis_net(None, wp, 0, None, noise)

  def mapping(self, z):
    """z ``[B, z_dim]`` → w ``[B, w_dim]`` (``repeat_w=False``: ``[B, L, w_dim]``)."""
    return self.mapping_net(z)

  def truncate(self, w, truncation_psi: float = 1.0, truncation_layers: int = 0):
    """w ``[B, w_dim]`` (or ``[B, L, w_dim]``) → truncated w+ ``[B, L, w_dim]``."""
    return truncate_wp(self.truncation, self.config, w, truncation_psi, truncation_layers)

  def synthesis(self, x, wp, start: int = 0, stop: int | None = None, noise="const"):
    """Runs synthesis layers ``[start, stop)`` on ``x`` with w+ ``wp [B, L, w_dim]``."""
    return self.synthesis_net(x, wp, start, stop, noise)

  def styles(self, wp):
    """Per-layer AdaIN style vectors ``[B, 2C_i]`` (genforce ``generate_style``)."""
    return self.synthesis_net.styles(wp)

  def intermediates(self, wp, noise="const"):
    return self.synthesis_net.intermediates(wp, noise)

  def average_w(self):
    """The stored average w ``[w_dim]`` (genforce ``truncation.w_avg``)."""
    return self.truncation.average()


def infer_config(shapes: dict[str, Sequence[int]]) -> StyleGANConfig:
  """Infers the architecture from genforce StyleGAN state_dict shapes ``{key: shape}``."""
  if "synthesis.layer0.const" not in shapes or "mapping.dense0.fc.weight" not in shapes:
    raise ValueError("not a genforce StyleGAN state_dict (no synthesis.layer0.const / mapping)")
  out_idx = sorted(int(k.split(".")[1][len("output"):]) for k in shapes
                   if k.startswith("synthesis.output") and k.endswith(".conv.weight"))
  resolution = 4 * 2 ** out_idx[-1]
  num_ws = 2 * (out_idx[-1] + 1)
  mapping_layers = len([k for k in shapes if k.startswith("mapping.dense") and k.endswith(".fc.weight")])
  z_dim = int(shapes["mapping.dense0.fc.weight"][1])
  hidden = int(shapes["mapping.dense0.fc.weight"][0]) if mapping_layers > 1 else None
  w_dim = int(shapes["truncation.w_avg"][0])
  last = int(shapes[f"mapping.dense{mapping_layers - 1}.fc.weight"][0])
  if last == w_dim:
    repeat_w = True
  elif last == w_dim * num_ws:
    repeat_w = False
  else:
    raise ValueError(f"mapping output width {last} is neither w_dim {w_dim} nor L·w_dim {w_dim * num_ws}")
  image_channels = int(shapes[f"synthesis.output{out_idx[-1]}.conv.weight"][0])
  chans = {4 * 2 ** b: int(shapes[f"synthesis.output{b}.conv.weight"][1]) for b in out_idx}
  fmaps_max = chans[4]
  fmaps_base = fmaps_max * resolution * 2
  for r in sorted(chans):
    if chans[r] < fmaps_max:
      fmaps_base = chans[r] * r
      break
  fused = {4 * 2 ** b: f"synthesis.layer{2 * b}.weight" in shapes for b in range(1, out_idx[-1] + 1)}
  if all(fused.values()):
    fused_scale = True if min(fused) < 128 else "auto"
  elif not any(fused.values()):
    fused_scale = False if resolution >= 128 else "auto"
  elif all(v == (r >= 128) for r, v in fused.items()):
    fused_scale = "auto"
  else:
    raise ValueError(f"fused up-convs at {sorted(r for r, v in fused.items() if v)} px follow no "
                     "genforce fused_scale setting")
  cfg = StyleGANConfig(resolution=resolution, z_dim=z_dim, w_dim=w_dim,
                       image_channels=image_channels, fused_scale=fused_scale,
                       fmaps_base=fmaps_base, fmaps_max=fmaps_max, mapping_layers=mapping_layers,
                       repeat_w=repeat_w)
  if hidden is not None and hidden != fmaps_max:
    raise ValueError(f"mapping hidden width {hidden} != fmaps_max {fmaps_max}")
  got = {r: cfg.channels_at(r) for r in chans}
  if got != chans:
    raise ValueError(f"StyleGAN channel widths {chans} do not follow min(fmaps_base // r, fmaps_max)")
  return cfg
