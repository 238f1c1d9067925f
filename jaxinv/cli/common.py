"""What every subcommand shares: the user-error type and small argument helpers."""

from __future__ import annotations

__all__ = ["UserError", "load_generator", "output_stems"]


class UserError(Exception):
  """A problem with the user's input: printed as one line, no traceback, exit status 2."""


def load_generator(name_or_dir, families=None):
  """Loads a converted model, turning every loading problem into a :class:`UserError`."""
  from jaxinv.io.checkpoints import ModelDirError
  from jaxinv.models.registry import load_model
  try:
    return load_model(name_or_dir, expect_family=families)
  except (ModelDirError, OSError, ValueError) as e:
    raise UserError(str(e)) from None


def output_stems(paths, what: str = "input images") -> list[str]:
  """The names outputs take from ``paths`` (file stems, ``NAME-SPLIT-i`` for TFDS); refuses repeats."""
  from jaxinv.io.images import image_stem
  stems = [image_stem(p) for p in paths]
  dup = sorted({s for s in stems if stems.count(s) > 1})
  if dup:
    raise UserError(f"several {what} share the name {dup}; outputs are named by stem")
  return stems
