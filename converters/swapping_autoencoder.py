"""Official Swapping Autoencoder ``latest_checkpoint.pth`` (whole-model state_dict: ``E.``, ``G.``, ``D.``, ``Dpatch.``).

The architecture is inferred from the tensor shapes. What shapes cannot tell
(the exact ``crop_size``, ``netG_use_noise``, the loss / crop / optimizer settings)
comes from the run's option values: ``--option config=PATH`` (a ``config.json``
with official option names, flat or grouped, e.g. the fixture's) and/or single
``--option crop_size=256`` style overrides. Capacities given in the options are
cross-checked against the inferred widths.
"""

from __future__ import annotations

import json
import math

import numpy as np

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.models import swapping_autoencoder as sae
from jaxinv.models.upfirdn import make_kernel

NAME = "swapping-autoencoder"
DESCRIPTION = ("official Swapping Autoencoder checkpoint (E.FromRGB.*, G.SpatialCodeModulation.*, "
               "D.stylegan2_D.*, Dpatch.*)")

# Option names that matter after conversion (kept in extras["options"]).
TRAINING_OPTIONS = ("lambda_L1", "lambda_GAN", "lambda_PatchGAN", "lambda_R1", "lambda_patch_R1",
                    "patch_min_scale", "patch_max_scale", "patch_num_crops",
                    "patch_use_aggregation", "lr", "beta1", "beta2", "R1_once_every",
                    "batch_size", "load_size", "preprocess", "netG_use_noise", "crop_size")
DEFAULT_OPTIONS = {"lambda_L1": 1.0, "lambda_GAN": 1.0, "lambda_PatchGAN": 1.0, "lambda_R1": 10.0,
                   "lambda_patch_R1": 1.0, "patch_min_scale": 1 / 8, "patch_max_scale": 1 / 4,
                   "patch_num_crops": 8, "patch_use_aggregation": True, "lr": 0.002,
                   "beta1": 0.0, "beta2": 0.99, "R1_once_every": 16, "batch_size": 16,
                   "netG_use_noise": True, "preprocess": "scale_width_and_crop"}

RULES = [
    Rule(r"(.*)/Conv/weight", r"\1/Conv/weight", oihw_to_hwio),
    Rule(r"(G/.*)/conv/weight", r"\1/conv/weight", lambda w: oihw_to_hwio(w[0])),
    Rule(r"(G/.*)/noise/weight", r"\1/noise/weight"),
    Rule(r"G/ToRGB/bias", "G/ToRGB/bias", lambda b: b.reshape(-1)),
    Rule(r"(.*/(?:modulation|SpatialCodeModulation/scale|SpatialCodeModulation/bias|ToGlobalCode/\d+"
         r"|final_linear/\d+|pairlinear/\d+))/weight", r"\1/weight", linear_to_io),
    Rule(r"(.*)/bias", r"\1/bias"),
]
# Blur kernels are constants of the architecture (checked below), not parameters.
IGNORE = [r"num_discriminator_iters", r".*/(?:Blur|blur|upsample)/kernel"]


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and "E.FromRGB.Conv.weight" in sd and "G.SpatialCodeModulation.scale.weight" in sd


def read_options(config=None, **overrides) -> dict:
  """Official option values from a ``config.json`` path or dict (flat or grouped) plus overrides."""
  opts = {}
  if config is not None:
    if isinstance(config, str):
      try:
        with open(config) as f:
          config = json.load(f)
      except (OSError, json.JSONDecodeError) as e:
        raise ConversionError(f"cannot read the options file {config}: {e}") from None
    for k, v in config.items():
      if isinstance(v, dict) and k in ("architecture", "training_losses", "options",
                                       "options_all", "options_changed_from_default"):
        opts.update(v)
      elif not isinstance(v, dict):
        opts[k] = v
  opts.update(overrides)
  return opts


def _check_kernels(sd):
  want = {"E": np.asarray(make_kernel(sae._BLUR_E)), "sg2": np.asarray(make_kernel(sae._BLUR_SG2))}
  for k, v in sd.items():
    if not k.endswith("kernel"):
      continue
    if ".DownToGlobalCode." in k:
      ref = np.ones((1, 1), np.float32)
    elif k.startswith("E."):
      ref = want["E"]
    elif k.startswith("G.") :
      ref = want["sg2"] * 4.0
    else:
      ref = want["sg2"]
    if v.shape != ref.shape or not np.allclose(v, ref, atol=1e-7):
      raise ConversionError(f"{k}: blur kernel {v.tolist()} is not the expected {ref.tolist()} "
                            "(use_antialias=False or a modified architecture is not supported)")


def convert(obj, config=None, **overrides) -> Converted:
  sd = state_dict_of(obj)
  opts = read_options(config, **overrides)
  shapes = {k: v.shape for k, v in sd.items()}
  crop = opts.get("crop_size")
  try:
    cfg = sae.infer_config(shapes, crop_size=crop, use_noise=bool(opts.get("netG_use_noise", True)))
  except (KeyError, ValueError) as e:
    raise ConversionError(f"Swapping Autoencoder checkpoint: {e}") from None
  side = int(4 * cfg.crop_size / 2 ** round(math.log2(cfg.crop_size)))
  if side != cfg.d_final_side:
    raise ConversionError(f"crop_size {cfg.crop_size} gives a D final side of {side}, the "
                          f"checkpoint has {cfg.d_final_side}; pass --option crop_size=N")
  if any(k.endswith("_scale_capacity") for k in opts):
    try:
      ref = sae.from_options(opts)
    except (ValueError, KeyError) as e:
      raise ConversionError(f"options: {e}") from None
    diff = [f"{f}: options give {getattr(ref, f)}, checkpoint has {getattr(cfg, f)}"
            for f in ("spatial_code_ch", "global_code_ch", "enc_channels", "enc_global_channels",
                      "gen_head_channels", "gen_up_channels", "d_names", "d_channels",
                      "patch_size", "patch_names", "patch_channels")
            if getattr(ref, f) != getattr(cfg, f)]
    if diff:
      raise ConversionError("the options do not describe this checkpoint: " + "; ".join(diff))
  _check_kernels(sd)
  state = {k.replace(".", "/"): v for k, v in sd.items()}
  module = sae.SwappingAutoencoder(cfg)
  want = expected_shapes(module, *sae.example_inputs(cfg))
  params = apply_rules(state, RULES, IGNORE, want, what="Swapping Autoencoder checkpoint")
  kept = dict(DEFAULT_OPTIONS)
  kept.update({k: opts[k] for k in TRAINING_OPTIONS if k in opts})
  kept["crop_size"] = cfg.crop_size
  extras = {"options": kept,
            "num_discriminator_iters": int(np.asarray(sd.get("num_discriminator_iters", [0]))[0])}
  counts = {p: sum(int(np.prod(np.shape(v))) for v in _leaves(params[p])) for p in params}
  return Converted("swapping_autoencoder", cfg, params, extras=extras,
                   summary=f"Swapping Autoencoder crop {cfg.crop_size}, structure "
                           f"{cfg.spatial_code_ch}ch /{cfg.code_stride}, texture {cfg.global_code_ch}, "
                           f"patch {cfg.patch_size}; params " +
                           ", ".join(f"{p} {n:,}" for p, n in counts.items()) +
                           f"; {summarize(params)}")


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree
