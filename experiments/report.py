"""Tables, plots and image grids of a sweep: ``python -m jaxinv.experiments.report RUN_DIR [--out DIR]``.

Reads every ``RUN_DIR/results*.jsonl`` (see :mod:`experiments.runlog`) and writes to
``DIR`` (default ``RUN_DIR/report``):

* ``results.csv`` — one row per (config, image);
* ``summary.md`` / ``summary.csv`` — per (method, variant, generator, task, N, ℓ): mean ± std
  over images and seeds of loss, PSNR, SSIM (and LPIPS), and the count. ``method`` is the record's
  method (records written before methods were named are mGANprior's); ``variant`` what else
  tells a method's points apart (a style space, a DGP schedule, IDInvert's λ); N and ℓ are
  empty for methods without them;
* ``<metric>_vs_N.png`` (one line per ℓ) and ``<metric>_vs_layer.png`` (one line per N) for
  PSNR, SSIM and LPIPS when present, one figure per (method, variant, generator, task) that has N
  and ℓ;
* ``<metric>_by_variant.png`` — per method without N and ℓ that has several variants (IDInvert's
  λ, DGP's schedules): mean ± std of each (``_<method>`` added when the run has several methods);
* ``grid_<task>.png`` — rows: images; columns: the target, then every setting at the lowest seed,
  from the outputs the sweep saved (``RUN_DIR/images``); ``summary.md`` names the columns.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
from collections import defaultdict

import numpy as np

from jaxinv.experiments import runlog

__all__ = ["summarize", "write_report", "main"]

CSV_FIELDS = ("config_hash", "image", "method", "variant", "generator", "task", "codes", "layer",
              "seed", "steps", "optimizer", "lr", "loss_type", "loss", "psnr", "ssim", "lpips")
METRICS = ("loss", "psnr", "ssim", "lpips")
PLOTTED = ("psnr", "ssim", "lpips")
UNITS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS (lower is closer)"}


def method_of(r) -> str:
  return r.get("method", "mganprior")


def variant_of(r) -> str:
  """What tells a method's points apart besides N and ℓ (a style space, a DGP schedule, IDInvert's λ,
  PadInv's refinement)."""
  if method_of(r) == "pti":
    return (f"{r['projector_steps']}+{r['pti_steps']} steps"
            + (" locality" if r.get("locality_reg") else ""))
  if method_of(r) == "padinv":
    start = "encoder" if r.get("encoder") else "w_avg"
    return f"{start} only" if not r["steps"] else f"{start} + {r['space']} {r['steps']} steps"
  if "schedule" in r:
    return str(r["schedule"])
  if "reg_weight" in r:
    return f"λ={r['reg_weight']:g}"
  if "space" in r:
    return (str(r["space"]) + (f" ({r['code_space']} codes)" if r.get("code_space") else "")
            + (f" {r['image_loss']}" if r.get("image_loss") else ""))
  return ""


GROUP_FIELDS = ("method", "variant", "generator", "task", "codes", "layer")


def _group_key(r):
  return (method_of(r), variant_of(r), r["generator"], r["task"], r.get("codes"), r.get("layer"))


def _natural(text: str) -> tuple:
  """``"λ=10"`` after ``"λ=2"``: the numbers inside a text compare as numbers."""
  parts = re.split(r"(\d+(?:\.\d+)?(?:e-?\d+)?)", text)
  return tuple((1, float(p), "") if i % 2 else (0, 0.0, p) for i, p in enumerate(parts))


def _order(key):
  """Sorts mixed keys: numbers numerically, before text (naturally); missing (None) last."""
  return tuple((0, v, ()) if isinstance(v, (int, float)) else
               ((1, 0, _natural(str(v))) if v is not None else (2, 0, ())) for v in key)


