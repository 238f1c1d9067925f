"""Types shared by the converters."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jaxinv.converters.table import ConversionError, flatten_paths

__all__ = ["Converted", "ConversionError", "FormatError", "summarize", "expected_shapes",
           "state_dict_of"]


class FormatError(ValueError):
  """The file is not of the requested (or of any known) format."""


@dataclasses.dataclass
class Converted:
  """A converter's result: what ``save_model`` writes."""
  family: str                 # key of jaxinv.models.registry.FAMILIES
  config: Any                 # the family's config dataclass
  params: dict                # nested param tree
  extras: dict = dataclasses.field(default_factory=dict)
  summary: str = ""           # one human line: what was found


def expected_shapes(module, *init_args) -> dict:
  """The ``params`` shape tree of a Flax module (no FLOPs spent)."""
  variables = jax.eval_shape(module.init, jax.random.key(0), *init_args)
  return variables["params"]


def state_dict_of(obj) -> dict[str, np.ndarray] | None:
  """``obj`` if it is a flat ``{str: ndarray}`` state_dict, else None."""
  if isinstance(obj, dict) and obj and all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
    return obj
  return None


def summarize(params) -> str:
  flat = flatten_paths(params)
  n = sum(int(np.prod(np.shape(v))) for v in flat.values())
  return f"{len(flat)} tensors, {n:,} parameters"
