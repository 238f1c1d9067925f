"""pSp / e4e checkpoints: ``{'state_dict', 'opts', 'latent_avg'}`` → family ``psp``.

``state_dict`` holds ``encoder.*`` (``GradualStyleEncoder`` or ``Encoder4Editing``, the same
keys; ``opts['encoder_type']`` tells them apart) and ``decoder.*`` (a rosinality StyleGAN2
``Generator``). Sizes come from the shapes: the style dim from ``decoder.style.1.weight``, the
mapping depth from the number of ``decoder.style.N`` layers (pSp hard-codes 512 and 8), the
number of w+ rows from the number of ``encoder.styles.N`` heads. Not in the file: the encoder
input size (the inference transform's ``Resize``, 256 in the released configs; option
``input_size``).

``latent_avg`` is kept as stored (``[L, w_dim]``; a 1-D one is repeated to L rows as pSp does
when it reads a rosinality file) and added after the encoder when ``opts.start_from_latent_avg``.
The decoder's truncation average is row 0 of it (unused by pSp, which never truncates).
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from jaxinv.converters import rosinality_stylegan2
from jaxinv.converters.base import Converted, ConversionError, expected_shapes, summarize
from jaxinv.converters.table import Rule, apply_rules, oihw_to_hwio, linear_to_io
from jaxinv.models import psp as psp_model

NAME = "psp-e4e"
DESCRIPTION = ("pSp / e4e checkpoint {'state_dict': encoder.* + decoder.*, 'opts', "
               "'latent_avg'} (omertov/encoder4editing, eladrich/pixel2style2pixel)")

DEFAULT_INPUT_SIZE = 256    # configs/transforms_config.py: Resize((256, 256))


def detect(obj) -> bool:
  if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
    return False
  sd = obj["state_dict"]
  return "opts" in obj and "encoder.input_layer.0.weight" in sd and any(
      k.startswith("encoder.styles.") for k in sd) and "decoder.input.input" in sd


def _conv_kernel(x):
  if np.ndim(x) != 4:
    raise ConversionError(f"pSp encoder: a conv weight of shape {np.shape(x)} where "
                          "[out, in, k, k] was expected (another architecture?)")
  return oihw_to_hwio(x)


_BN_OR_PRELU = r"(?:input_layer/[12]|body/\d+/res_layer/[024]|body/\d+/shortcut_layer/1)"
_ENC_RULES = [
    Rule(r"(styles/\d+/linear)/weight", r"\1/weight", linear_to_io),    # EqualLinear [out, in]
    Rule(r"(styles/\d+/linear)/bias", r"\1/bias"),
    Rule(rf"({_BN_OR_PRELU})/(weight|bias|running_mean|running_var)", r"\1/\2"),
    Rule(r"(.*)/weight", r"\1/weight", _conv_kernel),                   # convs, SE fc
    Rule(r"(.*)/bias", r"\1/bias"),                                     # conv biases
]
_ENC_IGNORE = [r".*/num_batches_tracked"]   # BN bookkeeping, unused at inference


def _split(sd, prefix):
  n = len(prefix) + 1
  return {k[n:]: np.asarray(v) for k, v in sd.items() if k.startswith(prefix + ".")}


def convert(obj, input_size: int = DEFAULT_INPUT_SIZE, encoder_type: str | None = None,
            **unused) -> Converted:
  """Converts the encoder, the decoder and ``latent_avg`` of a pSp/e4e checkpoint.

  Args:
    input_size: the encoder's input resolution (the inference transform's resize).
    encoder_type: overrides ``opts['encoder_type']``.
  """
  sd = obj["state_dict"]
  opts = obj.get("opts") or {}
  if not isinstance(opts, dict):
    opts = dict(getattr(opts, "__dict__", {}))
  other = sorted({k.split(".")[0] for k in sd} - {"encoder", "decoder"})
  if other:
    raise ConversionError(f"pSp checkpoint: unexpected state_dict parts {other}")
  etype = encoder_type or opts.get("encoder_type")
  if etype not in psp_model.ENCODER_TYPES:
    raise ConversionError(f"pSp checkpoint: encoder_type {etype!r} is not supported (supported: "
                          f"{', '.join(psp_model.ENCODER_TYPES)}); pass --option "
                          "encoder_type=NAME if opts lacks it")
  enc_sd, dec_sd = _split(sd, "encoder"), _split(sd, "decoder")
  try:
    ecfg = psp_model.infer_encoder_config({k: np.shape(v) for k, v in enc_sd.items()}, etype,
                                          input_size=int(input_size))
  except (KeyError, ValueError) as e:
    raise ConversionError(f"pSp encoder: {e}") from None
  if "latent_avg" not in obj or obj["latent_avg"] is None:
    raise ConversionError("pSp checkpoint has no latent_avg (the codes are offsets from it)")
  latent_avg = np.asarray(obj["latent_avg"], np.float32)
  if latent_avg.ndim == 1:
    latent_avg = np.tile(latent_avg[None], (ecfg.style_count, 1))
  if latent_avg.shape != (ecfg.style_count, ecfg.w_dim):
    raise ConversionError(f"pSp checkpoint: latent_avg {latent_avg.shape} does not match "
                          f"{ecfg.style_count} style heads of width {ecfg.w_dim}")
  dec = rosinality_stylegan2.convert({"g_ema": dec_sd, "latent_avg": latent_avg[0]})
  cfg = psp_model.PSPConfig(encoder=ecfg, decoder=dec.config,
                            start_from_latent_avg=bool(opts.get("start_from_latent_avg", True)))
  flat = {k.replace(".", "/"): v for k, v in enc_sd.items()}
  enc_module = psp_model.PSPEncoder(ecfg)
  want = expected_shapes(enc_module, jnp.zeros((1, ecfg.input_size, ecfg.input_size,
                                                ecfg.image_channels)))
  enc_params = apply_rules(flat, _ENC_RULES, _ENC_IGNORE, want, what="pSp encoder")
  params = {"encoder": enc_params, "decoder": dec.params, "latent_avg": latent_avg}
  return Converted("psp", cfg, params,
                   extras={"noise_mode": "const", "source_format": NAME,
                           "opts_encoder_type": etype},
                   summary=f"{etype} ({ecfg.input_size}px input, {ecfg.style_count} w+ rows of "
                           f"{ecfg.w_dim}) + StyleGAN2 decoder {dec.config.resolution}px; "
                           f"start_from_latent_avg {cfg.start_from_latent_avg}; "
                           f"{summarize(params)}")
