"""genforce / mGANprior PGGAN generator ``.pth`` (a plain state_dict)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, oihw_to_hwio
from jaxinv.models import pggan

NAME = "genforce-pggan"
DESCRIPTION = "genforce/mGANprior PGGAN generator state_dict (layer{i}.conv.weight, output{b}.*)"


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and "layer0.conv.weight" in sd and any(k.startswith("output") for k in sd) \
      and not any(k.startswith(("mapping.", "synthesis.")) for k in sd)


def convert(obj, **unused) -> Converted:
  sd = state_dict_of(obj)
  try:
    cfg = pggan.infer_config({k: v.shape for k, v in sd.items()})
  except (ValueError, KeyError) as e:
    raise ConversionError(f"PGGAN checkpoint: {e}") from None
  last = cfg.num_blocks - 1
  rules = [
      Rule(r"layer(\d+)\.conv\.weight", r"layer\1/weight", oihw_to_hwio),
      Rule(r"layer(\d+)\.weight", r"layer\1/weight"),          # fused up-conv, stored HWIO
      Rule(r"layer(\d+)\.wscale\.bias", r"layer\1/bias"),
      Rule(rf"output{last}\.conv\.weight", "output/weight", oihw_to_hwio),
      Rule(rf"output{last}\.wscale\.bias", "output/bias"),
  ]
  # lod only selects training-time blending; the intermediate toRGBs are unused at lod 0.
  ignore = [r"lod", r"output\d+\.(conv\.weight|wscale\.bias)"]
  module = pggan.PGGANGenerator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  params = apply_rules(sd, rules, ignore, want, what="PGGAN checkpoint")
  return Converted("pggan", cfg, params, extras={},
                   summary=f"PGGAN {cfg.resolution}px, z_dim {cfg.z_dim}, fused_scale "
                           f"{cfg.fused_scale}, fmaps_base {cfg.fmaps_base}, fmaps_max "
                           f"{cfg.fmaps_max}; {summarize(params)}")
