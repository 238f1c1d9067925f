"""genforce / mGANprior StyleGAN2 generator ``.pth`` (a plain state_dict, "skip" architecture).

Truncation settings are not in the file; the official model-settings defaults
(:data:`jaxinv.models.stylegan2.MODEL_SETTINGS`) go into the extras and the
``truncation_psi`` / ``truncation_layers`` / ``randomize_noise`` options override them.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, linear_to_io
from jaxinv.models import stylegan2

NAME = "genforce-stylegan2"
DESCRIPTION = ("genforce StyleGAN2 generator state_dict (mapping.dense{i}.fc.weight, "
               "synthesis.early_layer.const, synthesis.layer{i}.weight [k,k,in,out])")


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and "synthesis.early_layer.const" in sd and "mapping.dense0.fc.weight" in sd


def _noise(x):
  return np.asarray(x).reshape(x.shape[-2:])


def _const(x):
  return np.transpose(np.asarray(x)[0], (1, 2, 0))


def settings_extras(defaults, **overrides):
  extras = dict(defaults)
  for k, v in overrides.items():
    if v is not None:
      extras[k] = type(extras[k])(v)
  return extras


def convert(obj, truncation_psi=None, truncation_layers=None, randomize_noise=None,
            **unused) -> Converted:
  sd = state_dict_of(obj)
  try:
    cfg = stylegan2.infer_config({k: v.shape for k, v in sd.items()})
  except (ValueError, KeyError) as e:
    raise ConversionError(f"StyleGAN2 checkpoint: {e}") from None
  s = r"synthesis\.(layer\d+|output\d+)"
  rules = [
      Rule(r"mapping\.dense(\d+)\.fc\.weight", r"mapping/dense\1/weight", linear_to_io),
      Rule(r"mapping\.dense(\d+)\.bias", r"mapping/dense\1/bias"),
      Rule(r"truncation\.w_avg", "truncation/w_avg"),
      Rule(r"synthesis\.early_layer\.const", "synthesis/early_layer/const", _const),
      Rule(s + r"\.weight", r"synthesis/\1/weight"),                 # stored HWIO already
      Rule(s + r"\.bias", r"synthesis/\1/bias"),
      Rule(s + r"\.noise_strength", r"synthesis/\1/noise_strength"),
      Rule(s + r"\.noise", r"synthesis/\1/noise", _noise),
      Rule(s + r"\.style\.fc\.weight", r"synthesis/\1/style_weight", linear_to_io),
      Rule(s + r"\.style\.bias", r"synthesis/\1/style_bias"),
  ]
  # FIR kernels are the fixed [1,3,3,1] filter, recomputed.
  ignore = [r"synthesis\.layer\d+\.filter\.kernel", r"synthesis\.upsample\.kernel",
            r"truncation\.truncation", r"synthesis\.lod"]
  module = stylegan2.StyleGAN2Generator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  params = apply_rules(sd, rules, ignore, want, what="StyleGAN2 checkpoint")
  extras = settings_extras(stylegan2.MODEL_SETTINGS, truncation_psi=truncation_psi,
                           truncation_layers=truncation_layers, randomize_noise=randomize_noise)
  return Converted("stylegan2", cfg, params, extras=extras,
                   summary=f"StyleGAN2 {cfg.resolution}px (genforce), z {cfg.z_dim}, w {cfg.w_dim}, "
                           f"channels {list(cfg.channels)}; truncation psi "
                           f"{extras['truncation_psi']} on {extras['truncation_layers']} layers; "
                           f"{summarize(params)}")
