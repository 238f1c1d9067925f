"""Shared loading for the DGP golden tests (converted G/D, fixture images as NHWC)."""

import numpy as np

from jaxinv.converters import dgp_biggan
from jaxinv.io import torch_pickle
from jaxinv.models import biggan


def load_g(gd, file=None):
  conv = dgp_biggan.convert(torch_pickle.load(gd.path(file or gd.expected["checkpoint"]["G_file"])))
  assert conv.family == "biggan"
  return biggan.BigGANGenerator(conv.config), conv.params


def load_d(gd):
  conv = dgp_biggan.convert(torch_pickle.load(gd.path(gd.expected["checkpoint"]["D_file"])))
  assert conv.family == "biggan_d"
  return biggan.BigGANDiscriminator(conv.config), conv.params


def u8_to_nhwc(u):
  """``_uint8`` NCHW fixture image -> float32 NHWC in [-1, 1] (``(u/255 - 0.5)/0.5``)."""
  return ((np.asarray(u).astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
          ).transpose(0, 2, 3, 1)


def nhwc(x):
  return np.asarray(x).transpose(0, 2, 3, 1)


def nchw(x):
  return np.asarray(x).transpose(0, 3, 1, 2)


# README: "Real example images: `../../data/dgp_examples/`" (relative to the fixture folder).
EXAMPLES_REL = "../../data/dgp_examples"


def example_image(gd, name):
  """An example image the case names, resolved next to the fixture folder (skip if held back)."""
  from tests.conftest import optional_path
  return optional_path(gd.dir, f"{EXAMPLES_REL}/{name}", f"DGP example image {name}")


def config_name(script):
  """Official script path -> the name of our schedule in experiments/configs/dgp/."""
  return (script.replace("experiments/", "").replace("examples/", "")
          .replace("imagenet1k_128/", "in128_").replace("/train.sh", "").replace(".sh", "")
          .replace("/", "_"))


def finetuned(gd):
  """``(task, file)`` of the trajectory whose fine-tuned generator the case stores (else skip)."""
  import pytest
  named = [(t, te["finetuned_state_dict_file"]) for t, te in gd.expected["trajectories"].items()
           if te.get("finetuned_state_dict_file")]
  if not named:
    pytest.skip("this case stores no fine-tuned generator (no trajectory names one)")
  return named[0]
