"""NVIDIA StyleGAN2-ADA network pickles (``stylegan2-ada-pytorch``, and the legacy TF ones) → ``stylegan2``.

The file is read by :mod:`jaxinv.io.nvidia_pickle` (nothing in it runs). The
generator is ``G_ema`` (what NVIDIA's generate.py / projector.py use); ``part=G``
picks the non-EMA copy. The architecture comes from the module's ``init_kwargs``
(for TF pickles from the network's ``static_kwargs``, converted as NVIDIA's
legacy.py does) and every tensor is then checked against it.

NVIDIA defaults recorded as extras: truncation psi 1 on all rows, noise "const".
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable

import jax.numpy as jnp
import numpy as np

from jaxinv.converters.base import (Converted, ConversionError, expected_shapes, state_dict_of,
                                    summarize)
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.converters.nvidia_shared import MAPPING_RULES, mapping_settings, read_config
from jaxinv.io import nvidia_pickle
from jaxinv.io.nvidia_pickle import PersistentObject, TFNetwork
from jaxinv.models import stylegan2
from jaxinv.models.upfirdn import make_kernel

NAME = "nvidia-stylegan2-ada"
DESCRIPTION = ("NVIDIA StyleGAN2-ADA network pickle ({G, D, G_ema, ...} of persistent "
               "training.networks modules, or a legacy TF (G, D, Gs) tuple)")

GENERATOR_CLASS = "Generator"
PARTS = ("G_ema", "G", "D")
_TF_PARTS = {"G": 0, "D": 1, "G_ema": 2}


def _is_tf(obj) -> bool:
  return isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetwork) for n in obj)


def _is_ada_generator(g) -> bool:
  if not isinstance(g, PersistentObject) or g.class_name != GENERATOR_CLASS:
    return False
  # StyleGAN3's Generator has the same class name; its synthesis has no ``b4`` block.
  synth = g.children.get("synthesis")
  return isinstance(synth, PersistentObject) and "b4" in synth.children


def detect(obj) -> bool:
  if _is_tf(obj):
    return "synthesis" in obj[2].components
  return isinstance(obj, dict) and _is_ada_generator(obj.get("G_ema"))


def _part(obj, part):
  if part not in PARTS:
    raise ConversionError(f"part must be one of {', '.join(PARTS)} (got {part!r})")
  if _is_tf(obj):
    net = obj[_TF_PARTS[part]]
    try:
      return nvidia_pickle.tf_generator_kwargs(net), nvidia_pickle.tf_to_torch_generator_state(net)
    except nvidia_pickle.CheckpointError as e:
      raise ConversionError(f"TF network pickle: {e}") from None
  g = obj.get(part)
  if not _is_ada_generator(g):
    raise ConversionError(f"the pickle has no StyleGAN2-ADA generator under {part!r}")
  return g.init_kwargs, nvidia_pickle.state_dict(g)


def config_from_kwargs(kw: dict) -> stylegan2.StyleGAN2Config:
  """``training.networks.Generator`` init kwargs → :class:`StyleGAN2Config`."""
  sk = dict(kw.get("synthesis_kwargs") or {})
  arch = sk.get("architecture", "skip")
  if arch != "skip":
    raise ConversionError(f"synthesis architecture {arch!r}: only 'skip' (NVIDIA's default "
                          "generator) is supported")
  for key, default in (("resample_filter", [1, 3, 3, 1]), ("activation", "lrelu"),
                       ("use_noise", True)):
    value = sk.get(key, default)
    if (list(value) if isinstance(value, (list, tuple)) else value) != default:
      raise ConversionError(f"synthesis_kwargs {key}={value!r} is not supported (only {default!r})")
  settings = mapping_settings(kw, default_mapping_layers=8)
  res = settings["resolution"]
  base, cmax = int(sk.get("channel_base", 32768)), int(sk.get("channel_max", 512))
  channels = tuple(min(base // r, cmax) for r in (2 ** i for i in range(2, int(math.log2(res)) + 1)))
  return stylegan2.StyleGAN2Config(
      **settings, channels=channels, mapping_hidden=settings["w_dim"], style_bias_offset=0.0,
      conv_clamp=sk.get("conv_clamp"))


def _const(x):
  return np.transpose(x, (1, 2, 0))


def _up_kernel(x):
  """conv0 (up): NVIDIA's transposed conv does not flip the weight; ours correlates the dilated input."""
  return oihw_to_hwio(x)[::-1, ::-1]


