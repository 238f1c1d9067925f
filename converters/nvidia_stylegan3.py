"""NVIDIA StyleGAN3 network pickles (``stylegan3``, configs T and R) → ``stylegan3``.

Read by :mod:`jaxinv.io.nvidia_pickle` (nothing in the file runs). ``G_ema`` by
default, ``part=G`` for the non-EMA copy. Mapping sizes come from ``init_kwargs``;
the per-layer geometry (channels, sizes, up/down factors, padding, ToRGB) from the
attributes NVIDIA's constructor stored on each layer, and the filters, frequencies,
phases and magnitude EMAs from its buffers, all checked against the tensors.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, summarize
from jaxinv.converters.nvidia_shared import (MAPPING_RULES, generator_extras, mapping_settings,
                                             read_config)
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.io import nvidia_pickle
from jaxinv.io.nvidia_pickle import PersistentObject
from jaxinv.models import stylegan3

NAME = "nvidia-stylegan3"
DESCRIPTION = ("NVIDIA StyleGAN3 network pickle ({G, D, G_ema, ...} of persistent "
               "training.networks_stylegan3 modules)")
PARTS = ("G_ema", "G")


def _synthesis(g):
  if not isinstance(g, PersistentObject) or g.class_name != "Generator":
    return None
  synth = g.children.get("synthesis")
  if isinstance(synth, PersistentObject) and "input" in synth.children:
    return synth
  return None


def detect(obj) -> bool:
  return isinstance(obj, dict) and _synthesis(obj.get("G_ema")) is not None


def _attr(obj, name):
  if name not in obj.state:
    raise ConversionError(f"StyleGAN3 {obj.class_name} without the attribute {name!r}")
  return nvidia_pickle.plain(obj.state[name])


def config_from_record(g) -> stylegan3.StyleGAN3Config:
  synth = _synthesis(g)
  inp = synth.children["input"]
  sd = nvidia_pickle.state_dict(synth)
  specs = []
  names = _attr(synth, "layer_names")
  for name in names:
    layer = synth.children.get(name)
    if layer is None:
      raise ConversionError(f"StyleGAN3 synthesis lists {name} but has no such layer")
    a = {k: _attr(layer, k) for k in ("in_channels", "out_channels", "conv_kernel", "up_factor",
                                      "down_factor", "padding", "is_torgb", "in_size", "out_size")}
    if len(set(np.ravel(a["in_size"]))) != 1 or len(set(np.ravel(a["out_size"]))) != 1:
      raise ConversionError(f"{name}: non-square feature maps are not supported")
    up = sd.get(f"{name}.up_filter")
    down = sd.get(f"{name}.down_filter")
    specs.append(stylegan3.LayerSpec(
        name=name, cin=int(a["in_channels"]), cout=int(a["out_channels"]),
        kernel=int(a["conv_kernel"]), up=int(a["up_factor"]), down=int(a["down_factor"]),
        padding=tuple(int(p) for p in a["padding"]), is_torgb=bool(a["is_torgb"]),
        in_size=int(np.ravel(a["in_size"])[0]), out_size=int(np.ravel(a["out_size"])[0]),
        up_filter=() if up is None else up.shape, down_filter=() if down is None else down.shape))
  clamps = {nvidia_pickle.plain(synth.children[n].state.get("conv_clamp")) for n in names}
  if len(clamps) != 1:
    raise ConversionError(f"StyleGAN3 layers with different conv_clamp values {sorted(map(str, clamps))}")
  settings = mapping_settings(g.init_kwargs, default_mapping_layers=2)
  return stylegan3.StyleGAN3Config(
      **settings, input_channels=int(_attr(inp, "channels")),
      input_size=tuple(int(v) for v in np.ravel(_attr(inp, "size"))),
      sampling_rate=float(_attr(inp, "sampling_rate")), bandwidth=float(_attr(inp, "bandwidth")),
      output_scale=float(_attr(synth, "output_scale")), conv_clamp=clamps.pop(), layers=tuple(specs))


RULES = MAPPING_RULES + [
    Rule(r"synthesis\.input\.(weight|freqs|phases|transform)", r"synthesis/input/\1"),
    Rule(r"synthesis\.input\.affine\.weight", "synthesis/input/affine_weight", linear_to_io),
    Rule(r"synthesis\.input\.affine\.bias", "synthesis/input/affine_bias"),
    Rule(r"synthesis\.(L\d+_\d+_\d+)\.weight", r"synthesis/\1/weight", oihw_to_hwio),
    Rule(r"synthesis\.(L\d+_\d+_\d+)\.(bias|magnitude_ema|up_filter|down_filter)", r"synthesis/\1/\2"),
    Rule(r"synthesis\.(L\d+_\d+_\d+)\.affine\.weight", r"synthesis/\1/style_weight", linear_to_io),
    Rule(r"synthesis\.(L\d+_\d+_\d+)\.affine\.bias", r"synthesis/\1/style_bias"),
]


def convert(obj, part: str = "G_ema", truncation_psi=None, truncation_layers=None,
            **unused) -> Converted:
  if part not in PARTS:
    raise ConversionError(f"part must be one of {', '.join(PARTS)} for StyleGAN3 (got {part!r})")
  g = obj.get(part)
  if _synthesis(g) is None:
    raise ConversionError(f"the pickle has no StyleGAN3 generator under {part!r}")
  cfg = read_config(lambda: config_from_record(g), "StyleGAN3 generator attributes")
  sd = nvidia_pickle.state_dict(g)
  module = stylegan3.StyleGAN3Generator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  params = apply_rules(sd, RULES, [], want, what=f"StyleGAN3 {part}")
  extras = generator_extras(cfg, part, truncation_psi, truncation_layers)
  cond = f", c {cfg.c_dim}" if cfg.c_dim else ""
  return Converted("stylegan3", cfg, params, extras=extras,
                   summary=f"StyleGAN3 {part} {cfg.resolution}px (NVIDIA), z {cfg.z_dim}, "
                           f"w {cfg.w_dim}{cond}, {len(cfg.layers)} layers; {summarize(params)}")
