"""rosinality ``stylegan2-pytorch`` checkpoints: ``{'g_ema', 'latent_avg', 'g', 'd', …}``.

Only the tensors that are needed are used: ``g_ema`` (or ``g`` with ``part="g"``)
and ``latent_avg`` for the generator, ``d`` for the discriminator
(``part="d"``). Training checkpoints also hold optimizer state and a pickled
``argparse.Namespace``; the safe reader turns the latter into a plain attribute
bag and both are ignored. Models default to no truncation (ψ = 1, as the
repo's scripts) and to the stored noise buffers.

Format differences handled here, each in one visible row:
* names: ``conv1``/``convs.{j}`` → ``layer0``/``layer{j+1}``, ``to_rgb1``/``to_rgbs.{j}``
  → ``output0``/``output{j+1}``, ``style.{i+1}`` → ``mapping/dense{i}``;
* the up-conv weight (``convs.{2j}``) is spatially flipped relative to the
  genforce/NVlabs orientation the module uses, so it is flipped back;
* the modulation bias is stored with its +1 included (``style_bias_offset = 0``).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, summarize
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.models import stylegan2

NAME = "rosinality-stylegan2"
DESCRIPTION = "rosinality stylegan2-pytorch checkpoint dict with g_ema (and latent_avg, g, d)"

W_AVG_SAMPLES = 4096    # z samples for w_avg when the file has no latent_avg (generate.py's mean_latent)


def detect(obj) -> bool:
  return isinstance(obj, dict) and isinstance(obj.get("g_ema"), dict) \
      and "input.input" in obj["g_ema"]


def _modconv(x):
  """``[1, O, I, k, k]`` → HWIO."""
  return oihw_to_hwio(np.asarray(x)[0])


def _modconv_up(x):
  """Up-conv ``[1, O, I, k, k]`` → HWIO, spatially flipped back to the genforce orientation."""
  return _modconv(x)[::-1, ::-1]


def _scalar(x):
  return np.asarray(x).reshape(())


def _rgb_bias(x):
  return np.asarray(x).reshape(-1)


def _noise(x):
  return np.asarray(x).reshape(x.shape[-2:])


def _const(x):
  return np.transpose(np.asarray(x)[0], (1, 2, 0))


def infer_generator_config(shapes) -> stylegan2.StyleGAN2Config:
  n_mlp = len([k for k in shapes if re.fullmatch(r"style\.\d+\.weight", k)])
  n_rgbs = len([k for k in shapes if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
  if not n_mlp or "input.input" not in shapes:
    raise ConversionError("g_ema is not a rosinality Generator state_dict")
  size = 2 ** (n_rgbs + 2)
  channels = [int(shapes["input.input"][1])]
  for j in range(n_rgbs):
    channels.append(int(shapes[f"convs.{2 * j}.conv.weight"][1]))
  return stylegan2.StyleGAN2Config.rosinality(
      size, style_dim=int(shapes["style.1.weight"][1]), n_mlp=n_mlp, channels=channels,
      lr_mlp=0.01)


def _generator_rules(cfg):
  rules = [
      Rule(r"input\.input", "synthesis/early_layer/const", _const),
      Rule(r"conv1\.conv\.weight", "synthesis/layer0/weight", _modconv),
      Rule(r"to_rgb1\.conv\.weight", "synthesis/output0/weight", _modconv),
      Rule(r"to_rgb1\.bias", "synthesis/output0/bias", _rgb_bias),
      Rule(r"conv1\.noise\.weight", "synthesis/layer0/noise_strength", _scalar),
      Rule(r"conv1\.activate\.bias", "synthesis/layer0/bias"),
      Rule(r"(conv1|to_rgb1)\.conv\.modulation\.weight", None, linear_to_io),
      Rule(r"(conv1|to_rgb1)\.conv\.modulation\.bias", None),
      Rule(r"noises\.noise_(\d+)", r"synthesis/layer\1/noise", _noise),
  ]
  # Rows whose target index is shifted by one get one row per index.
  for i in range(1, cfg.mapping_layers + 1):
    rules += [Rule(rf"style\.{i}\.weight", f"mapping/dense{i - 1}/weight", linear_to_io),
              Rule(rf"style\.{i}\.bias", f"mapping/dense{i - 1}/bias")]
  for j in range(cfg.num_convs - 1):
    t = f"synthesis/layer{j + 1}"
    rules += [Rule(rf"convs\.{j}\.conv\.weight", f"{t}/weight", _modconv_up if j % 2 == 0 else _modconv),
              Rule(rf"convs\.{j}\.conv\.modulation\.weight", f"{t}/style_weight", linear_to_io),
              Rule(rf"convs\.{j}\.conv\.modulation\.bias", f"{t}/style_bias"),
              Rule(rf"convs\.{j}\.noise\.weight", f"{t}/noise_strength", _scalar),
              Rule(rf"convs\.{j}\.activate\.bias", f"{t}/bias")]
  for j in range(cfg.num_blocks - 1):
    t = f"synthesis/output{j + 1}"
    rules += [Rule(rf"to_rgbs\.{j}\.conv\.weight", f"{t}/weight", _modconv),
              Rule(rf"to_rgbs\.{j}\.conv\.modulation\.weight", f"{t}/style_weight", linear_to_io),
              Rule(rf"to_rgbs\.{j}\.conv\.modulation\.bias", f"{t}/style_bias"),
              Rule(rf"to_rgbs\.{j}\.bias", f"{t}/bias", _rgb_bias)]
  # conv1 / to_rgb1 modulation rows need a target per name:
  out = []
  for r in rules:
    if r.target is None:
      for src, tgt in (("conv1", "layer0"), ("to_rgb1", "output0")):
        leaf = "style_weight" if r.source.endswith("weight") else "style_bias"
        out.append(Rule(r.source.replace(r"(conv1|to_rgb1)", src), f"synthesis/{tgt}/{leaf}", r.fix))
    else:
      out.append(r)
  return out


# Fixed [1,3,3,1] FIR buffers, recomputed by the module.
_G_IGNORE = [r"convs\.\d+\.conv\.blur\.kernel", r"to_rgbs\.\d+\.upsample\.kernel"]


def _convert_generator(obj, part, truncation_psi, truncation_layers, randomize_noise):
  sd = obj[part]
  cfg = infer_generator_config({k: v.shape for k, v in sd.items()})
  module = stylegan2.StyleGAN2Generator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  state = dict(sd)
  w_avg_source = "latent_avg"
  if part == "g_ema" and "latent_avg" in obj:
    state["truncation.w_avg"] = np.asarray(obj["latent_avg"]).reshape(-1)
  rules = _generator_rules(cfg) + [Rule(r"truncation\.w_avg", "truncation/w_avg")]
  if "truncation.w_avg" not in state:
    state["truncation.w_avg"] = np.zeros((cfg.w_dim,), np.float32)
    w_avg_source = f"mean of mapping(z) over {W_AVG_SAMPLES} z ~ N(0, I), jax.random.key(0)"
  params = apply_rules(state, rules, _G_IGNORE, want, what=f"rosinality {part}")
  if w_avg_source != "latent_avg":
    z = jax.random.normal(jax.random.key(0), (W_AVG_SAMPLES, cfg.z_dim))
    w = module.apply({"params": params}, z, method=module.mapping)
    params["truncation"]["w_avg"] = np.asarray(jnp.mean(w, axis=0), np.float32)
  extras = {"truncation_psi": 1.0, "truncation_layers": cfg.num_ws, "randomize_noise": False,
            "w_avg_source": w_avg_source, "source_format": NAME, "part": part}
  for k, v in (("truncation_psi", truncation_psi), ("truncation_layers", truncation_layers),
               ("randomize_noise", randomize_noise)):
    if v is not None:
      extras[k] = type(extras[k])(v)
  return Converted("stylegan2", cfg, params, extras=extras,
                   summary=f"StyleGAN2 {cfg.resolution}px (rosinality {part}), style_dim "
                           f"{cfg.w_dim}, n_mlp {cfg.mapping_layers}, channels "
                           f"{list(cfg.channels)}; w_avg from {w_avg_source}; {summarize(params)}")


def infer_discriminator_config(shapes) -> stylegan2.DiscriminatorConfig:
  blocks = sorted({int(m.group(1)) for m in map(re.compile(r"convs\.(\d+)\.conv1\.0\.weight").fullmatch,
                                                 shapes) if m})
  if "convs.0.0.weight" not in shapes or blocks != list(range(1, len(blocks) + 1)):
    raise ConversionError("d is not a rosinality Discriminator state_dict")
  size = 2 ** (len(blocks) + 2)
  chans = {size: int(shapes["convs.0.0.weight"][0])}
  for r in blocks:
    chans[size // 2 ** r] = int(shapes[f"convs.{r}.conv2.1.weight"][0])
  return stylegan2.DiscriminatorConfig(
      resolution=size, channels=tuple(chans[4 * 2 ** b] for b in range(len(blocks) + 1)),
      image_channels=int(shapes["convs.0.0.weight"][1]),
      stddev_feat=int(shapes["final_conv.0.weight"][1]) - int(shapes["final_conv.0.weight"][0]))


def _convert_discriminator(obj):
  sd = obj["d"]
  cfg = infer_discriminator_config({k: v.shape for k, v in sd.items()})
  rules = [
      Rule(r"convs\.0\.0\.weight", "convs0/conv/weight", oihw_to_hwio),
      Rule(r"convs\.0\.1\.bias", "convs0/bias"),
      Rule(r"convs\.(\d+)\.conv1\.0\.weight", r"convs\1/conv1/conv/weight", oihw_to_hwio),
      Rule(r"convs\.(\d+)\.conv1\.1\.bias", r"convs\1/conv1/bias"),
      Rule(r"convs\.(\d+)\.conv2\.1\.weight", r"convs\1/conv2/conv/weight", oihw_to_hwio),
      Rule(r"convs\.(\d+)\.conv2\.2\.bias", r"convs\1/conv2/bias"),
      Rule(r"convs\.(\d+)\.skip\.1\.weight", r"convs\1/skip/conv/weight", oihw_to_hwio),
      Rule(r"final_conv\.0\.weight", "final_conv/conv/weight", oihw_to_hwio),
      Rule(r"final_conv\.1\.bias", "final_conv/bias"),
      Rule(r"final_linear\.(\d)\.weight", r"final_linear\1/weight", linear_to_io),
      Rule(r"final_linear\.(\d)\.bias", r"final_linear\1/bias"),
  ]
  ignore = [r"convs\.\d+\.(conv2|skip)\.0\.kernel"]     # Blur buffers (fixed FIR)
  module = stylegan2.StyleGAN2Discriminator(cfg)
  want = expected_shapes(module, jnp.zeros((cfg.stddev_group, cfg.resolution, cfg.resolution,
                                            cfg.image_channels)))
  params = apply_rules(sd, rules, ignore, want, what="rosinality d")
  return Converted("stylegan2-discriminator", cfg, params, extras={"source_format": NAME},
                   summary=f"StyleGAN2 discriminator {cfg.resolution}px (rosinality d), channels "
                           f"{list(cfg.channels)}; {summarize(params)}")


def convert(obj, part: str = "g_ema", truncation_psi=None, truncation_layers=None,
            randomize_noise=None, **unused) -> Converted:
  """Converts one network of a rosinality checkpoint.

  Args:
    part: ``"g_ema"`` (default, what every repo script uses), ``"g"`` or ``"d"``.
    truncation_psi, truncation_layers, randomize_noise: override the defaults
      (ψ = 1 on all rows, stored noise) recorded in the extras.
  """
  if part not in ("g_ema", "g", "d"):
    raise ConversionError(f"part must be g_ema, g or d, got {part!r}")
  if not isinstance(obj.get(part), dict):
    raise ConversionError(f"checkpoint has no {part!r} (top-level keys: {sorted(obj)})")
  if part == "d":
    return _convert_discriminator(obj)
  return _convert_generator(obj, part, truncation_psi, truncation_layers, randomize_noise)
