"""VGG16 in the Keras/caffe convention: IDInvert's perceptual model.

Same conv stack as torchvision's ``features`` (module indices 0..30) but other
weights (Keras' VGG16, trained on BGR 0-255 input) and another front end:
an image in [-1, 1] becomes ``(x + 1) * 255 / 2``, RGB → **BGR**, minus the BGR
mean (103.939, 116.779, 123.68), with no std division. ``num_modules=23`` (the
IDInvert ``output_layer_idx``) ends at relu4_3: 512 channels at R/8.

Not LPIPS's VGG and not torchvision's ImageNet normalisation
(:mod:`jaxinv.models.vgg`). Params mirror the IDInvert ``vgg16.pth`` keys:
``layer{i}/weight`` (HWIO) and ``layer{i}/bias``.
"""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv.models import vgg

__all__ = ["KerasVGG16", "BGR_MEAN", "preprocess"]

BGR_MEAN = (103.939, 116.779, 123.68)


def preprocess(x: jax.Array, min_val: float = -1.0, max_val: float = 1.0) -> jax.Array:
  """NHWC RGB in [min_val, max_val] → NHWC BGR, 0-255 scale, mean subtracted."""
  x = (x - min_val) * (255.0 / (max_val - min_val))
  x = x[..., ::-1]
  return x - jnp.asarray(BGR_MEAN, x.dtype)


class KerasVGG16(nn.Module):
  """``x [B, H, W, 3]`` RGB in [-1, 1] → features after module ``num_modules - 1`` (NHWC)."""
  num_modules: int = 23

  @nn.compact
  def __call__(self, x):
    if not 1 <= self.num_modules <= len(vgg.VGG16_MODULES):
      raise ValueError(f"VGG16 has {len(vgg.VGG16_MODULES)} modules; got {self.num_modules}")
    chex.assert_rank(x, 4)
    x = preprocess(x)
    for idx, mod in enumerate(vgg.VGG16_MODULES[:self.num_modules]):
      if mod[0] == "conv":
        x = vgg.Conv3x3(mod[1], mod[2], name=f"layer{idx}")(x)
      elif mod[0] == "relu":
        x = jax.nn.relu(x)
      else:
        x = vgg.max_pool_2x2(x)
    return x
