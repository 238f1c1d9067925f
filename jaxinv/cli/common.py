"""What every subcommand shares: the user-error type and small argument helpers."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
  """A problem with the user's input: printed as one line, no traceback, exit status 2."""