def _layer_rules(cfg):
  rules = []
  for b in range(cfg.num_blocks):
    r = 4 * 2 ** b
    convs = [("conv1", 0, oihw_to_hwio)] if r == 4 else [
        ("conv0", 2 * b - 1, _up_kernel), ("conv1", 2 * b, oihw_to_hwio)]
    for name, i, kernel in convs:
      src, dst = fr"synthesis\.b{r}\.{name}", f"synthesis/layer{i}"
      rules += [Rule(src + r"\.weight", dst + "/weight", kernel),
                Rule(src + r"\.bias", dst + "/bias"),
                Rule(src + r"\.noise_strength", dst + "/noise_strength"),
                Rule(src + r"\.noise_const", dst + "/noise"),
                Rule(src + r"\.affine\.weight", dst + "/style_weight", linear_to_io),
                Rule(src + r"\.affine\.bias", dst + "/style_bias")]
    src, dst = fr"synthesis\.b{r}\.torgb", f"synthesis/output{b}"
    rules += [Rule(src + r"\.weight", dst + "/weight", oihw_to_hwio),
              Rule(src + r"\.bias", dst + "/bias"),
              Rule(src + r"\.affine\.weight", dst + "/style_weight", linear_to_io),
              Rule(src + r"\.affine\.bias", dst + "/style_bias")]
  return rules


RULES_COMMON = MAPPING_RULES + [
    Rule(r"synthesis\.b4\.const", "synthesis/early_layer/const", _const),
]
FILTER_KEYS = r"synthesis\.b\d+(\.conv[01])?\.resample_filter"


