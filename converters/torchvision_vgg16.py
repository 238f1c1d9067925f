"""torchvision VGG16 ``features.*`` weights (a whole vgg16 state_dict or its first modules)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, oihw_to_hwio
from jaxinv.models import vgg

NAME = "torchvision-vgg16"
DESCRIPTION = "torchvision vgg16 state_dict (features.{i}.weight/bias [, classifier.*])"


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  if not sd or "features.0.weight" not in sd or tuple(sd["features.0.weight"].shape) != (64, 3, 3, 3):
    return False
  return all(k.startswith(("features.", "classifier.")) for k in sd)


def convert(obj, **unused) -> Converted:
  sd = state_dict_of(obj)
  idx = sorted(int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight"))
  convs = vgg.conv_indices(len(vgg.VGG16_MODULES))
  if idx != convs[:len(idx)]:
    raise ConversionError(f"VGG16 checkpoint: conv indices {idx} are not VGG16's {convs}")
  # Keep every module up to the last stored conv's ReLU.
  num_modules = idx[-1] + 2
  rules = [Rule(r"features\.(\d+)\.weight", r"features/\1/weight", oihw_to_hwio),
           Rule(r"features\.(\d+)\.bias", r"features/\1/bias")]
  module = vgg.VGG16Features(num_modules)
  want = expected_shapes(module, jnp.zeros((1, 32, 32, 3)))
  params = apply_rules(sd, rules, [r"classifier\..*"], want, what="VGG16 checkpoint")
  cfg = {"num_modules": num_modules}
  return Converted("vgg16", cfg, params,
                   summary=f"VGG16 features[:{num_modules}] ({len(idx)} convs); {summarize(params)}")
