"""The error type for unusable input files, and the one-line form every CLI message takes."""

from __future__ import annotations

__all__ = ["InputFileError", "one_line"]


class InputFileError(ValueError):
  """A file given as input cannot be used (missing, truncated, corrupt, wrong kind, unsafe).

  The message names the file, what is wrong with it and, where there is one, the fix. The
  command line prints it as one line and exits with status 2.
  """


def one_line(text, limit: int = 500) -> str:
  """``text`` with its whitespace runs collapsed to single spaces, cut to ``limit`` characters."""
  s = " ".join(str(text).split())
  return s if len(s) <= limit else s[:limit - 3] + "..."
