"""Conversion as a table: ``source key regex → target param path (+ fix-up)``, checked both ways.

Every converter states its mapping as a list of :class:`Rule` rows plus a list of
``ignore`` regexes for source keys it deliberately drops. :func:`apply_rules`

* maps each source key through the first rule whose regex matches it (fully),
* refuses a source key that neither a rule nor an ignore pattern covers,
* refuses a target filled twice,
* and, given the expected target shapes (from ``jax.eval_shape`` of the Flax
  module's ``init``), refuses a missing target or a shape mismatch.

So a converted tree is exactly the module's tree, and nothing is loaded non-strictly.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping

import numpy as np

__all__ = ["Rule", "ConversionError", "apply_rules", "oihw_to_hwio", "identity", "nest",
           "flatten_paths"]


class ConversionError(ValueError):
  """The source checkpoint does not match the target architecture."""


def identity(x):
  return x


def oihw_to_hwio(x):
  """PyTorch conv weight ``[O, I, H, W]`` → Flax/lax ``[H, W, I, O]``."""
  return np.transpose(x, (2, 3, 1, 0))


def linear_to_io(x):
  """PyTorch linear weight ``[out, in]`` → ``[in, out]``."""
  return np.transpose(x)


@dataclasses.dataclass(frozen=True)
class Rule:
  """One row: a source-key regex (``re.fullmatch``), a target path template, a fix-up.

  ``target`` is a ``/``-separated path whose ``\\1``-style groups come from the
  regex, e.g. ``Rule(r"layer(\\d+)\\.conv\\.weight", r"layer\\1/weight", oihw_to_hwio)``.
  """
  source: str
  target: str
  fix: Callable[[np.ndarray], np.ndarray] = identity


def flatten_paths(tree: Mapping, prefix: str = "") -> dict[str, object]:
  """``{"a": {"b": x}}`` → ``{"a/b": x}``."""
  out = {}
  for k, v in tree.items():
    path = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten_paths(v, path + "/"))
    else:
      out[path] = v
  return out


def nest(flat: Mapping[str, object]) -> dict:
  """``{"a/b": x}`` → ``{"a": {"b": x}}``."""
  out: dict = {}
  for path, v in flat.items():
    node = out
    parts = path.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = v
  return out


def apply_rules(state: Mapping[str, np.ndarray], rules: Iterable[Rule],
                ignore: Iterable[str] = (), expected: Mapping | None = None,
                what: str = "checkpoint") -> dict:
  """Maps a flat state_dict to a nested param tree through ``rules``.

  Args:
    state: ``{torch key: array}``.
    rules: the mapping rows, tried in order.
    ignore: regexes (fullmatch) of source keys that are dropped on purpose.
    expected: the target tree of shapes (anything with ``.shape``), e.g.
      ``jax.eval_shape(module.init, ...)["params"]``; when given, targets must
      match it exactly.
    what: names the checkpoint in error messages.

  Returns:
    The nested param tree of float32 (or the source dtype for integer buffers) arrays.
  """
  rules = [(re.compile(r.source), r) for r in rules]
  ignore = [re.compile(p) for p in ignore]
  flat: dict[str, np.ndarray] = {}
  origin: dict[str, str] = {}
  unexpected = []
  for key, value in state.items():
    for rx, rule in rules:
      m = rx.fullmatch(key)
      if m:
        target = m.expand(rule.target)
        if target in flat:
          raise ConversionError(f"{what}: {key} and {origin[target]} both map to {target}")
        arr = np.asarray(rule.fix(np.asarray(value)))
        if arr.dtype.kind == "f":
          arr = arr.astype(np.float32, copy=False)
        flat[target] = arr
        origin[target] = key
        break
    else:
      if not any(rx.fullmatch(key) for rx in ignore):
        unexpected.append(key)
  if unexpected:
    raise ConversionError(
        f"{what}: unexpected keys {_short(unexpected)} (another architecture or format?)")
  if expected is not None:
    want = {k: tuple(v.shape) for k, v in flatten_paths(expected).items()}
    missing = sorted(set(want) - set(flat))
    extra = sorted(set(flat) - set(want))
    if missing:
      raise ConversionError(f"{what}: missing weights for {_short(missing)} (truncated or "
                            "partial checkpoint?)")
    if extra:
      raise ConversionError(f"{what}: keys {_short([origin[e] for e in extra])} have no place in "
                            "the inferred architecture")
    bad = [f"{origin[k]} {flat[k].shape} vs expected {want[k]}" for k in want
           if tuple(flat[k].shape) != want[k]]
    if bad:
      raise ConversionError(f"{what}: shape mismatch: {_short(bad)}")
  return nest(flat)


def _short(items, n=8):
  items = list(items)
  s = ", ".join(map(str, items[:n]))
  return s + (f" … (+{len(items) - n} more)" if len(items) > n else "")
