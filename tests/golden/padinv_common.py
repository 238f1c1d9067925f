"""Shared loading for the PadInv golden tests (fixture folder ``padinv``).

Everything (checkpoint names, slots, image index, optimisation settings) is read from the
folder's ``expected.json`` / ``config.json``; checkpoints are recognised by auto-detection.
"""

from __future__ import annotations

import functools
import json

import numpy as np

from jaxinv import converters
from jaxinv.io import torch_pickle

FOLDER = "padinv"


def nhwc(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x


def nchw(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


# README (tolerance guidance): the reference itself moves by up to ~1e-5 under harmless changes of
# summation order, and float64 - float32 drift after 5 Adam steps is ~1e-6 (images 2.4e-6); its
# bounds, 10x the summation-order floor: atol 1e-4 + rtol 1e-4 for activations, images, encoder
# outputs and losses; atol 2e-4 for padding maps (|x| ~ 15 after ~30 residual blocks); atol 1e-4 for
# final w+/maps. Measured here (default, AVX, SSE4_2): <= 0.063 of every bound.
ATOL = 1e-4
RTOL = 1e-4
MAP_ATOL = 2e-4


def image_atol(expected, scale=ATOL):
  """Images: ``ATOL x max(1, range)`` (random-weight images span up to ~7, beyond [-1, 1])."""
  e = np.asarray(expected)
  return scale * max(1.0, float(e.max() - e.min()))


@functools.lru_cache(maxsize=None)
def _checkpoints(root):
  exp = json.loads((root / "expected.json").read_text())
  found = {}
  for name in exp["checkpoint_keys"]:
    obj = torch_pickle.load(root / name)
    fmt = [n for n, m in converters.FORMATS.items() if m.detect(obj)]
    if fmt in (["padinv-generator"], ["padinv-encoder"]):
      found[fmt[0]] = (name, obj)
  return found


def load(g):
  """``(config.json dict, generator Converted, encoder Converted)`` of the fixture folder."""
  cfg = json.loads(g.path("config.json").read_text())
  ck = _checkpoints(g.dir)
  assert set(ck) == {"padinv-generator", "padinv-encoder"}, f"found {sorted(ck)}"
  gen_name, gen_obj = ck["padinv-generator"]
  enc_name, enc_obj = ck["padinv-encoder"]
  gen = converters.FORMATS["padinv-generator"].convert(gen_obj)
  enc = converters.FORMATS["padinv-encoder"].convert(
      enc_obj, gan_checkpoint=g.path(gen_name),
      feature_idx=cfg.get("encoder_forward_kwargs", {}).get("feature_idx", 1))
  return cfg, gen, enc


def load_discriminator(g):
  """The Hammer resnet discriminator of the generator checkpoint (``part=discriminator``)."""
  name, obj = _checkpoints(g.dir)["padinv-generator"]
  return converters.FORMATS["padinv-generator"].convert(obj, part="discriminator")


def slots_of(cfg):
  return tuple(int(s["slot"]) for s in cfg["padding_slots"])


def lpips_alex(g):
  """``(fn, params)``: the library's AlexNet LPIPS with the folder's random weights.

  ``fn(params, x, y) -> [B]`` on NHWC images in [-1, 1]; the lin-layer and backbone files are
  the folder's checkpoints that the ``lpips`` / ``torchvision-alexnet`` formats recognise.
  """
  from jaxinv.models import lpips
  exp = json.loads((g.dir / "expected.json").read_text())
  lin = backbone = None
  for name in exp["checkpoint_keys"]:
    obj = torch_pickle.load(g.path(name))
    if converters.FORMATS["lpips"].detect(obj):
      lin = (name, obj)
    elif converters.FORMATS["torchvision-alexnet"].detect(obj):
      backbone = name
  assert lin and backbone, "LPIPS lin/backbone files not found among the checkpoints"
  conv = converters.FORMATS["lpips"].convert(lin[1], backbone=g.path(backbone))
  net = conv.config["net"]
  return (lambda p, x, y: lpips.lpips_distance(p, x, y, net=net)), conv.params


def used_region(cfg, slot):
  """``[S, S]`` bool: the raw-map entries the generator reads for ``slot`` (config.json
  padding_slots: the centre crop for the constant input, its 1-pixel ring for a conv layer)."""
  spec = next(s for s in cfg["padding_slots"] if int(s["slot"]) == slot)
  size, crop, o = spec["raw_map"], spec["crop"], spec["crop_offset"]
  used = np.zeros((size, size), bool)
  used[o:o + crop, o:o + crop] = True
  if spec["layer"] is not None:
    used[o + 1:o + crop - 1, o + 1:o + crop - 1] = False
  return used
