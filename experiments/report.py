"""Tables, plots and image grids of a sweep: ``python -m jaxinv.experiments.report RUN_DIR [--out DIR]``.

Reads every ``RUN_DIR/results*.jsonl`` (see :mod:`experiments.runlog`) and writes to
``DIR`` (default ``RUN_DIR/report``):

* ``results.csv`` — one row per (config, image);
* ``summary.md`` / ``summary.csv`` — per (generator, task, N, ℓ): mean ± std over images and
  seeds of loss, PSNR, SSIM (and LPIPS), and the count;
* ``<metric>_vs_N.png`` (one line per ℓ) and ``<metric>_vs_layer.png`` (one line per N) for
  PSNR, SSIM and LPIPS when present, one figure per (generator, task);
* ``grid_<task>.png`` — rows: images; columns: the target, then every (N, ℓ) at the lowest seed,
  from the reconstructions the sweep saved (``RUN_DIR/images``); ``summary.md`` names the columns.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from collections import defaultdict

import numpy as np

from jaxinv.experiments import runlog

__all__ = ["summarize", "write_report", "main"]

CSV_FIELDS = ("config_hash", "image", "generator", "task", "codes", "layer", "seed", "steps",
              "optimizer", "lr", "loss_type", "loss", "psnr", "ssim", "lpips")
METRICS = ("loss", "psnr", "ssim", "lpips")
PLOTTED = ("psnr", "ssim", "lpips")
UNITS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS (lower is closer)"}


def _group_key(r):
  return (r["generator"], r["task"], r["codes"], r["layer"])


def summarize(records) -> list[dict]:
  """Per (generator, task, codes, layer): ``n`` and ``<metric>_mean`` / ``<metric>_std``."""
  groups = defaultdict(list)
  for r in records:
    groups[_group_key(r)].append(r)
  rows = []
  for (gen, task, codes, layer), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0][:2])) + kv[0][2:]):
    row = {"generator": gen, "task": task, "codes": codes, "layer": layer, "n": len(rs),
           "steps": ",".join(str(v) for v in sorted({r.get("steps", "") for r in rs}, key=str))}
    for m in METRICS:
      vals = np.asarray([r[m] for r in rs if m in r], np.float64)
      if len(vals):
        row[f"{m}_mean"], row[f"{m}_std"] = float(vals.mean()), float(vals.std())
    rows.append(row)
  return rows


def _atomic_text(path, text):
  from jaxinv.io.checkpoints import atomic_write_bytes
  atomic_write_bytes(path, text.encode())


def _csv_text(rows, fields):
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
  w.writeheader()
  for r in rows:
    w.writerow({k: r.get(k, "") for k in fields})
  return buf.getvalue()


def _markdown(summary, grids):
  metrics = [m for m in METRICS if any(f"{m}_mean" in r for r in summary)]
  head = ["generator", "task", "N", "ℓ", "n"] + metrics
  lines = ["# Sweep summary", "", "mean ± std over images and seeds.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in summary:
    cells = [os.path.basename(str(r["generator"])), r["task"], str(r["codes"]), str(r["layer"]),
             str(r["n"])]
    cells += [f"{r[m + '_mean']:.4g} ± {r[m + '_std']:.2g}" if f"{m}_mean" in r else "" for m in metrics]
    lines.append("| " + " | ".join(cells) + " |")
  for name, layout in grids.items():
    lines += ["", f"![{name}]({name})", "",
              f"`{name}` columns: " + ", ".join(layout.col_labels) + "; PSNR (dB) under each result"]
  return "\n".join(lines) + "\n"


def _save_fig(fig, path):
  from jaxinv.io.checkpoints import atomic_write_bytes
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
  atomic_write_bytes(path, buf.getvalue())


def _plots(summary, out_dir) -> list[str]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  written = []
  by_run = defaultdict(list)
  for r in summary:
    by_run[(r["generator"], r["task"])].append(r)
  multi = len(by_run) > 1
  for (gen, task), rows in by_run.items():
    tag = f"_{os.path.splitext(os.path.basename(str(gen)))[0]}_{task}" if multi else ""
    for m in PLOTTED:
      if not any(f"{m}_mean" in r for r in rows):
        continue
      for x_key, line_key, x_name, line_name in (("codes", "layer", "N", "ℓ"),
                                                 ("layer", "codes", "layer", "N")):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for lv in sorted({r[line_key] for r in rows}):
          pts = sorted((r[x_key], r[f"{m}_mean"], r[f"{m}_std"]) for r in rows
                       if r[line_key] == lv and f"{m}_mean" in r)
          xs, ys, es = map(np.asarray, zip(*pts))
          ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=f"{line_name}={lv}")
        ax.set_xticks(sorted({r[x_key] for r in rows}))   # N and ℓ are integers: no 2.5 ticks
        ax.set_xlabel("N (latent codes)" if x_name == "N" else "composing layer ℓ")
        ax.set_ylabel(UNITS.get(m, m.upper()))
        n_img = sorted({r["n"] for r in rows})
        steps = sorted({r["steps"] for r in rows})
        ax.set_title(f"{task}: {m.upper()} vs {x_name}; mean ± std over "
                     f"{'/'.join(map(str, n_img))} images·seeds, {'/'.join(steps)} steps", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        name = f"{m}_vs_{x_name}{tag}.png"
        _save_fig(fig, os.path.join(out_dir, name))
        plt.close(fig)
        written.append(name)
  return written


def _grids(run_dir, records, out_dir) -> dict:
  """One labelled grid per task (rows: images; columns: target, then each setting; PSNR under each
  result). Returns ``{name: GridLayout}``."""
  from PIL import Image
  from jaxinv.io import images as image_io
  grids = {}
  by_task = defaultdict(list)
  for r in records:
    by_task[r["task"]].append(r)
  for task, rs in sorted(by_task.items()):
    seed = min(r["seed"] for r in rs)
    rs = [r for r in rs if r["seed"] == seed]
    cols = sorted({(os.path.basename(str(r["generator"])), r["codes"], r["layer"], r["config_hash"])
                   for r in rs})
    psnr = {(r["config_hash"], r["image"]): r.get("psnr") for r in rs}
    rows, row_labels, captions = [], [], []
    for img in sorted({r["image"] for r in rs}):
      target = os.path.join(run_dir, "images", "targets", f"{img}.png")
      if not os.path.isfile(target):
        continue
      row, caps = [np.asarray(Image.open(target).convert("RGB"))], [""]
      for _, _, _, h in cols:
        p = os.path.join(run_dir, "images", h, f"{img}.png")
        row.append(np.asarray(Image.open(p).convert("RGB")) if os.path.isfile(p) else None)
        caps.append(f"{psnr[(h, img)]:.2f} dB" if psnr.get((h, img)) is not None else "")
      rows.append(row)
      row_labels.append(str(img))
      captions.append(caps)
    if not rows:
      continue
    several = len({c[0] for c in cols}) > 1
    col_labels = ["target"] + [f"N={n} layer={l}" + (f" ({g})" if several else "") for g, n, l, _ in cols]
    name = f"grid_{task}.png"
    picture, grids[name] = image_io.labeled_grid(rows, row_labels, col_labels, captions)
    image_io.save_png(os.path.join(out_dir, name), picture)
  return grids


def write_report(run_dir: str, out_dir: str | None = None) -> dict:
  """Writes the report files; returns ``{"records", "summary", "files", "grids"}`` (grids: name ->
  :class:`jaxinv.io.images.GridLayout`)."""
  records = runlog.read_results(run_dir)
  if not records:
    raise SystemExit(f"{run_dir}: no results*.jsonl records yet (run experiments.sweep first)")
  out_dir = out_dir or os.path.join(run_dir, "report")
  os.makedirs(out_dir, exist_ok=True)
  summary = summarize(records)
  _atomic_text(os.path.join(out_dir, "results.csv"), _csv_text(records, CSV_FIELDS))
  sfields = ["generator", "task", "codes", "layer", "n"] + [
      f"{m}_{s}" for m in METRICS for s in ("mean", "std") if any(f"{m}_mean" in r for r in summary)]
  _atomic_text(os.path.join(out_dir, "summary.csv"), _csv_text(summary, sfields))
  plots = _plots(summary, out_dir)
  grids = _grids(run_dir, records, out_dir)
  _atomic_text(os.path.join(out_dir, "summary.md"), _markdown(summary, grids)
               + "".join(f"\n![{p}]({p})\n" for p in plots))
  files = ["results.csv", "summary.csv", "summary.md"] + plots + list(grids)
  return {"records": records, "summary": summary, "files": files, "grids": grids}


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m jaxinv.experiments.report", description=__doc__.splitlines()[0])
  p.add_argument("run_dir")
  p.add_argument("--out", default=None, help="report directory (default RUN_DIR/report)")
  args = p.parse_args(argv)
  rep = write_report(args.run_dir, args.out)
  out = args.out or os.path.join(args.run_dir, "report")
  print(f"{len(rep['records'])} results, {len(rep['summary'])} settings -> {out}: "
        + ", ".join(rep["files"]))


if __name__ == "__main__":
  main()
