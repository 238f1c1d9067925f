"""Checkpoint converters: PyTorch files → jaxinv model directories.

Each format is one module with ``NAME``, ``DESCRIPTION``, ``detect(obj) -> bool``
and ``convert(obj, **options) -> Converted``. :data:`FORMATS` lists them in the
order detection tries them; add a format by adding its module there.

Files are read with :mod:`jaxinv.io.torch_pickle` (numpy only, refuses pickled code), NVIDIA
network pickles with :mod:`jaxinv.io.nvidia_pickle` (allow-list, embedded sources never run).
"""

from __future__ import annotations

import os

from jaxinv.converters.base import Converted, ConversionError, FormatError
from jaxinv.converters import genforce_pggan, torchvision_vgg16
from jaxinv.converters import dgp_biggan
from jaxinv.converters import lpips_lin, torchvision_alexnet
from jaxinv.converters import genforce_stylegan, genforce_stylegan2, rosinality_stylegan2
from jaxinv.converters import swapping_autoencoder
from jaxinv.converters import padinv
from jaxinv.converters import idinvert
from jaxinv.converters import nvidia_stylegan2_ada, nvidia_stylegan3
from jaxinv.converters import psp
from jaxinv.io import checkpoints, nvidia_pickle, torch_pickle

__all__ = ["FORMATS", "Converted", "ConversionError", "FormatError", "detect", "convert", "convert_file",
           "read_source"]

FORMATS = {m.NAME: m for m in (
    genforce_pggan,
    genforce_stylegan,
    genforce_stylegan2,
    rosinality_stylegan2,
    dgp_biggan,
    torchvision_vgg16,
    torchvision_alexnet,
    lpips_lin,
    swapping_autoencoder,
    padinv.GENERATOR,
    padinv.ENCODER,
    *idinvert.KINDS,
    nvidia_stylegan2_ada,
    nvidia_stylegan2_ada.STATE_DICT,
    nvidia_stylegan3,
    psp,
)}


def read_source(src: str | os.PathLike):
  """Loads a checkpoint file safely: a ``torch.save`` file (:mod:`jaxinv.io.torch_pickle`) or an
  NVIDIA network pickle (:mod:`jaxinv.io.nvidia_pickle`); neither runs code from the file."""
  if os.path.isfile(src):
    with open(src, "rb") as f:
      head = f.read(16)
    if nvidia_pickle.is_network_pickle(head):
      return nvidia_pickle.load(src)
  return torch_pickle.load(src)


def detect(obj) -> str:
  """Returns the name of the one format whose ``detect`` accepts ``obj``."""
  found = [name for name, m in FORMATS.items() if m.detect(obj)]
  if not found:
    keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
    raise FormatError(f"unrecognised checkpoint (first keys: {keys}); known formats: "
                      f"{', '.join(FORMATS)}. Pass --format NAME to force one.")
  if len(found) > 1:
    raise FormatError(f"ambiguous checkpoint: matches {found}; pass --format NAME")
  return found[0]


def _check_options(name: str, convert, options: dict):
  """Refuses ``--option`` keys the format's ``convert`` does not take. A converter that takes
  free-form settings names its catch-all something other than ``**unused`` and checks them."""
  import inspect
  params = list(inspect.signature(convert).parameters.values())[1:]
  catch_all = [p for p in params if p.kind is p.VAR_KEYWORD]
  if catch_all and catch_all[0].name != "unused":
    return
  known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ConversionError(f"format {name} has no option {', '.join(unknown)}; known: "
                          + (", ".join(known) if known else "none"))


def convert(src, format: str | None = None, **options) -> tuple[Converted, str]:
  """Reads and converts ``src`` in memory: ``(result, format name)``."""
  obj = read_source(src)
  name = format or detect(obj)
  if name not in FORMATS:
    raise FormatError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
  module = FORMATS[name]
  if format and not module.detect(obj):
    raise FormatError(f"{src} does not look like a {name} checkpoint ({module.DESCRIPTION})")
  _check_options(name, module.convert, options)
  return module.convert(obj, **options), name


def convert_file(src, dest, format: str | None = None, overwrite: bool = False,
                 **options) -> Converted:
  """Converts ``src`` into the model directory ``dest`` (written atomically)."""
  result, name = convert(src, format, **options)
  checkpoints.save_model(dest, result.family, result.config, result.params, extras=result.extras,
                         source=f"{os.path.abspath(os.fspath(src))} [{name}]", overwrite=overwrite)
  return result
