"""Shared loading for the Swapping Autoencoder golden tests (converted once per session)."""

from __future__ import annotations

import functools

import numpy as np

FOLDER = "swapping_autoencoder"


def nchw(a):
  """NHWC (or crops ``[B, n, P, P, C]``) → the fixtures' NCHW layout."""
  a = np.asarray(a)
  if a.ndim == 4:
    return np.transpose(a, (0, 3, 1, 2))
  if a.ndim == 5:
    return np.transpose(a, (0, 1, 4, 2, 3))
  return a


def nhwc(a):
  a = np.asarray(a)
  return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


@functools.lru_cache(maxsize=None)
def _converted(root: str):
  from jaxinv import converters
  from jaxinv.converters import swapping_autoencoder as conv
  import json, pathlib
  d = pathlib.Path(root)
  exp = json.loads((d / "expected.json").read_text())
  obj = converters.read_source(d / exp["checkpoint"]["file"])
  return obj, conv.convert(obj, config=exp["options_all"])


def converted(g):
  """``(state_dict, Converted)`` of the fixture checkpoint with the fixture's options."""
  return _converted(str(g.dir))


def images(g):
  """The fixture batch, NHWC float32 in [-1, 1]."""
  return nhwc(g.npz("inputs.npz")["images_float"])


def noise(g):
  """``{layer: [1, h, w, 1]}`` from noise.npz (names as in expected.json: noise_layers_in_order)."""
  z = g.npz("noise.npz")
  out = {}
  for name in g.expected["noise_layers_in_order"]:
    assert name.startswith("G.") and name.endswith(".noise"), name
    out[name[2:-len(".noise")]] = nhwc(z[name])
  return out


def draws(npz, call):
  """The stored uniform draws of one crop call (``lossG.crop0`` ...)."""
  return {k: np.asarray(npz[f"{call}.{k}"]) for k in ("u_flip", "u_scale", "u_offset")}


def calls(g, prefix):
  """Crop calls of one official function in call order (from expected.json: crop_calls_in_order)."""
  return [c for c in g.expected["crop_calls_in_order"] if c.startswith(prefix + ".")]


def torch_layout(ref_shape, a):
  """One of our params (HWIO conv, [in, out] linear, modulated HWIO, flat bias) in the checkpoint's layout."""
  a = np.asarray(a)
  if a.ndim == 4:
    a = np.transpose(a, (3, 2, 0, 1))
  elif a.ndim == 2:
    a = a.T
  return a.reshape(ref_shape)


def loss_options(g):
  from jaxinv.training import sae as T
  _, res = converted(g)
  return T.LossOptions.from_options(res.extras["options"])


def step_draws(g, npz, prefix):
  """``{"crop0": draws, ...}`` for the crop calls of ``prefix`` (in the official call order)."""
  return {c.split(".")[-1]: draws(npz, c) for c in calls(g, prefix)}


def fixed_noise_inputs(g):
  """The fixture's noise for both G calls of a step (the same maps, broadcast over the batch)."""
  n = noise(g)
  return {"rec": n, "mix": n}
