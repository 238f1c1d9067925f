"""LPIPS v0.1 (Zhang et al., 2018) with AlexNet or VGG16 backbones, in Flax (NHWC, HWIO).

``LPIPS(net)`` compares two images in [-1, 1]:

1. ScalingLayer ``(x − shift)/scale`` (ImageNet statistics re-expressed for [-1, 1] input),
2. the backbone's five ReLU taps (AlexNet: after conv1..conv5 = ``features[1, 4, 7, 9, 11]``;
   VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 = ``features[3, 8, 15, 22, 29]``),
3. per tap ``f / (sqrt(Σ_c f²) + 1e-10)`` (eps outside the sqrt),
4. ``(f̂0 − f̂1)²`` weighted by the learned non-negative ``lin{k}`` channel weights (no bias),
5. spatial mean per tap, summed over taps (or, ``spatial=True``, each map bilinearly upsampled
   to the input size and summed).

One value per pair, never averaged over the batch. Params mirror the two source files:
``{"net": {"features": {"0": {"weight", "bias"}, ...}}, "lin0": {"weight": [C0]}, ...}`` —
``net/features`` is exactly a converted torchvision backbone (``alexnet`` / ``vgg16`` family)
and ``lin{k}/weight`` the lpips package's ``lin{k}.model.1.weight`` squeezed to ``[C_k]``.

References:
  Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
  CVPR 2018. https://arxiv.org/abs/1801.03924
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxinv.models import layers as L
from jaxinv.models import vgg

__all__ = ["ALEXNET_MODULES", "AlexNetFeatures", "LPIPS", "NETS", "SHIFT", "SCALE", "lpips_distance"]

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# torchvision alexnet().features by index: ("conv", in, out, k, stride, pad) | ("relu",) | ("pool",)
ALEXNET_MODULES = [
    ("conv", 3, 64, 11, 4, 2), ("relu",), ("pool",),
    ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool",),
    ("conv", 192, 384, 3, 1, 1), ("relu",),
    ("conv", 384, 256, 3, 1, 1), ("relu",),
    ("conv", 256, 256, 3, 1, 1), ("relu",),
    ("pool",),
]

_VGG_MODULES = [m if m[0] != "conv" else ("conv", m[1], m[2], 3, 1, 1) for m in vgg.VGG16_MODULES]

#: net → (module list, tap indices, lin channels)
NETS = {
    "alex": (ALEXNET_MODULES, (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": (_VGG_MODULES, (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}


class _Conv(nn.Module):
  cin: int
  cout: int
  k: int
  stride: int
  pad: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.lecun_normal(), (self.k, self.k, self.cin, self.cout))
    b = self.param("bias", nn.initializers.zeros, (self.cout,))
    return L.conv2d(x, w.astype(x.dtype), stride=self.stride, padding=self.pad) + b.astype(x.dtype)


def _pool(x, window: int, stride: int):
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1),
                           "VALID")


class _TappedFeatures(nn.Module):
  """``features[:max(taps)+1]`` returning the outputs of the modules in ``taps``."""
  modules: Sequence[tuple]
  taps: Sequence[int]
  pool_window: int

  @nn.compact
  def __call__(self, x):
    outs = []
    for idx, mod in enumerate(self.modules[:max(self.taps) + 1]):
      if mod[0] == "conv":
        x = _Conv(*mod[1:], name=str(idx))(x)
      elif mod[0] == "relu":
        x = jax.nn.relu(x)
      else:
        x = _pool(x, self.pool_window, 2)
      if idx in self.taps:
        outs.append(x)
    return outs


class _Backbone(nn.Module):
  net: str

  def setup(self):
    mods, taps, _ = NETS[self.net]
    self.features = _TappedFeatures(tuple(mods), taps, 3 if self.net == "alex" else 2)

  def __call__(self, x):
    return self.features(x)


class AlexNetFeatures(nn.Module):
  """``torchvision.models.alexnet().features[:num_modules]`` on NHWC input (params ``features/{i}``)."""
  num_modules: int = 12

  def setup(self):
    if not 1 <= self.num_modules <= len(ALEXNET_MODULES):
      raise ValueError(f"AlexNet has {len(ALEXNET_MODULES)} feature modules; got {self.num_modules}")
    self.features = _TappedFeatures(tuple(ALEXNET_MODULES), (self.num_modules - 1,), 3)

  def __call__(self, x):
    return self.features(x)[-1]


def _unit_normalize(f, eps=1e-10):
  return f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + eps)


class LPIPS(nn.Module):
  """LPIPS v0.1 distance. ``net``: ``"alex"`` or ``"vgg"``.

  ``__call__(x, y, spatial=False, per_layer=False, normalize=False)`` with ``x, y`` NHWC
  ``[B, H, W, 3]`` in [-1, 1] (``normalize=True``: in [0, 1]). Returns ``[B]`` distances
  (``spatial``: ``[B, H, W]`` maps; ``per_layer``: also the ``[B, 5]`` per-tap terms).
  """
  net: str = "alex"
  version: str = "0.1"

  def setup(self):
    if self.net not in NETS:
      raise ValueError(f"LPIPS net must be one of {sorted(NETS)}; got {self.net!r}")
    if self.version != "0.1":
      raise ValueError(f"only LPIPS v0.1 is implemented; got {self.version!r}")
    self.backbone = _Backbone(self.net, name="net")
    chans = NETS[self.net][2]
    self.lins = [self.param(f"lin{k}", lambda key, c=c: {"weight": jnp.full((c,), 1.0 / c)})
                 for k, c in enumerate(chans)]

  def scale(self, x):
    shift = jnp.asarray(SHIFT, x.dtype)
    scale = jnp.asarray(SCALE, x.dtype)
    return (x - shift) / scale

  def features(self, x):
    """The five raw backbone taps of the scaled input (NHWC)."""
    return self.backbone(self.scale(x))

  def layer_maps(self, x, y):
    """Per tap ``[B, h_k, w_k]``: the lin-weighted squared differences of unit-normalised features."""
    b = x.shape[0]
    feats = self.features(jnp.concatenate([x, y], axis=0))
    maps = []
    for f, lin in zip(feats, self.lins):
      f = _unit_normalize(f)
      d = jnp.square(f[:b] - f[b:])
      maps.append(jnp.einsum("bhwc,c->bhw", d, lin["weight"].astype(d.dtype),
                             precision=lax.Precision.HIGHEST))
    return maps

  def __call__(self, x, y, spatial: bool = False, per_layer: bool = False, normalize: bool = False):
    if x.ndim != 4 or x.shape != y.shape or x.shape[-1] != 3:
      raise ValueError(f"LPIPS expects two NHWC [B, H, W, 3] batches of one shape; got {x.shape}, {y.shape}")
    if normalize:
      x, y = 2 * x - 1, 2 * y - 1
    maps = self.layer_maps(x, y)
    if spatial:
      ups = self._upsampled(maps, x.shape[1:3])
      terms = jnp.stack([u.mean(axis=(1, 2)) for u in ups], axis=-1)
      out = sum(ups[1:], ups[0])
    else:
      means = [m.mean(axis=(1, 2)) for m in maps]
      terms = jnp.stack(means, axis=-1)
      out = sum(means[1:], means[0])  # left to right, as lpips does
    return (out, terms) if per_layer else out

  @staticmethod
  def _upsampled(maps, size):
    from jaxinv import tasks
    return [tasks.resize(m[..., None], size, "bilinear")[..., 0] for m in maps]

  def all_outputs(self, x, y):
    """``{"dist": [B], "per_layer": [B, 5], "spatial": [B, H, W], "lin_out": [5 × [B, h, w]]}``
    from one backbone pass (for inspection and tests)."""
    maps = self.layer_maps(x, y)
    means = [m.mean(axis=(1, 2)) for m in maps]
    ups = self._upsampled(maps, x.shape[1:3])
    return {"dist": sum(means[1:], means[0]), "per_layer": jnp.stack(means, axis=-1),
            "spatial": sum(ups[1:], ups[0]), "lin_out": maps}


def lpips_distance(params, x, y, *, net: str = "alex", spatial: bool = False):
  """Pure LPIPS ``d(x, y)`` of one pair or a batch (usable inside a jitted inversion loss).

  Args:
    params: an ``lpips`` model's params (``load_model(dir).params``).
    x, y: ``[H, W, 3]`` or ``[B, H, W, 3]`` in [-1, 1].
    net: ``"alex"`` or ``"vgg"`` (the model's ``config["net"]``).
  Returns:
    A scalar for one pair, ``[B]`` for a batch (``spatial``: ``[H, W]`` / ``[B, H, W]``).
  """
  single = x.ndim == 3
  if single:
    x, y = x[None], y[None]
  out = LPIPS(net).apply({"params": params}, x, y, spatial=spatial)
  return out[0] if single else out
