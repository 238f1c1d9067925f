"""Helpers that keep golden tests independent of the visible case.

``expected_at_collection`` reads a folder's expected.json while pytest collects, so names, lists
and tasks can be parametrized from the case itself; ``optional_path`` resolves a path the folder's
README / expected.json gives relative to the fixture folder and skips (with the reason) when that
optional part is absent.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.conftest import golden_root


def expected_at_collection(folder: str) -> dict:
  """The folder's expected.json, or ``{}`` when the folder is absent (the ``golden`` fixture then
  fails the tests that need it; parametrizations come out empty rather than crashing collection)."""
  p = golden_root() / folder / "expected.json"
  return json.loads(p.read_text()) if p.is_file() else {}


def params(names, slow_after: int | None = None):
  """``names`` as pytest params; those from index ``slow_after`` on are marked slow."""
  out = []
  for i, n in enumerate(names):
    marks = [pytest.mark.slow] if slow_after is not None and i >= slow_after else []
    out.append(pytest.param(n, marks=marks, id=str(n)))
  return out


def optional_path(folder_dir, rel, what: str) -> pathlib.Path:
  """``folder_dir / rel`` resolved; ``pytest.skip`` naming ``what`` when it is not there."""
  if rel is None:
    pytest.skip(f"this case has no {what} (expected.json gives none)")
  p = (pathlib.Path(folder_dir) / rel).resolve()
  if not p.exists():
    pytest.skip(f"this case's {what} is absent: {p}")
  return p