def discriminator_config(kw: dict) -> stylegan2.NvidiaDiscriminatorConfig:
  """``training.networks.Discriminator`` init kwargs → :class:`NvidiaDiscriminatorConfig`."""
  if kw.get("architecture", "resnet") != "resnet":
    raise ConversionError(f"discriminator architecture {kw['architecture']!r}: only 'resnet' "
                          "(NVIDIA's default) is supported")
  mk, ek = dict(kw.get("mapping_kwargs") or {}), dict(kw.get("epilogue_kwargs") or {})
  bk = dict(kw.get("block_kwargs") or {})
  if list(bk.get("resample_filter", [1, 3, 3, 1])) != [1, 3, 3, 1] or \
      bk.get("activation", "lrelu") != "lrelu":
    raise ConversionError(f"discriminator block_kwargs {bk} are not supported")
  res = int(kw["img_resolution"])
  base, cmax = int(kw.get("channel_base", 32768)), int(kw.get("channel_max", 512))
  channels = tuple(min(base // r, cmax) for r in (2 ** i for i in range(2, int(math.log2(res)) + 1)))
  c_dim = int(kw.get("c_dim", 0))
  cmap_dim = 0 if not c_dim else int(kw.get("cmap_dim") or channels[0])
  return stylegan2.NvidiaDiscriminatorConfig(
      resolution=res, channels=channels, image_channels=int(kw.get("img_channels", 3)),
      c_dim=c_dim, cmap_dim=cmap_dim, mapping_layers=int(mk.get("num_layers", 8)),
      mapping_lr_mul=float(mk.get("lr_multiplier", 0.01)),
      mbstd_group_size=int(ek.get("mbstd_group_size", 4)),
      mbstd_num_channels=int(ek.get("mbstd_num_channels", 1)), conv_clamp=kw.get("conv_clamp"))


D_RULES = [
    Rule(r"b(\d+)\.(fromrgb|conv0|conv1|skip)\.weight", r"b\1_\2/weight", oihw_to_hwio),
    Rule(r"b(\d+)\.(fromrgb|conv0|conv1)\.bias", r"b\1_\2/bias"),
    Rule(r"b4\.conv\.weight", "b4_conv/weight", oihw_to_hwio),
    Rule(r"b4\.conv\.bias", "b4_conv/bias"),
    Rule(r"b4\.(fc|out)\.weight", r"b4_\1/weight", linear_to_io),
    Rule(r"b4\.(fc|out)\.bias", r"b4_\1/bias"),
    Rule(r"mapping\.embed\.weight", "embed/weight", linear_to_io),
    Rule(r"mapping\.embed\.bias", "embed/bias"),
    Rule(r"mapping\.fc(\d+)\.weight", r"mapping_\1/weight", linear_to_io),
    Rule(r"mapping\.fc(\d+)\.bias", r"mapping_\1/bias"),
]
D_FILTER_KEYS = r"b\d+(\.(fromrgb|conv0|conv1|skip|conv))?\.resample_filter"


def _check_filters(sd, pattern):
  want = np.asarray(make_kernel([1, 3, 3, 1]))
  for k, v in sd.items():
    if re.fullmatch(pattern, k) and not np.allclose(v, want, rtol=0, atol=1e-7):
      raise ConversionError(f"{k} is not the [1, 3, 3, 1] resampling filter")


def _discriminator(obj):
  if _is_tf(obj):
    try:
      return (nvidia_pickle.tf_discriminator_kwargs(obj[1]),
              nvidia_pickle.tf_to_torch_discriminator_state(obj[1]))
    except nvidia_pickle.CheckpointError as e:
      raise ConversionError(f"TF network pickle: {e}") from None
  d = obj.get("D") if isinstance(obj, dict) else None
  if not isinstance(d, PersistentObject) or d.class_name != "Discriminator":
    raise ConversionError("the pickle has no StyleGAN2-ADA discriminator under 'D'")
  return d.init_kwargs, nvidia_pickle.state_dict(d)


def convert_discriminator(obj) -> Converted:
  kwargs, sd = _discriminator(obj)
  cfg = read_config(lambda: discriminator_config(kwargs), "discriminator init_kwargs")
  _check_filters(sd, D_FILTER_KEYS)
  module = stylegan2.NvidiaDiscriminator(cfg)
  img = jnp.zeros((1, cfg.resolution, cfg.resolution, cfg.image_channels))
  want = expected_shapes(module, img, jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None)
  params = apply_rules(sd, D_RULES, [D_FILTER_KEYS], want, what="StyleGAN2-ADA D")
  cond = f", c {cfg.c_dim} (cmap {cfg.cmap_dim})" if cfg.c_dim else ""
  return Converted("stylegan2-nvidia-discriminator", cfg, params, extras={"nvidia_part": "D"},
                   summary=f"StyleGAN2-ADA discriminator {cfg.resolution}px (NVIDIA){cond}, "
                           f"channels {list(cfg.channels)}; {summarize(params)}")


def convert(obj, part: str = "G_ema", truncation_psi=None, truncation_layers=None,
            **unused) -> Converted:
  if part == "D":
    return convert_discriminator(obj)
  kwargs, sd = _part(obj, part)
  try:
    cfg = config_from_kwargs(kwargs)
  except (KeyError, TypeError, ValueError) as e:
    if isinstance(e, ConversionError):
      raise
    raise ConversionError(f"StyleGAN2-ADA init_kwargs not understood: {e}") from None
  return _convert_generator(sd, cfg, part, truncation_psi, truncation_layers)


def _convert_generator(sd, cfg, part, truncation_psi, truncation_layers, extras=None):
  want_filter = np.asarray(make_kernel([1, 3, 3, 1]))
  for k, v in sd.items():
    if re.fullmatch(FILTER_KEYS, k) and not np.allclose(v, want_filter, rtol=0, atol=1e-7):
      raise ConversionError(f"{k} is not the [1, 3, 3, 1] resampling filter")
  module = stylegan2.StyleGAN2Generator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  params = apply_rules(sd, RULES_COMMON + _layer_rules(cfg), [FILTER_KEYS], want,
                       what=f"StyleGAN2-ADA {part}")
  extras = {"truncation_psi": 1.0 if truncation_psi is None else float(truncation_psi),
            "truncation_layers": cfg.num_ws if truncation_layers is None else int(truncation_layers),
            "randomize_noise": False, "nvidia_part": part, **(extras or {})}
  cond = f", c {cfg.c_dim}" if cfg.c_dim else ""
  clamp = f", conv_clamp {cfg.conv_clamp:g}" if cfg.conv_clamp is not None else ""
  return Converted("stylegan2", cfg, params, extras=extras,
                   summary=f"StyleGAN2-ADA {part} {cfg.resolution}px (NVIDIA), z {cfg.z_dim}, "
                           f"w {cfg.w_dim}{cond}{clamp}, channels {list(cfg.channels)}; "
                           f"{summarize(params)}")


# --- a bare generator state_dict ------------------------------------------------------------

def _detect_state_dict(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and "synthesis.b4.const" in sd and "mapping.fc0.weight" in sd \
      and "synthesis.b4.conv1.affine.weight" in sd


def config_from_state_dict(sd, mapping_lr_mul: float = 0.01,
                           conv_clamp=None) -> stylegan2.StyleGAN2Config:
  """The architecture of a ``Generator.state_dict()`` from its shapes. The two settings that
  leave no trace in the tensors are arguments: ``mapping_lr_mul`` (a runtime gain of the
  mapping layers; NVIDIA's default 0.01) and ``conv_clamp``."""
  fcs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
  if fcs != list(range(len(fcs))):
    raise ConversionError(f"mapping layers fc{fcs} are not numbered 0..{len(fcs) - 1}")
  w_dim = int(sd[f"mapping.fc{fcs[-1]}.weight"].shape[0])
  for i in fcs[:-1]:
    if sd[f"mapping.fc{i}.weight"].shape[0] != w_dim:
      raise ConversionError(f"mapping.fc{i} has {sd[f'mapping.fc{i}.weight'].shape[0]} outputs; "
                            f"only mapping layers of width w_dim ({w_dim}) are supported")
  c_dim, embed = 0, 0
  if "mapping.embed.weight" in sd:
    embed, c_dim = (int(n) for n in sd["mapping.embed.weight"].shape)
  z_dim = int(sd["mapping.fc0.weight"].shape[1]) - embed
  res = sorted(int(m.group(1)) for k in sd
               if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", k)))
  if not res or res != [4 * 2 ** i for i in range(len(res))]:
    raise ConversionError(f"synthesis blocks b{res} are not 4, 8, ... px")
  channels = tuple(int(sd["synthesis.b4.const"].shape[0]) if r == 4 else
                   int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in res)
  return stylegan2.StyleGAN2Config(
      resolution=res[-1], z_dim=z_dim, w_dim=w_dim, channels=channels,
      image_channels=int(sd[f"synthesis.b{res[-1]}.torgb.weight"].shape[0]),
      mapping_layers=len(fcs), mapping_hidden=w_dim, mapping_lr_mul=float(mapping_lr_mul),
      style_bias_offset=0.0, c_dim=c_dim,
      conv_clamp=None if conv_clamp in (None, "none", "None") else float(conv_clamp))


def convert_state_dict(obj, mapping_lr_mul: float = 0.01, conv_clamp=None, truncation_psi=None,
                       truncation_layers=None) -> Converted:
  """Converts ``G_ema.state_dict()`` of a StyleGAN2-ADA generator (the pickle's tensors
  without the module). The pickle records ``conv_clamp`` in its init_kwargs (NVIDIA's training
  configs set 256); a state_dict does not, so it defaults to none here: pass
  ``--option conv_clamp=256`` to match such a pickle where activations reach ±256·√2."""
  sd = state_dict_of(obj)
  try:
    cfg = config_from_state_dict(sd, mapping_lr_mul, conv_clamp)
  except (KeyError, TypeError, ValueError) as e:
    if isinstance(e, ConversionError):
      raise
    raise ConversionError(f"StyleGAN2-ADA state_dict not understood: {e}") from None
  return _convert_generator(sd, cfg, "G_ema", truncation_psi, truncation_layers,
                            extras={"source_format": STATE_DICT.NAME})


@dataclasses.dataclass(frozen=True)
class _Format:
  NAME: str
  DESCRIPTION: str
  detect: Callable
  convert: Callable


STATE_DICT = _Format("nvidia-stylegan2-ada-state-dict",
                     "state_dict of a StyleGAN2-ADA Generator (mapping.fc*, synthesis.b*.conv*/torgb; "
                     "architecture from the shapes)", _detect_state_dict, convert_state_dict)