def summarize(records) -> list[dict]:
  """Per (method, variant, generator, task, codes, layer): ``n`` and ``<metric>_mean`` / ``<metric>_std``."""
  groups = defaultdict(list)
  for r in records:
    groups[_group_key(r)].append(r)
  rows = []
  for key, rs in sorted(groups.items(), key=lambda kv: _order(kv[0][:4]) + _order(kv[0][4:])):
    row = dict(zip(GROUP_FIELDS, key))
    row.update(n=len(rs),
               steps=",".join(str(v) for v in sorted({r.get("steps", "") for r in rs}, key=str)))
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
  variants = any(r["variant"] for r in summary)
  head = ["method"] + (["variant"] if variants else []) + ["generator", "task", "N", "ℓ", "n"] + metrics
  lines = ["# Sweep summary", "", "mean ± std over images and seeds.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  blank = lambda v: "" if v is None else str(v)
  for r in summary:
    cells = [r["method"]] + ([r["variant"]] if variants else []) + [
        os.path.basename(str(r["generator"])), r["task"], blank(r["codes"]), blank(r["layer"]),
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
    if r["codes"] is not None and r["layer"] is not None:
      by_run[(r["method"], r["variant"], r["generator"], r["task"])].append(r)
  multi = len(by_run) > 1
  methods = len({k[:2] for k in by_run}) > 1
  for (method, variant, gen, task), rows in by_run.items():
    tag = f"_{os.path.splitext(os.path.basename(str(gen)))[0]}_{task}" if multi else ""
    if methods:
      tag = "_" + "_".join(filter(None, [method, variant.split(" ")[0]])) + tag
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


def _variant_plots(summary, out_dir) -> list[str]:
  """``<metric>_by_variant[_<method>].png``: per method (and generator) without N and ℓ that has
  several variants (IDInvert's λ, DGP's schedules), the mean ± std of each variant."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  written = []
  by_method = defaultdict(list)
  for r in summary:
    if r["codes"] is None and r["layer"] is None:
      by_method[(r["method"], r["generator"])].append(r)
  by_method = {k: rows for k, rows in by_method.items() if len({r["variant"] for r in rows}) > 1}
  methods = len({k[0] for k in by_method}) > 1 or any(
      r["codes"] is not None for r in summary)
  gens = len({k[1] for k in by_method}) > 1
  for (method, gen), rows in by_method.items():
    rows = sorted(rows, key=lambda r: _natural(r["variant"]))
    tag = (f"_{method}" if methods else "") + (
        f"_{os.path.splitext(os.path.basename(str(gen)))[0]}" if gens else "")
    for m in PLOTTED:
      pts = [r for r in rows if f"{m}_mean" in r]
      if not pts:
        continue
      fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(pts), 3.2))
      ax.errorbar(np.arange(len(pts)), np.asarray([r[f"{m}_mean"] for r in pts], np.float64),
                  yerr=np.asarray([r[f"{m}_std"] for r in pts], np.float64), marker="o",
                  capsize=3, linestyle="none")
      ax.set_xticks(range(len(pts)))
      ax.set_xticklabels([r["variant"] + ("" if len({q["task"] for q in pts}) == 1 else f"\n{r['task']}")
                          for r in pts], fontsize=7, rotation=20)
      ax.set_ylabel(UNITS.get(m, m.upper()))
      n_img = sorted({r["n"] for r in pts})
      ax.set_title(f"{method}: {m.upper()} per setting; mean ± std over "
                   f"{'/'.join(map(str, n_img))} images·seeds", fontsize=8)
      ax.grid(alpha=0.3)
      name = f"{m}_by_variant{tag}.png"
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
    cols = sorted({(method_of(r), variant_of(r), os.path.basename(str(r["generator"])),
                    r.get("codes"), r.get("layer"), r["config_hash"]) for r in rs}, key=_order)
    psnr = {(r["config_hash"], r["image"]): r.get("psnr") for r in rs}
    rows, row_labels, captions = [], [], []
    for img in sorted({r["image"] for r in rs}):
      target = os.path.join(run_dir, "images", "targets", f"{img}.png")
      if not os.path.isfile(target):
        continue
      row, caps = [np.asarray(Image.open(target).convert("RGB"))], [""]
      for *_, h in cols:
        p = os.path.join(run_dir, "images", h, f"{img}.png")
        row.append(np.asarray(Image.open(p).convert("RGB")) if os.path.isfile(p) else None)
        caps.append(f"{psnr[(h, img)]:.2f} dB" if psnr.get((h, img)) is not None else "")
      rows.append(row)
      row_labels.append(str(img))
      captions.append(caps)
    if not rows:
      continue
    several = len({c[2] for c in cols}) > 1
    methods = len({c[0] for c in cols}) > 1

    def label(method, variant, g, n, l):
      parts = ([method] if methods else []) + ([variant] if variant else [])
      parts += [f"N={n} layer={l}"] if n is not None and l is not None else []
      return " ".join(parts or [method]) + (f" ({g})" if several else "")
    col_labels = ["target"] + [label(*c[:5]) for c in cols]
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
  _atomic_text(os.path.join(out_dir, "results.csv"), _csv_text(
      [{**r, "method": method_of(r), "variant": variant_of(r)} for r in records], CSV_FIELDS))
  sfields = list(GROUP_FIELDS) + ["n"] + [
      f"{m}_{s}" for m in METRICS for s in ("mean", "std") if any(f"{m}_mean" in r for r in summary)]
  _atomic_text(os.path.join(out_dir, "summary.csv"), _csv_text(summary, sfields))
  plots = _plots(summary, out_dir) + _variant_plots(summary, out_dir)
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
