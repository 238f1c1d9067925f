"""Shared loading for the PadInv golden tests (fixture folder ``padinv``).

Everything (checkpoint names, slots, image index, optimisation settings) is read from the
folder's ``expected.json`` / ``config.json``; checkpoints are recognised by auto-detection.
"""

from __future__ import annotations

import functools
import json

import numpy as np

import converters
from jaxinv.io import torch_pickle

FOLDER = "padinv"


def nhwc(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x


def nchw(x):
  x = np.asarray(x)
  return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def image_atol(expected, scale=1e-4):
  """The issue's image tolerance ``1e-4 x max(1, range)``."""
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


def slots_of(cfg):
  return tuple(int(s["slot"]) for s in cfg["padding_slots"])


# A minimal AlexNet LPIPS for these tests, used until the library's jaxinv.models.lpips
# (tasks branch) is merged; same recipe as the fixture README states.
_ALEX = ((0, 11, 4, 2), (3, 5, 1, 2), (6, 3, 1, 1), (8, 3, 1, 1), (10, 3, 1, 1))
_SHIFT = np.array([-.030, -.088, -.188], np.float32)
_SCALE = np.array([.458, .448, .450], np.float32)


def lpips_fallback(g):
  """``(fn, params)`` with ``fn(params, x, y) -> [B]`` (NHWC in [-1, 1]) from the fixture weights."""
  import jax
  import jax.numpy as jnp
  from jaxinv.models import layers as L
  cfg = json.loads(g.path("config.json").read_text())
  feats = torch_pickle.load(g.path("lpips_alex_features_random.pth"))
  lin = torch_pickle.load(g.path("lpips_lin_random.pth"))
  params = {"conv": [(np.transpose(np.asarray(feats[f"features.{i}.weight"], np.float32),
                                   (2, 3, 1, 0)),
                      np.asarray(feats[f"features.{i}.bias"], np.float32)) for i, *_ in _ALEX],
            "lin": [np.asarray(lin[f"lin{k}.model.1.weight"], np.float32).reshape(-1)
                    for k in range(5)]}
  del cfg

  def taps(p, x):
    x = (x - _SHIFT) / _SCALE
    out = []
    for j, ((w, b), (_, k, s, pad)) in enumerate(zip(p["conv"], _ALEX)):
      if j in (1, 2):
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
      x = jax.nn.relu(L.conv2d(x, w, stride=s, padding=pad) + b)
      out.append(x)
    return out

  def fn(p, x, y):
    total = 0.0
    for fx, fy, w in zip(taps(p, x), taps(p, y), p["lin"]):
      nx = fx / (jnp.sqrt(jnp.sum(fx ** 2, -1, keepdims=True)) + 1e-10)
      ny = fy / (jnp.sqrt(jnp.sum(fy ** 2, -1, keepdims=True)) + 1e-10)
      total = total + jnp.mean(jnp.sum((nx - ny) ** 2 * w, -1), axis=(1, 2))
    return total

  return fn, params
