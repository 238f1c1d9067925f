"""What every subcommand shares: the user-error type and small argument helpers."""

from __future__ import annotations

__all__ = ["UserError"]


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
