"""``jaxinv convert SRC DEST [--format NAME]``: a PyTorch checkpoint → a jaxinv model directory."""

from __future__ import annotations

from jaxinv.cli.common import UserError


def register(sub):
  p = sub.add_parser("convert", help="convert a PyTorch checkpoint into a jaxinv model directory")
  p.add_argument("src", help="checkpoint file (.pth/.pt, optionally .xz)")
  p.add_argument("dest", help="output model directory (must not exist unless --overwrite)")
  p.add_argument("--format", default=None, help="force a format instead of auto-detecting it")
  p.add_argument("--overwrite", action="store_true", help="replace an existing DEST")
  p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                 help="format-specific setting (e.g. truncation_psi=0.7); repeatable")
  p.set_defaults(func=run)


def _parse_options(items):
  import json
  out = {}
  for item in items:
    if "=" not in item:
      raise UserError(f"--option {item!r} must be KEY=VALUE")
    k, v = item.split("=", 1)
    try:
      out[k] = json.loads(v)
    except json.JSONDecodeError:
      out[k] = v
  return out


def run(args):
  from jaxinv import converters
  from jaxinv.io.checkpoints import ModelDirError
  from jaxinv.io.torch_pickle import CheckpointError
  try:
    result = converters.convert_file(args.src, args.dest, format=args.format,
                                     overwrite=args.overwrite, **_parse_options(args.option))
  except CheckpointError as e:
    raise UserError(str(e)) from None
  except (converters.ConversionError, converters.FormatError, ModelDirError) as e:
    message = str(e)
    raise UserError(message if str(args.src) in message else f"{args.src}: {message}") from None
  except TypeError as e:
    raise UserError(f"bad --option for this format: {e}") from None
  print(f"{args.src}: {result.summary}")
  print(f"wrote {args.dest} (family {result.family})")
