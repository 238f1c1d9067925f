"""torchvision AlexNet ``features.*`` weights (an ``alexnet()`` state_dict or its ``features`` part)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, oihw_to_hwio
from jaxinv.models import lpips

NAME = "torchvision-alexnet"
DESCRIPTION = "torchvision alexnet state_dict (features.{0,3,6,8,10}.weight/bias [, classifier.*])"

RULES = [Rule(r"features\.(\d+)\.weight", r"features/\1/weight", oihw_to_hwio),
         Rule(r"features\.(\d+)\.bias", r"features/\1/bias")]
IGNORE = [r"classifier\..*"]


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  if not sd or "features.0.weight" not in sd or tuple(sd["features.0.weight"].shape) != (64, 3, 11, 11):
    return False
  return all(k.startswith(("features.", "classifier.")) for k in sd)


def convert(obj, **unused) -> Converted:
  sd = state_dict_of(obj)
  if sd is None:
    raise ConversionError("AlexNet checkpoint: not a flat state_dict")
  module = lpips.AlexNetFeatures(len(lpips.ALEXNET_MODULES) - 1)
  want = expected_shapes(module, jnp.zeros((1, 64, 64, 3)))
  params = apply_rules(sd, RULES, IGNORE, want, what="AlexNet checkpoint")
  return Converted("alexnet", {"num_modules": len(lpips.ALEXNET_MODULES) - 1}, params,
                   summary=f"AlexNet features[:12] (5 convs); {summarize(params)}")
