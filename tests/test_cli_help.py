"""Every flag of every subcommand explains itself and its default in --help."""

import argparse

from jaxinv.cli import build_parser


def test_every_flag_has_help_and_default():
  parser = build_parser()
  sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
  missing_help, missing_default = [], []
  for name, p in sub.choices.items():
    for a in p._actions:
      if not a.option_strings or "-h" in a.option_strings:
        continue
      flag = f"{name} {a.option_strings[-1]}"
      if not a.help or a.help == argparse.SUPPRESS:
        missing_help.append(flag)
      elif (a.default is not None and a.default is not False and not a.required
            and "default" not in a.help.lower()):
        missing_default.append(flag)
    p.format_help()   # every help string formats (no stray %)
  assert not missing_help, f"flags without help: {missing_help}"
  assert not missing_default, f"flags whose help hides the default: {missing_default}"
  invert = sub.choices["invert"].format_help()
  assert "(default: imagenet-vgg16)" in invert and "(default: combine)" in invert
  assert "pixel L1 term (default: 0.0)" in invert
