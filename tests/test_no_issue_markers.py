"""Code explains itself: no issue-number markers in the sources (they belong in commit messages)."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parent.parent
MARKER = re.compile(r"\bissue\s+#?\d+\b", re.IGNORECASE)


def test_no_issue_numbers_in_code():
  hits = []
  for top in ("jaxinv", "converters", "experiments", "tests"):
    for path in sorted((REPO / top).rglob("*.py")):
      for n, line in enumerate(path.read_text().splitlines(), 1):
        if MARKER.search(line) and path.name != "test_no_issue_markers.py":
          hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
  assert not hits, "issue-number markers in code:\n" + "\n".join(hits)
