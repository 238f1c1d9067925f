"""genforce / mGANprior / IDInvert StyleGAN (v1) generator ``.pth`` (a plain state_dict).

The file carries no truncation settings (genforce deletes ``truncation.truncation``
before saving and re-creates it from ``models/model_settings.py``; IDInvert files
keep it but the wrapper overwrites it). The official defaults
(:data:`jaxinv.models.stylegan.MODEL_SETTINGS`) go into the model extras;
``truncation_psi`` / ``truncation_layers`` / ``randomize_noise`` options override them.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.models import stylegan

NAME = "genforce-stylegan"
DESCRIPTION = ("genforce StyleGAN generator state_dict (mapping.dense{i}.fc.weight, "
               "synthesis.layer0.const, synthesis.layer{i}.epilogue.*)")


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and "synthesis.layer0.const" in sd and "mapping.dense0.fc.weight" in sd \
      and "synthesis.layer0.epilogue.bias" in sd


def _torch_noise(x):
  """``[1, 1, r, r]`` → ``[r, r]``."""
  return np.asarray(x).reshape(x.shape[-2:])


def _const(x):
  """``[1, C, 4, 4]`` → ``[4, 4, C]``."""
  return np.transpose(np.asarray(x)[0], (1, 2, 0))


def convert(obj, truncation_psi=None, truncation_layers=None, randomize_noise=None,
            final_tanh: bool | None = None, **unused) -> Converted:
  """Converts a genforce StyleGAN state_dict.

  Args:
    truncation_psi, truncation_layers, randomize_noise: override the official
      model-settings defaults recorded in the extras.
    final_tanh: the generator ends in tanh. Default: True exactly when the mapping is
      not repeated (``repeat_w=False``), i.e. IDInvert's ``styleganinv_*`` generators, the
      only released genforce StyleGANs with either option.
  """
  sd = state_dict_of(obj)
  try:
    cfg = stylegan.infer_config({k: v.shape for k, v in sd.items()})
  except (ValueError, KeyError) as e:
    raise ConversionError(f"StyleGAN checkpoint: {e}") from None
  if final_tanh is None:
    final_tanh = not cfg.repeat_w
  if final_tanh:
    import dataclasses
    cfg = dataclasses.replace(cfg, final_tanh=True)
  ep = r"synthesis\.layer(\d+)\.epilogue"
  rules = [
      Rule(r"mapping\.dense(\d+)\.fc\.weight", r"mapping/dense\1/weight", linear_to_io),
      Rule(r"mapping\.dense(\d+)\.wscale\.bias", r"mapping/dense\1/bias"),
      Rule(r"truncation\.w_avg", "truncation/w_avg"),
      Rule(r"synthesis\.layer0\.const", "synthesis/layer0/const", _const),
      Rule(r"synthesis\.layer(\d+)\.conv\.weight", r"synthesis/layer\1/weight", oihw_to_hwio),
      Rule(r"synthesis\.layer(\d+)\.weight", r"synthesis/layer\1/weight"),  # fused up-conv, HWIO
      Rule(ep + r"\.bias", r"synthesis/layer\1/bias"),
      Rule(ep + r"\.apply_noise\.weight", r"synthesis/layer\1/noise_weight"),
      Rule(ep + r"\.apply_noise\.noise", r"synthesis/layer\1/noise", _torch_noise),
      Rule(ep + r"\.style_mod\.dense\.fc\.weight", r"synthesis/layer\1/style_weight", linear_to_io),
      Rule(ep + r"\.style_mod\.dense\.wscale\.bias", r"synthesis/layer\1/style_bias"),
      Rule(r"synthesis\.output(\d+)\.conv\.weight", r"synthesis/output\1/weight", oihw_to_hwio),
      Rule(r"synthesis\.output(\d+)\.bias", r"synthesis/output\1/bias"),
  ]
  # lod selects training-time blending (0 = full resolution); the blur kernels are the fixed
  # [1,2,1]^2/16 filter, recomputed; truncation.truncation is always rebuilt from settings.
  ignore = [r"synthesis\.lod", r"synthesis\.layer\d+\.blur\.kernel", r"truncation\.truncation"]
  module = stylegan.StyleGANGenerator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  params = apply_rules(sd, rules, ignore, want, what="StyleGAN checkpoint")
  if "synthesis.lod" in sd and float(np.asarray(sd["synthesis.lod"])) != 0.0:
    raise ConversionError(f"StyleGAN checkpoint has lod {float(sd['synthesis.lod'])}; only "
                          "lod 0 (full resolution, as released) is supported")
  extras = dict(stylegan.MODEL_SETTINGS)
  for k, v in (("truncation_psi", truncation_psi), ("truncation_layers", truncation_layers),
               ("randomize_noise", randomize_noise)):
    if v is not None:
      extras[k] = type(extras[k])(v)
  return Converted("stylegan", cfg, params, extras=extras,
                   summary=f"StyleGAN {cfg.resolution}px, z {cfg.z_dim}, w {cfg.w_dim}, "
                           f"{cfg.num_ws} w+ rows, fused_scale {cfg.fused_scale}, repeat_w "
                           f"{cfg.repeat_w}; truncation psi {extras['truncation_psi']} on "
                           f"{extras['truncation_layers']} layers; {summarize(params)}")
