"""Helpers shared by the mGANprior golden tests: converted fixture models (once per session)."""

import re

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
