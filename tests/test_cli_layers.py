"""The CLI's import layers: no subcommand module imports another, and no cycle is possible.

Modules of ``jaxinv/cli`` sit on four layers and may import only from a lower one:

0. ``common`` — the user-error type and argument helpers;
1. ``outputs`` — the ``--out`` claiming every subcommand shares;
2. shared option modules — everything that is neither base nor subcommand: method flags
   (``padinv``, ``idinvert``, ``pti``, ...), ``task_args``, ``style_options``: each builds
   settings for a subcommand and calls the library, never another option module;
3. subcommands — the modules named in ``jaxinv.cli.COMMANDS`` (loaded by name by
   ``jaxinv/cli/__init__.py``), which nothing in ``jaxinv/cli`` imports.

Library work (evaluation protocols, readers, loaders) belongs in ``jaxinv`` proper, where every
subcommand can reach it without importing another.
"""

import ast
import pathlib

import pytest

import jaxinv.cli
from jaxinv.cli import COMMANDS

CLI_DIR = pathlib.Path(jaxinv.cli.__file__).parent
BASE_LAYERS = {"common": 0, "outputs": 1}


def layer(module: str) -> int:
  if module == "__init__":
    return 4
  if module in BASE_LAYERS:
    return BASE_LAYERS[module]
  return 3 if module in COMMANDS else 2


def cli_imports(source: str, modules: set[str]) -> list[tuple[int, str]]:
  """``(line, module)`` for every import of a ``jaxinv.cli`` module in ``source``, at any depth
  (deferred imports inside functions count). A name imported from the package itself that is not
  a module file counts as importing ``__init__``."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      for a in node.names:
        parts = a.name.split(".")
        if parts[:2] == ["jaxinv", "cli"]:
          found.append((node.lineno, parts[2] if len(parts) > 2 else "__init__"))
    elif isinstance(node, ast.ImportFrom):
      if node.level:      # relative import inside jaxinv/cli
        base = node.module.split(".")[0] if node.module else None
      elif node.module and node.module.split(".")[:2] == ["jaxinv", "cli"]:
        parts = node.module.split(".")
        base = parts[2] if len(parts) > 2 else None
      else:
        continue
      if base is not None:
        found.append((node.lineno, base))
      else:
        found.extend((node.lineno, a.name if a.name in modules else "__init__") for a in node.names)
  return found


def violations(sources: dict[str, str]) -> list[str]:
  """Every import in ``sources`` (``{module: source}``) that does not go to a lower layer."""
  out = []
  for mod, src in sorted(sources.items()):
    for line, target in cli_imports(src, set(sources)):
      if layer(target) >= layer(mod):
        out.append(f"jaxinv/cli/{mod}.py:{line} imports jaxinv.cli.{target} "
                   f"(layer {layer(target)} from layer {layer(mod)})")
  return out


def _tree() -> dict[str, str]:
  return {p.stem: p.read_text() for p in sorted(CLI_DIR.glob("*.py"))}


def test_every_subcommand_has_its_module():
  missing = [c for c in COMMANDS if not (CLI_DIR / f"{c}.py").is_file()]
  assert not missing, missing


def test_cli_imports_go_down_the_layers_only():
  bad = violations(_tree())
  assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module, line", [
    ("padinv", "from jaxinv.cli.evaluate import pair_by_stem"),      # option -> subcommand
    ("evaluate", "from jaxinv.cli import invert"),                  # subcommand -> subcommand
    ("task_args", "from jaxinv.cli import style_options"),          # option -> option
    ("common", "from . import outputs"),                            # base upwards, relative
    ("padinv", "import jaxinv.cli.edit"),
    ("edit", "from jaxinv.cli import main"),                        # the package's own names
])
def test_checker_finds_a_forbidden_import(module, line):
  tree = _tree()
  tree[module] += f"\n\ndef _added():\n  {line}\n"
  assert any(v.startswith(f"jaxinv/cli/{module}.py:") for v in violations(tree)), line
