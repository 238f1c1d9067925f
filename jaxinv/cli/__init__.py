"""``jaxinv`` command line: a thin layer that parses, calls the library and writes outputs.

Each subcommand lives in its own module with ``register(subparsers)``; :data:`COMMANDS`
lists them in the order ``jaxinv --help`` shows.
"""

from __future__ import annotations

import argparse
import sys

from jaxinv.cli import outputs
from jaxinv.cli.common import UserError
from jaxinv.io.errors import InputFileError, one_line

COMMANDS = [
    "convert",
    "generate",
    "invert",
    "evaluate",
    "edit",
    "diffuse",
    "directions",
    "swap",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
  import importlib
  parser = argparse.ArgumentParser(prog="jaxinv", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for name in COMMANDS:
    importlib.import_module(f"jaxinv.cli.{name}").register(sub)
  outputs.add_overwrite_flags(sub)
  for p in sub.choices.values():
    _show_defaults(p)
  return parser


def warning_line(command):
  """``warnings.formatwarning`` for the CLI: ``jaxinv COMMAND: warning: MESSAGE`` on one line."""
  def format_warning(message, category, filename, lineno, line=None):
    kind = "warning" if category is UserWarning else category.__name__
    return one_line(f"jaxinv {command}: {kind}: {message}", limit=1000) + "\n"
  return format_warning


def _check_out(args):
  """``--out`` must be writable as the kind the command writes, before any work starts."""
  from jaxinv.cli.common import check_out_dir, check_out_file
  kind = getattr(args, "out_kind", None)
  if kind == "dir":
    check_out_dir(args.out)
  elif kind == "file":
    check_out_file(args.out)


def _show_defaults(parser: argparse.ArgumentParser):
  """Appends ``(default: X)`` to every option's help that does not already state its default."""
  for a in parser._actions:
    if not a.option_strings or a.help in (None, argparse.SUPPRESS) or a.required:
      continue
    if a.default is None or a.default is False or a.default == argparse.SUPPRESS \
        or "default" in a.help.lower():
      continue
    a.help += " (default: %(default)s)"


def main(argv=None) -> int:
  import warnings
  parser = build_parser()
  args = parser.parse_args(argv)
  default_format = warnings.formatwarning
  warnings.formatwarning = warning_line(args.command)
  claimed = None
  try:
    _check_out(args)
    claimed = outputs.claim(args)
    return int(args.func(args) or 0)
  except (UserError, InputFileError) as e:
    outputs.release_unused(claimed)
    print(one_line(f"jaxinv {args.command}: error: {e}", limit=1000), file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"jaxinv {args.command}: interrupted", file=sys.stderr)
    return 130
  finally:
    warnings.formatwarning = default_format


if __name__ == "__main__":
  sys.exit(main())
