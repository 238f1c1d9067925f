"""How close each golden comparison comes to its bound, per CPU instruction set.

``python -m tests.golden.margins [--isa default,AVX2,AVX,SSE4_2] [--logs DIR] [pytest args]`` runs the
golden suite once per ISA (``XLA_FLAGS=--xla_cpu_max_isa=…``; XLA emits other kernels, so float32
sums round differently: a proxy for other machines) with every ``assert_close`` logged, then prints
one row per test: the worst comparison's max abs error / bound under each ISA. ``--report-only``
reads logs written earlier.
"""

import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys

ISAS = ("default", "AVX2", "AVX", "SSE4_2")


def run(isa: str, log: pathlib.Path, pytest_args) -> int:
  env = dict(os.environ, JAXINV_ERROR_LOG=str(log))
  env["XLA_FLAGS"] = " ".join(f for f in [env.get("XLA_FLAGS", "")] + (
      [] if isa == "default" else [f"--xla_cpu_max_isa={isa}"]) if f)
  if log.exists():
    log.unlink()
  return subprocess.call([sys.executable, "-m", "pytest", "-q", "tests/golden", "-p", "no:cacheprovider",
                          *pytest_args], env=env)


def table(logs: dict) -> str:
  worst = collections.defaultdict(dict)
  for isa, path in logs.items():
    if not path.exists():
      continue
    for line in path.read_text().splitlines():
      r = json.loads(line)
      test = r["test"].split("tests/golden/")[-1]
      prev = worst[test].get(isa)
      if prev is None or r["fraction_of_bound"] > prev["fraction_of_bound"]:
        worst[test][isa] = r
  isas = [i for i in logs if logs[i].exists()]
  lines = ["| test | worst comparison | " + " | ".join(f"{i}: err (bound)" for i in isas) + " |",
           "|---|---|" + "---|" * len(isas)]
  for test in sorted(worst):
    row = worst[test]
    top = max(row.values(), key=lambda r: r["fraction_of_bound"])
    cells = []
    for i in isas:
      r = row.get(i)
      if r is None:
        cells.append("—")
        continue
      bound = r["max_abs"] / r["fraction_of_bound"] if r["fraction_of_bound"] else r["atol"]
      cells.append(f"{r['max_abs']:.2g} ({bound:.2g}, {100 * r['fraction_of_bound']:.0f}%)")
    lines.append(f"| {test} | {top['what']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--isa", default=",".join(ISAS))
  p.add_argument("--logs", default="golden_margins", help="folder of the per-ISA logs")
  p.add_argument("--report-only", action="store_true")
  args, rest = p.parse_known_args(argv)
  folder = pathlib.Path(args.logs)
  folder.mkdir(parents=True, exist_ok=True)
  logs = {isa: folder / f"{isa}.jsonl" for isa in args.isa.split(",")}
  rc = 0
  if not args.report_only:
    for isa, log in logs.items():
      rc |= run(isa, log, rest)
  print(table(logs))
  return rc


if __name__ == "__main__":
  sys.exit(main())
