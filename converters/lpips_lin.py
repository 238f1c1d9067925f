"""LPIPS v0.1: the lpips package's linear-layer file (``lin{k}.model.1.weight``) plus a backbone.

Two sources are accepted:

* the lin file of the lpips wheel (``lpips/weights/v0.1/{alex,vgg}.pth``) with option
  ``backbone=PATH`` naming the torchvision backbone: a ``vgg16`` / ``alexnet`` state_dict file
  (``features.{i}.*``, optionally ``.xz``) or a model directory converted from one;
* a whole ``lpips.LPIPS`` state_dict (``net.slice{K}.{i}.*`` + ``lin{k}.*``, the ``lins.{k}``
  aliases and ``scaling_layer`` buffers are checked and dropped), needing no option.

The net (alex / vgg) is inferred from the lin channel counts.
"""

from __future__ import annotations

import os
import re

import numpy as np

from jaxinv.converters.base import Converted, ConversionError, expected_shapes, state_dict_of, summarize
from jaxinv.converters.table import Rule, apply_rules, flatten_paths, oihw_to_hwio
from jaxinv.models import lpips

NAME = "lpips"
DESCRIPTION = ("lpips v0.1 lin layers (lin{k}.model.1.weight; needs --option backbone=PATH) "
               "or a whole lpips.LPIPS state_dict")

_LIN = re.compile(r"lin(\d)\.model\.1\.weight")


def detect(obj) -> bool:
  sd = state_dict_of(obj)
  return bool(sd) and any(_LIN.fullmatch(k) for k in sd) and all(
      _LIN.fullmatch(k) or k.startswith(("net.slice", "lins.", "scaling_layer.")) for k in sd)


def _net_of(sd) -> str:
  chans = tuple(int(sd[f"lin{k}.model.1.weight"].shape[1]) if f"lin{k}.model.1.weight" in sd else -1
                for k in range(5))
  for net, (_, _, want) in lpips.NETS.items():
    if chans == tuple(want):
      return net
  raise ConversionError(f"LPIPS lin layers have channels {chans}; expected "
                        + " or ".join(f"{n} {tuple(v[2])}" for n, v in lpips.NETS.items()))


def _backbone_state(backbone, net: str) -> dict:
  """``features.{i}.*`` arrays (OIHW) from a backbone file or a converted model directory."""
  if backbone is None:
    raise ConversionError(f"this is an LPIPS lin-layer file ({net}); name the torchvision {net} "
                          "backbone with --option backbone=PATH (a features state_dict file or a "
                          "converted model directory)")
  path = os.fspath(backbone)
  if os.path.isdir(path):
    from jaxinv.io import checkpoints
    meta, params = checkpoints.load_model_dir(path)
    fam = {"alex": "alexnet", "vgg": "vgg16"}[net]
    if meta["family"] != fam:
      raise ConversionError(f"backbone {path} is a {meta['family']} model; LPIPS-{net} needs {fam}")
    flat = flatten_paths(params)
    out = {}
    for k, v in flat.items():
      m = re.fullmatch(r"features/(\d+)/(weight|bias)", k)
      if m:
        v = np.asarray(v)
        out[f"features.{m.group(1)}.{m.group(2)}"] = np.transpose(v, (3, 2, 0, 1)) if v.ndim == 4 else v
    return out
  from jaxinv.io import torch_pickle
  obj = torch_pickle.load(path)
  sd = state_dict_of(obj)
  if sd is None:
    raise ConversionError(f"backbone {path}: not a flat state_dict")
  if not any(k.startswith("features.") for k in sd):  # a bare `.features` state_dict: "0.weight"
    sd = {f"features.{k}": v for k, v in sd.items()}
  return {k: v for k, v in sd.items() if not k.startswith("classifier.")}


def convert(obj, backbone=None, **unused) -> Converted:
  sd = dict(state_dict_of(obj))
  net = _net_of(sd)
  if any(k.startswith("net.slice") for k in sd):
    for k in [k for k in sd if k.startswith("lins.")]:
      twin = "lin" + k[len("lins."):]
      if twin not in sd or not np.array_equal(sd[twin], sd[k]):
        raise ConversionError(f"LPIPS state_dict: {k} differs from {twin}")
    for name, want in (("scaling_layer.shift", lpips.SHIFT), ("scaling_layer.scale", lpips.SCALE)):
      if name in sd and not np.allclose(np.ravel(sd[name]), want, atol=1e-6):
        raise ConversionError(f"LPIPS state_dict: {name} = {np.ravel(sd[name])}, not v0.1's {want}")
    src = {re.sub(r"^net\.slice\d\.", "net.features.", k) if k.startswith("net.") else k: v
           for k, v in sd.items() if not k.startswith(("lins.", "scaling_layer."))}
  else:
    src = dict(sd)
    src.update({f"net.{k}": v for k, v in _backbone_state(backbone, net).items()})
  rules = [Rule(r"net\.features\.(\d+)\.weight", r"net/features/\1/weight", oihw_to_hwio),
           Rule(r"net\.features\.(\d+)\.bias", r"net/features/\1/bias"),
           Rule(r"lin(\d)\.model\.1\.weight", r"lin\1/weight", lambda w: np.reshape(w, (-1,)))]
  module = lpips.LPIPS(net)
  want = expected_shapes(module, np.zeros((1, 64, 64, 3), np.float32), np.zeros((1, 64, 64, 3), np.float32))
  params = apply_rules(src, rules, [], want, what=f"LPIPS-{net} checkpoint")
  return Converted("lpips", {"net": net, "version": "0.1"}, params,
                   summary=f"LPIPS v0.1 {net}; {summarize(params)}")
