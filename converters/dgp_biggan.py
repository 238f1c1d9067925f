"""DGP / BigGAN-PyTorch checkpoints: ``G_ema_*.pth``, ``G_*.pth``, a fine-tuned ``G.state_dict()``
(DGP's ``--save_G``) and ``D_*.pth``, each a plain state_dict.

One format, two families: a generator state_dict (``shared.weight``, ``blocks.N.0.bn1.*``)
becomes ``biggan``, a discriminator state_dict (``embed.weight``) becomes ``biggan_d``. The
architecture (resolution, widths, dim_z, classes, attention) is inferred from shapes.

Dropped on purpose: every ``sv0`` (a training log of sigma, not what the eval forward
divides by; see :func:`jaxinv.models.biggan.sn_sigma`) and DGP's instance-norm affine
``blocks.N.0.in{1,2}.*`` (present only in DGP's own saves; recomputed by the first
``use_in`` forward, so their stored values never matter).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, linear_to_io, oihw_to_hwio
from jaxinv.models import biggan

NAME = "dgp-biggan"
DESCRIPTION = ("DGP / BigGAN-PyTorch G (shared.weight, blocks.N.0.bn1.*) or D (embed.weight) "
               "state_dict")


def _flat(x):
  return np.reshape(x, (-1,))


def _is_g(sd) -> bool:
  return "shared.weight" in sd and "blocks.0.0.bn1.gain.weight" in sd


def _is_d(sd) -> bool:
  return "embed.weight" in sd and "linear.weight" in sd and "blocks.0.0.conv1.weight" in sd \
      and "shared.weight" not in sd


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and (_is_g(sd) or _is_d(sd))


G_RULES = [
    Rule(r"shared\.weight", "shared/weight"),
    Rule(r"linear\.weight", "linear/weight", linear_to_io),
    Rule(r"linear\.bias", "linear/bias"),
    Rule(r"linear\.u0", "linear/u0", _flat),
    Rule(r"blocks\.(\d+)\.0\.(conv1|conv2|conv_sc)\.weight", r"blocks_\1_0/\2/weight", oihw_to_hwio),
    Rule(r"blocks\.(\d+)\.0\.(conv1|conv2|conv_sc)\.bias", r"blocks_\1_0/\2/bias"),
    Rule(r"blocks\.(\d+)\.0\.(conv1|conv2|conv_sc)\.u0", r"blocks_\1_0/\2/u0", _flat),
    Rule(r"blocks\.(\d+)\.0\.(bn[12])\.(gain|bias)\.weight", r"blocks_\1_0/\2/\3/weight",
         linear_to_io),
    Rule(r"blocks\.(\d+)\.0\.(bn[12])\.(gain|bias)\.u0", r"blocks_\1_0/\2/\3/u0", _flat),
    Rule(r"blocks\.(\d+)\.0\.(bn[12])\.(stored_mean|stored_var)", r"blocks_\1_0/\2/\3"),
    Rule(r"blocks\.(\d+)\.1\.(theta|phi|g|o)\.weight", r"blocks_\1_1/\2/weight", oihw_to_hwio),
    Rule(r"blocks\.(\d+)\.1\.(theta|phi|g|o)\.u0", r"blocks_\1_1/\2/u0", _flat),
    Rule(r"blocks\.(\d+)\.1\.gamma", r"blocks_\1_1/gamma"),
    Rule(r"output_layer\.0\.(gain|bias|stored_mean|stored_var)", r"output_layer_0/\1"),
    Rule(r"output_layer\.2\.weight", "output_layer_2/weight", oihw_to_hwio),
    Rule(r"output_layer\.2\.(bias)", r"output_layer_2/\1"),
    Rule(r"output_layer\.2\.u0", "output_layer_2/u0", _flat),
]
G_IGNORE = [r".*\.sv0", r"blocks\.\d+\.0\.in[12]\.(weight|bias)"]

D_RULES = [
    Rule(r"blocks\.(\d+)\.0\.(conv1|conv2|conv_sc)\.weight", r"blocks_\1_0/\2/weight", oihw_to_hwio),
    Rule(r"blocks\.(\d+)\.0\.(conv1|conv2|conv_sc)\.bias", r"blocks_\1_0/\2/bias"),
    Rule(r"blocks\.(\d+)\.0\.(conv1|conv2|conv_sc)\.u0", r"blocks_\1_0/\2/u0", _flat),
    Rule(r"blocks\.(\d+)\.1\.(theta|phi|g|o)\.weight", r"blocks_\1_1/\2/weight", oihw_to_hwio),
    Rule(r"blocks\.(\d+)\.1\.(theta|phi|g|o)\.u0", r"blocks_\1_1/\2/u0", _flat),
    Rule(r"blocks\.(\d+)\.1\.gamma", r"blocks_\1_1/gamma"),
    Rule(r"linear\.weight", "linear/weight", linear_to_io),
    Rule(r"linear\.bias", "linear/bias"),
    Rule(r"linear\.u0", "linear/u0", _flat),
    Rule(r"embed\.weight", "embed/weight"),
    Rule(r"embed\.u0", "embed/u0", _flat),
]
D_IGNORE = [r".*\.sv0"]


def convert(obj, **unused) -> Converted:
  sd = state_dict_of(obj)
  shapes = {k: v.shape for k, v in sd.items()}
  if _is_g(sd):
    try:
      cfg = biggan.infer_config(shapes)
    except (ValueError, KeyError) as e:
      raise ConversionError(f"BigGAN generator checkpoint: {e}") from None
    module = biggan.BigGANGenerator(cfg)
    want = expected_shapes(module, jnp.zeros((1, cfg.dim_z)), jnp.zeros((1, cfg.shared_dim)))
    params = apply_rules(sd, G_RULES, G_IGNORE, want, what="BigGAN generator checkpoint")
    has_in = any(".in1." in k for k in sd)
    return Converted("biggan", cfg, params, extras={"dgp_full_state_dict": has_in},
                     summary=f"BigGAN G {cfg.resolution}px, widths {list(cfg.in_channels)}->"
                             f"{cfg.out_channels[-1]}, dim_z {cfg.dim_z} ({cfg.num_slots} x "
                             f"{cfg.z_chunk}), {cfg.n_classes} classes, attention at "
                             f"{list(cfg.attention)}; {summarize(params)}")
  try:
    cfg = biggan.infer_discriminator_config(shapes)
  except (ValueError, KeyError) as e:
    raise ConversionError(f"BigGAN discriminator checkpoint: {e}") from None
  module = biggan.BigGANDiscriminator(cfg)
  want = expected_shapes(module, jnp.zeros((1, cfg.resolution, cfg.resolution, 3)))
  params = apply_rules(sd, D_RULES, D_IGNORE, want, what="BigGAN discriminator checkpoint")
  return Converted("biggan_d", cfg, params, extras={},
                   summary=f"BigGAN D {cfg.resolution}px, widths {list(cfg.out_channels)}, "
                           f"{cfg.n_classes} classes, attention at {list(cfg.attention)}; "
                           f"{summarize(params)}")
