"""The three file kinds of the IDInvert release (genforce/idinvert_pytorch), all bare state_dicts.

* ``styleganinv_*_encoder.pth`` → family ``idinvert-encoder`` (format ``idinvert-encoder``)
* ``vgg16.pth`` (Keras-convention VGG16, keys ``layer{i}.*``) → ``keras-vgg16``
  (format ``idinvert-vgg16``)
* ``styleganinv_*_generator.pth`` (genforce StyleGAN v1 with ``repeat_w=False`` and a
  final tanh; it stores ``truncation.truncation``) → the StyleGAN family with those
  options (format ``idinvert-generator``)

Each kind is a format object with ``NAME``, ``DESCRIPTION``, ``detect`` and ``convert``;
:data:`KINDS` lists them for :data:`converters.FORMATS`. Architectures come from shapes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import jax.numpy as jnp

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.models import idinvert_encoder, keras_vgg, vgg

__all__ = ["ENCODER", "PERCEPTUAL", "KINDS", "convert_encoder", "convert_vgg"]


@dataclasses.dataclass(frozen=True)
class _Format:
  NAME: str
  DESCRIPTION: str
  detect: Callable
  convert: Callable


# --- encoder -------------------------------------------------------------------------------

def _detect_encoder(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and "block0.conv.weight" in sd and "block0.bn.bn.running_mean" in sd \
      and any(k.endswith(".fc.weight") for k in sd)


ENCODER_RULES = [
    Rule(r"(block\d+)\.(conv[12]?)\.weight", r"\1/\2/weight", oihw_to_hwio),
    Rule(r"(block\d+)\.(wscale[12])\.bias", r"\1/\2/bias"),
    Rule(r"(block\d+)\.(bn[12]?)\.bn\.(weight|bias|running_mean|running_var)", r"\1/\2/\3"),
    Rule(r"(block\d+)\.fc\.weight", r"\1/fc/weight", linear_to_io),
]
# The step counter of torch's BatchNorm has no effect at inference.
ENCODER_IGNORE = [r"block\d+\.bn[12]?\.bn\.num_batches_tracked"]


def convert_encoder(obj, num_layers: int | None = None, **unused) -> Converted:
  """Converts a ``StyleGANEncoderNet(use_bn=True)`` state_dict.

  Args:
    num_layers: the w+ layers L of the matching generator (only ``L * w_dim`` is
      stored); default ``2 * log2(R) - 2``, genforce's StyleGAN rule (14 at 256 px).
  """
  sd = state_dict_of(obj)
  try:
    cfg = idinvert_encoder.infer_config({k: tuple(v.shape) for k, v in sd.items()},
                                        num_layers=num_layers)
  except (ValueError, KeyError) as e:
    raise ConversionError(f"IDInvert encoder checkpoint: {e}") from None
  module = idinvert_encoder.IDInvertEncoder(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.resolution, cfg.resolution,
                                            cfg.image_channels)))
  params = apply_rules(sd, ENCODER_RULES, ENCODER_IGNORE, want, what="IDInvert encoder checkpoint")
  return Converted("idinvert-encoder", cfg, params, extras={},
                   summary=f"IDInvert encoder {cfg.resolution}px → w+ [{cfg.num_layers}, "
                           f"{cfg.w_dim}], channels {cfg.channels_base}..{cfg.channels_max}; "
                           f"{summarize(params)}")


ENCODER = _Format("idinvert-encoder",
                  "IDInvert StyleGANEncoderNet state_dict (block{i}.conv*/bn*.bn.*, block{n}.fc)",
                  _detect_encoder, convert_encoder)


# --- perceptual model ------------------------------------------------------------------------

def _detect_vgg(obj) -> bool:
  sd = state_dict_of(obj)
  if not sd or "layer0.weight" not in sd or tuple(sd["layer0.weight"].shape) != (64, 3, 3, 3):
    return False
  return all(re.fullmatch(r"layer\d+\.(weight|bias)", k) for k in sd)


def convert_vgg(obj, output_layer_idx: int = 23, **unused) -> Converted:
  """Converts IDInvert's ``vgg16.pth``, keeping modules ``0 .. output_layer_idx - 1``.

  Args:
    output_layer_idx: the official ``PerceptualModel`` argument (23 = up to relu4_3);
      the stored layers past it are dropped.
  """
  sd = state_dict_of(obj)
  idx = sorted(int(k[5:].split(".")[0]) for k in sd if k.endswith(".weight"))
  convs = vgg.conv_indices(len(vgg.VGG16_MODULES))
  if idx != convs[:len(idx)]:
    raise ConversionError(f"Keras VGG16 checkpoint: conv indices {idx} are not VGG16's {convs}")
  if not 1 <= output_layer_idx <= min(idx[-1] + 2, len(vgg.VGG16_MODULES)):
    raise ConversionError(f"output_layer_idx {output_layer_idx} is past the stored layers "
                          f"(last conv: {idx[-1]})")
  keep = [i for i in idx if i < output_layer_idx]
  keep_rx = "|".join(map(str, keep))
  rules = [Rule(rf"layer({keep_rx})\.weight", r"layer\1/weight", oihw_to_hwio),
           Rule(rf"layer({keep_rx})\.bias", r"layer\1/bias")]
  ignore = [rf"layer{i}\.(weight|bias)" for i in idx if i >= output_layer_idx]
  module = keras_vgg.KerasVGG16(output_layer_idx)
  want = expected_shapes(module, jnp.zeros((1, 32, 32, 3)))
  params = apply_rules(sd, rules, ignore, want, what="Keras VGG16 checkpoint")
  return Converted("keras-vgg16", {"num_modules": output_layer_idx}, params,
                   summary=f"Keras-convention VGG16, modules 0..{output_layer_idx - 1} "
                           f"({len(keep)} convs, {len(idx) - len(keep)} dropped); "
                           f"{summarize(params)}")


PERCEPTUAL = _Format("idinvert-vgg16",
                     "IDInvert perceptual VGG16 state_dict (Keras weights; layer{i}.weight/bias)",
                     _detect_vgg, convert_vgg)

KINDS = (ENCODER, PERCEPTUAL)
