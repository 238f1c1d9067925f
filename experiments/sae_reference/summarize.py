"""Writes record.json for a finished ``experiments.train_sae`` run: the G_L1 curve, window means, speed.

Usage: python -m jaxinv.experiments.sae_reference.summarize WORKDIR OUT_DIR --window 10 --seconds S --command "..."
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil

import numpy as np


def summarize(workdir: str, window: int) -> dict:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  its = [r["iteration"] for r in rows]
  l1 = np.array([r["G_L1"] for r in rows])
  first, last = l1[:window], l1[-window:]
  return {
      "G_L1_curve": [[i, float(v)] for i, v in zip(its, l1)],
      "window_logged_points": window,
      "first_window": {"iterations": [its[0], its[window - 1]], "G_L1_mean": float(first.mean()),
                       "G_L1_std": float(first.std())},
      "last_window": {"iterations": [its[-window], its[-1]], "G_L1_mean": float(last.mean()),
                      "G_L1_std": float(last.std())},
      "G_L1_last_over_first": float(last.mean() / first.mean()),
      "images_per_s": summary["images_per_s"],
      "timed_iterations": summary.get("timed_iterations"),
      "timed_seconds": summary.get("timed_seconds"),
      "summary": summary,
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("workdir")
  p.add_argument("out")
  p.add_argument("--window", type=int, default=10)
  p.add_argument("--seconds", type=float, default=None, help="wall-clock seconds of the whole command")
  p.add_argument("--command", default="")
  args = p.parse_args(argv)
  rec = summarize(args.workdir, args.window)
  rec = {"command": args.command, "wall_seconds": args.seconds, **rec}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "record.json"), "w") as f:
    json.dump(rec, f, indent=1)
  samples = sorted(glob.glob(os.path.join(args.workdir, "samples", "iter_*.png")))
  for s in samples[-1:]:
    shutil.copy(s, os.path.join(args.out, "samples_" + os.path.basename(s)))
  print(json.dumps({k: rec[k] for k in ("first_window", "last_window", "G_L1_last_over_first",
                                        "images_per_s")}, indent=1))


if __name__ == "__main__":
  main()
