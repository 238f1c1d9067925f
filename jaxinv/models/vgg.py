"""VGG16 convolutional features (torchvision layout) for perceptual losses.

``VGG16Features(num_modules=k)`` computes ``torchvision.models.vgg16().features[:k]``
on NHWC input (already normalised as the caller's convention requires). Params
mirror torchvision's state_dict: ``{"features": {"0": {"weight" (HWIO), "bias"}, "2": …}}``.
``num_modules=16`` ends at relu3_3 (the mGANprior perceptual layer), 23 at relu4_3.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv.ops import conv3x3

__all__ = ["VGG16Features", "VGG16_MODULES", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision vgg16().features: ("conv", in, out) | ("relu",) | ("pool",) by module index.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _modules():
  mods, cin = [], 3
  for v in _CFG:
    if v == "M":
      mods.append(("pool",))
    else:
      mods.append(("conv", cin, v))
      mods.append(("relu",))
      cin = v
  return mods


VGG16_MODULES = _modules()


def max_pool_2x2(x):
  """2×2, stride 2, VALID max pool of ``[N, H, W, C]`` (odd last rows/columns dropped).

  The same values and input gradient as ``lax.reduce_window`` max (whose gradient routes each
  window's cotangent to its first maximum in row-major order, as PyTorch's ``MaxPool2d``), but
  as reshapes + a compare: XLA:CPU runs the reduce-window gradient as an element-wise scatter.
  """
  n, h, w, c = x.shape
  return _pool_2x2(x[:, :h - h % 2, :w - w % 2, :])


def _windows(x):
  # [N, 2H', 2W', C] -> [N, H', W', 4, C], the window's elements in row-major order.
  n, h, w, c = x.shape
  x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // 2, w // 2, 4, c)


@jax.custom_vjp
def _pool_2x2(x):
  return jnp.max(_windows(x), axis=3)


def _pool_2x2_fwd(x):
  return _pool_2x2(x), x


def _pool_2x2_bwd(x, g):
  n, h, w, c = x.shape
  first = jnp.argmax(_windows(x), axis=3)            # first maximum of each window
  dx = jnp.where(jnp.arange(4)[:, None] == first[:, :, :, None, :], g[:, :, :, None, :],
                 jnp.zeros((), g.dtype))
  dx = dx.reshape(n, h // 2, w // 2, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return (dx.reshape(n, h, w, c),)


_pool_2x2.defvjp(_pool_2x2_fwd, _pool_2x2_bwd)


class Conv3x3(nn.Module):
  """3×3 conv, padding 1, with bias (params ``weight`` HWIO, ``bias``). The input gradient runs on
  a kernel flipped in the forward pass (:func:`jaxinv.ops.conv3x3.direct_conv3x3`: same bits, and
  the fast convolution path inside a ``lax.scan`` body too); reverse-mode differentiation only."""
  cin: int
  cout: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.lecun_normal(), (3, 3, self.cin, self.cout))
    b = self.param("bias", nn.initializers.zeros, (self.cout,))
    return conv3x3.direct_conv3x3(x, w.astype(x.dtype)) + b.astype(x.dtype)


class _Features(nn.Module):
  num_modules: int

  @nn.compact
  def __call__(self, x):
    for idx, mod in enumerate(VGG16_MODULES[:self.num_modules]):
      if mod[0] == "conv":
        x = Conv3x3(mod[1], mod[2], name=str(idx))(x)
      elif mod[0] == "relu":
        x = jax.nn.relu(x)
      else:
        x = max_pool_2x2(x)
    return x


class VGG16Features(nn.Module):
  """``features[:num_modules]`` of torchvision's VGG16 on NHWC input."""
  num_modules: int = 16

  def setup(self):
    if not 1 <= self.num_modules <= len(VGG16_MODULES):
      raise ValueError(f"VGG16 has {len(VGG16_MODULES)} feature modules; got {self.num_modules}")
    self.features = _Features(self.num_modules)

  def __call__(self, x):
    return self.features(x)


def conv_indices(num_modules: int) -> list[int]:
  """Module indices of the convs in ``features[:num_modules]``."""
  return [i for i, m in enumerate(VGG16_MODULES[:num_modules]) if m[0] == "conv"]
