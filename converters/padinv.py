"""PadInv (Hammer) checkpoints: the StyleGAN2 generator and the PadInv encoder.

Two formats, both Hammer runner dicts ``{"models": {...}, "model_kwargs_init": {...}, ...}``
(a bare ``{"generator": sd, ...}`` models dict is accepted too):

* ``padinv-generator`` (``gan_checkpoint.pth``): ``models.generator_smooth`` (the EMA
  weights, what the PadInv runner loads; ``models.generator`` when there is no smooth
  entry) → family ``padinv-stylegan2``. ``w_avg`` is taken from ``models.generator`` (the
  non-EMA entry), as the runner does. With ``part=discriminator`` the same file's
  ``models.discriminator`` → family ``padinv-discriminator`` (the adversarial loss).
* ``padinv-encoder`` (a runner ``save()`` with ``models.encoder``) → family
  ``padinv-encoder``. Its ``avg_latent`` (added to the latent heads' residual) is not in
  the encoder state dict: it comes from ``gan_checkpoint=PATH`` (``models.generator.w_avg``)
  when given, else from the encoder file's own ``models.generator.w_avg``.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, oihw_to_hwio, linear_to_io
from jaxinv.models import padinv as padinv_model

__all__ = ["GENERATOR", "ENCODER", "convert_generator_state", "convert_encoder_state",
           "convert_discriminator", "models_of"]


def models_of(obj) -> dict | None:
  """The Hammer ``models`` dict of a runner checkpoint (or of a bare models dict)."""
  if not isinstance(obj, dict):
    return None
  models = obj.get("models", obj)
  if not isinstance(models, dict):
    return None
  out = {k: v for k, v in models.items() if state_dict_of(v) is not None}
  return out or None


def _is_hammer_stylegan2(sd) -> bool:
  return bool(sd) and "w_avg" in sd and "synthesis.early_layer.const" in sd and \
      "mapping.dense0.weight" in sd and any(k.startswith("synthesis.output") for k in sd)


def _nchw_to_nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


def _gen_rules():
  return [
      Rule(r"w_avg", "w_avg"),
      Rule(r"mapping\.dense(\d+)\.weight", r"mapping/dense\1/weight", linear_to_io),
      Rule(r"mapping\.dense(\d+)\.bias", r"mapping/dense\1/bias"),
      Rule(r"synthesis\.early_layer\.const", "synthesis/early_layer/const", _nchw_to_nhwc),
      Rule(r"synthesis\.filter", "synthesis/filter"),
      Rule(r"synthesis\.(layer|output)(\d+)\.weight", r"synthesis/\1\2/weight", oihw_to_hwio),
      Rule(r"synthesis\.(layer|output)(\d+)\.bias", r"synthesis/\1\2/bias"),
      Rule(r"synthesis\.(layer|output)(\d+)\.style\.weight", r"synthesis/\1\2/style/weight",
           linear_to_io),
      Rule(r"synthesis\.(layer|output)(\d+)\.style\.bias", r"synthesis/\1\2/style/bias"),
      Rule(r"synthesis\.layer(\d+)\.noise_strength", r"synthesis/layer\1/noise_strength",
           lambda x: np.reshape(x, ())),
      Rule(r"synthesis\.layer(\d+)\.noise", r"synthesis/layer\1/noise", _nchw_to_nhwc),
      Rule(r"synthesis\.layer(\d+)\.filter", r"synthesis/layer\1/filter"),
  ]


def convert_generator_state(sd, w_avg=None, **overrides):
  """A Hammer StyleGAN2 state_dict → ``(config, params)``; ``w_avg`` replaces the stored one."""
  try:
    cfg = padinv_model.infer_config({k: np.shape(v) for k, v in sd.items()}, **overrides)
  except (ValueError, KeyError) as e:
    raise ConversionError(f"Hammer StyleGAN2 checkpoint: {e}") from None
  if w_avg is not None:
    sd = dict(sd, w_avg=w_avg)
  module = padinv_model.PadInvGenerator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.z_dim)))
  params = apply_rules(sd, _gen_rules(), (), want, what="Hammer StyleGAN2 checkpoint")
  return cfg, params


class _Generator:
  NAME = "padinv-generator"
  DESCRIPTION = ("PadInv/Hammer pretrained-GAN checkpoint (models.generator_smooth / generator: "
                 "StyleGAN2GeneratorPadInv, mapping.dense*, synthesis.layer*, w_avg)")

  @staticmethod
  def detect(obj) -> bool:
    models = models_of(obj)
    if not models or "encoder" in models:
      return False
    return any(_is_hammer_stylegan2(models.get(k)) for k in ("generator_smooth", "generator"))

  @staticmethod
  def convert(obj, use_smooth: bool = True, part: str = "generator", **unused) -> Converted:
    models = models_of(obj)
    if part == "discriminator":
      return convert_discriminator(obj)
    if part != "generator":
      raise ConversionError(f"part must be generator or discriminator, got {part!r}")
    name = "generator_smooth" if use_smooth and "generator_smooth" in models else "generator"
    sd = models[name]
    w_avg = models.get("generator", sd)["w_avg"]
    overrides = {}
    kw = (obj.get("model_kwargs_init") or {}).get(name) if isinstance(obj, dict) else None
    if isinstance(kw, dict) and "mapping_lr_mul" in kw:
      overrides["mapping_lr_mul"] = float(kw["mapping_lr_mul"])
    cfg, params = convert_generator_state(sd, w_avg=w_avg, **overrides)
    return Converted("padinv-stylegan2", cfg, params,
                     extras={"noise_mode": "const", "weights": f"models.{name}",
                             "w_avg": "models.generator.w_avg"},
                     summary=f"Hammer StyleGAN2 {cfg.resolution}px (models.{name}), w_dim "
                             f"{cfg.w_dim}, {cfg.num_ws} w rows, mapping lr_mul "
                             f"{cfg.mapping_lr_mul}; {summarize(params)}")


GENERATOR = _Generator


def _d_weight(x):
  return oihw_to_hwio(x) if np.ndim(x) == 4 else linear_to_io(x)


_D_RULES = [
    Rule(r"(input|layer|residual)(\d+)\.weight", r"\1\2/weight", _d_weight),
    Rule(r"output\.weight", "output/weight", linear_to_io),
    Rule(r"(input|layer|residual)(\d+)\.(bias|filter)", r"\1\2/\3"),
    Rule(r"output\.bias", "output/bias"),
]


def convert_discriminator(obj) -> Converted:
  """``models.discriminator`` of a Hammer GAN checkpoint → family ``padinv-discriminator``."""
  from jaxinv.models import padinv_discriminator as D
  models = models_of(obj) or {}
  sd = models.get("discriminator")
  if sd is None:
    raise ConversionError("no models.discriminator in this checkpoint")
  kw = (obj.get("model_kwargs_init") or {}).get("discriminator", {}) if isinstance(obj, dict) \
      else {}
  over = {"mbstd_groups": int(kw["mbstd_groups"])} if "mbstd_groups" in kw else {}
  if kw.get("architecture", "resnet") != "resnet":
    raise ConversionError(f"only the resnet discriminator is supported, not {kw['architecture']}")
  try:
    cfg = D.infer_config({k: np.shape(v) for k, v in sd.items()}, **over)
  except (KeyError, ValueError) as e:
    raise ConversionError(f"Hammer StyleGAN2 discriminator: {e}") from None
  module = D.PadInvDiscriminator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.resolution, cfg.resolution,
                                            cfg.image_channels)))
  params = apply_rules(sd, _D_RULES, (), want, what="Hammer StyleGAN2 discriminator")
  return Converted("padinv-discriminator", cfg, params, extras={},
                   summary=f"Hammer StyleGAN2 resnet discriminator {cfg.resolution}px, mbstd group "
                           f"{cfg.mbstd_groups}; {summarize(params)}")


# Keys are matched with "/" for "." (the target tree mirrors the PyTorch module path).
_BN_OR_PRELU = r"(?:input_layer/[12]|.*res_layer/[024]|.*shortcut_layer/1)"
def _conv_kernel(x):
  if np.ndim(x) != 4:
    raise ConversionError(f"PadInv encoder checkpoint: a conv weight of shape {np.shape(x)} "
                          "where [out, in, k, k] was expected (another architecture?)")
  return oihw_to_hwio(x)


_ENC_RULES = [
    Rule(r"avg_latent", "avg_latent"),
    Rule(r"(latent_heads/\d+/linear)/weight", r"\1/weight", linear_to_io),   # EqualLinear [out, in]
    Rule(r"(latent_heads/\d+/linear)/bias", r"\1/bias"),
    Rule(rf"({_BN_OR_PRELU})/(weight|bias|running_mean|running_var)", r"\1/\2"),
    Rule(r"(.*)/weight", r"\1/weight", _conv_kernel),                       # every conv, SE fc
    Rule(r"(.*)/bias", r"\1/bias"),                                         # conv biases
]
_ENC_IGNORE = [r".*/num_batches_tracked"]   # BN bookkeeping, unused in inference


def convert_encoder_state(sd, avg_latent, **overrides):
  """A PadInv encoder state_dict (+ ``avg_latent [w_dim]``) → ``(config, params)``."""
  from jaxinv.models import irse
  try:
    cfg = irse.infer_config({k: np.shape(v) for k, v in sd.items()}, **overrides)
  except (ValueError, KeyError, NotImplementedError) as e:
    raise ConversionError(f"PadInv encoder checkpoint: {e}") from None
  flat = {k.replace(".", "/"): v for k, v in sd.items()}
  flat["avg_latent"] = np.asarray(avg_latent)
  module = irse.PadInvEncoder(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.resolution, cfg.resolution,
                                            cfg.image_channels)))
  params = apply_rules(flat, _ENC_RULES, _ENC_IGNORE, want, what="PadInv encoder checkpoint")
  return cfg, params


_ENC_KWARGS = ("resolution", "image_channels", "se_reduction", "pad_layer_num",
               "depth_padding_extractor", "use_padding_modulation_head", "encode_const_input",
               "only_pad_even", "start_from_latent_avg")


class _Encoder:
  NAME = "padinv-encoder"
  DESCRIPTION = ("PadInv encoder checkpoint (runner save: models.encoder with input_layer.*, "
                 "backbone_stages.*, latent_heads.*, padding_extractor.*)")

  @staticmethod
  def detect(obj) -> bool:
    models = models_of(obj)
    sd = (models or {}).get("encoder")
    return bool(sd) and "input_layer.0.weight" in sd and any(
        k.startswith("latent_heads.") for k in sd)

  @staticmethod
  def convert(obj, gan_checkpoint=None, feature_idx: int = 1, **unused) -> Converted:
    models = models_of(obj)
    sd = models["encoder"]
    if gan_checkpoint is not None:
      from jaxinv.io import torch_pickle
      gan_models = models_of(torch_pickle.load(gan_checkpoint)) or {}
      src = gan_models.get("generator")
      where = f"{gan_checkpoint}: models.generator.w_avg"
    else:
      src = models.get("generator")
      where = "models.generator.w_avg of the encoder file"
    if src is None or "w_avg" not in src:
      raise ConversionError("PadInv encoder: no w_avg found (the encoder adds the generator's "
                            "average w); pass gan_checkpoint=PATH to the generator checkpoint")
    kw = (obj.get("model_kwargs_init") or {}).get("encoder", {}) if isinstance(obj, dict) else {}
    overrides = {k: kw[k] for k in _ENC_KWARGS if k in kw}
    overrides["feature_idx"] = feature_idx
    cfg, params = convert_encoder_state(sd, src["w_avg"], **overrides)
    return Converted("padinv-encoder", cfg, params, extras={"avg_latent": where},
                     summary=f"PadInv encoder {cfg.resolution}px input, {cfg.num_latents} w+ rows "
                             f"of {cfg.w_dim}, padding slots {list(cfg.slots)} ({cfg.map_size}px "
                             f"maps); avg_latent from {where}; {summarize(params)}")


ENCODER = _Encoder
