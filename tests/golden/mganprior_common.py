"""Helpers shared by the mGANprior golden tests: converted fixture models (once per session)."""

import re

import jax
import numpy as np

from jaxinv import converters
from jaxinv.models.registry import load_model

_CACHE = {}


def converted(golden, tmp_path_factory, key: str):
  """Converts ``expected.json -> <key>.checkpoint`` (or ``vgg.file``) once and loads it."""
  g = golden("mganprior")
  name = g.expected[key]["checkpoint"] if "checkpoint" in g.expected[key] else g.expected[key]["file"]
  if name not in _CACHE:
    dest = tmp_path_factory.mktemp("models") / key
    converters.convert_file(g.path(name), dest)
    _CACHE[name] = load_model(dest)
  return _CACHE[name]


def nhwc(x):
  x = np.asarray(x)
  return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def nchw(x):
  x = np.asarray(x)
  return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


_LOSS_NAMES = {"L2": "mse", "L1": "l1", "VGG": "vgg", "Combine": "combine"}


def parse_run(run: dict):
  """(optimizer, lr, loss, loss_args) from an ``inversion.runs`` / ``tasks`` record's text fields."""
  opt_text = run["optimizer"]
  optimizer = "adam" if "Adam" in opt_text else "sgd"
  lr = float(re.search(r"lr=([0-9.eE+-]+)", opt_text).group(1))
  loss = _LOSS_NAMES[re.search(r"get_loss\(['\"](\w+)['\"]\)", run["loss"]).group(1)]
  return optimizer, lr, loss, run.get("loss_args", {})


def check_final_image(gen, cfg, out, official_variables, official_image, floor, what):
  """The final image of a trajectory against the official one, split by cause.

  Our G at the official final latents must give the official image within G's float32 ``floor``;
  our own final image may differ further by exactly what our latents' drift moves the image,
  ``|G(v) - G(v_official)|`` (computed here with our G), element by element. Returns the max error.
  """
  from jaxinv.inversion import spaces
  from tests.conftest import assert_close
  space = spaces.MultiCode(gen.module, cfg.layer, cfg.codes)
  render = jax.jit(jax.vmap(lambda v: space.render(v, gen.params)))
  at_official = nchw(render({k: np.asarray(v) for k, v in official_variables.items()}))
  assert_close(at_official, official_image, atol=floor, what=f"{what} (G at the official latents)")
  at_ours = nchw(render(out.variables))
  assert_close(nchw(out.images), at_ours, atol=floor, what=f"{what} (the loop renders its latents)")
  drift = np.abs(at_ours.astype(np.float64) - at_official)
  return assert_close(nchw(out.images), official_image, atol=floor + drift, what=what)
