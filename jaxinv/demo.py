"""The main job in miniature: an mGANprior study on the bundled ``demo-digits`` prior.

:func:`run_demo` inverts held-out test digits (never seen in training) with the
multi-code method (:func:`jaxinv.inversion.methods.mganprior.invert`, the shared
optimisation loop) for every task × composing layer ℓ × number of codes N, and
scores each result against the ground truth. The tasks are the operators of
:mod:`jaxinv.tasks`: ``reconstruct``, ``inpaint`` (DGP's centre hole, a third of
the side) and ``super-resolve`` (bilinear ×4). The loss is pixel MSE (the demo
ships no VGG weights) and the optimiser Adam, which converges in a few hundred
steps where the official SGD(lr 1) needs thousands.

With an encoder (default: the bundled ``demo-digits-encoder``, trained on the prior's
training split by ``experiments/train_demo_encoder.py``), :func:`run_demo` also compares
the three inversion families on ``reconstruct`` in z, all through
:func:`jaxinv.inversion.methods.idinvert.invert` (pixel MSE, Adam, the demo's lr, the SAME
number of steps):

* ``encoder``: ``G(E(x))``, one forward pass (0 steps);
* ``optimisation``: z from ``N(0, 1)`` (key ``seed``), no encoder;
* ``hybrid``: z from ``E(x)``;
* ``hybrid+indomain``: z from ``E(x)`` plus the in-domain regulariser
  ``reg_weight · mean((z − E(G(z)))²)``.

Outputs of :func:`write_outputs`: ``results.csv`` (one row per method, task, N, ℓ,
image; ``method`` is ``mganprior`` for the study, the encoder rows leave N and ℓ
empty), ``summary.csv`` (mean over images), ``psnr_vs_codes.png``, one
``grid_<task>.png`` per task (rows: images; columns: ground truth, observation,
then N = 1 … at each ℓ), ``grid_encoder.png`` (ground truth, then each encoder-row
method) and ``config.json``.

Images are NHWC float32 in [-1, 1]; metrics are computed on the uint8 pictures
(``data_range`` 255), PSNR and SSIM (Wang et al.) over the whole image;
``psnr_hole`` is PSNR over the missing pixels only (``inpaint``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import time
from typing import Callable, Sequence

import numpy as np

__all__ = ["DemoConfig", "load_test_digits", "run_demo", "write_outputs", "summarize",
           "encoder_comparison", "format_table", "format_encoder_table"]

TASK_NAMES = ("reconstruct", "inpaint", "super-resolve")
ENCODER_METHODS = ("encoder", "optimisation", "hybrid", "hybrid+indomain")
# In-domain regulariser weight on z (z ~ N(0, 1), so the term is O(1) where pixel MSE is
# O(0.01)); chosen on 8 training digits, never held-out ones (experiments/demo_encoder_study.py
# reg): 150 steps at 0, 1e-3, 1e-2, 1e-1, 1 gave 30.6, 30.5, 30.1, 28.1, 26.1 dB and cycle errors
# mean((z − E(G(z)))²) 0.19, 0.17, 0.089, 0.018, 0.003 — 1e-2 halves it for 0.5 dB.
REG_WEIGHT = 0.01


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  """What the demo runs (every field recorded in ``config.json``)."""
  generator: str = "demo-digits"          # bundled name or a converted model directory
  tasks: tuple = TASK_NAMES               # subset of TASK_NAMES
  codes: tuple = (1, 2, 5, 10, 20)        # N values
  layers: tuple = (2, 4)                  # composing layers ℓ (4×4×64, 8×8×32 features at 32 px)
  images: int = 4                         # first held-out test digits
  steps: int = 150                        # Adam steps per inversion
  lr: float = 0.05
  sr_factor: int = 4
  seed: int = 0                           # init of z (jax.random.PRNGKey(seed)); α = 1/N
  encoder: str | None = "demo-digits-encoder"   # None: no encoder rows
  reg_weight: float = REG_WEIGHT          # in-domain regulariser of hybrid+indomain

  def __post_init__(self):
    bad = [t for t in self.tasks if t not in TASK_NAMES]
    if bad:
      raise ValueError(f"unknown demo task(s) {bad}; choose from {', '.join(TASK_NAMES)}")
    if not self.codes or min(self.codes) < 1:
      raise ValueError(f"codes must be positive integers, got {self.codes}")
    if self.images < 1 or self.steps < 1:
      raise ValueError("images and steps must be >= 1")


def _asset_dir(generator_path: str) -> str:
  return os.path.dirname(os.path.abspath(generator_path))


def load_test_digits(resolution: int, n: int | None = None, path: str | None = None) -> dict:
  """The held-out digits shipped with the prior: ``{"images": [n, R, R, 3], "labels", "index"}``.

  ``index`` is each digit's position in ``sklearn.datasets.load_digits()``.
  """
  from jaxinv.models.registry import BUNDLED
  from jaxinv.training.digits import to_images
  path = path or os.path.join(_asset_dir(BUNDLED["demo-digits"]), "test_digits.npz")
  with np.load(path) as f:
    x8, labels, index = f["x8"], f["labels"], f["index"]
  n = len(x8) if n is None else min(n, len(x8))
  return {"images": to_images(x8[:n], resolution), "labels": labels[:n], "index": index[:n]}


def _make_tasks(cfg: DemoConfig, resolution: int) -> dict:
  from jaxinv import tasks
  out = {}
  for name in cfg.tasks:
    if name == "inpaint":
      out[name] = tasks.make_task(name, resolution, mask=tasks.center_hole_mask(resolution))
    elif name == "super-resolve":
      out[name] = tasks.make_task(name, resolution, factor=cfg.sr_factor, downsample="bilinear")
    else:
      out[name] = tasks.make_task(name, resolution)
  return out


def _score(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> dict:
  from jaxinv import metrics
  from jaxinv.io.images import to_uint8
  p, g = to_uint8(pred), to_uint8(gt)
  row = {"psnr": metrics.psnr(p, g, 255.0), "ssim": metrics.ssim(p, g, 255.0)}
  if mask is not None:
    hole = mask.max(axis=-1) > 0.5
    row["psnr_hole"] = metrics.psnr(p[hole], g[hole], 255.0)
  return row


def _observation_picture(task, obs: np.ndarray, resolution: int) -> np.ndarray:
  """The observation shown at full size: SR nearest-enlarged, inpaint hole in mid-grey."""
  obs = np.asarray(obs)
  if task.name == "super-resolve":
    f = resolution // obs.shape[1]
    return np.repeat(np.repeat(obs, f, axis=1), f, axis=2)
  if task.name == "inpaint":
    return np.where(task.mask[None] > 0.5, 0.0, obs)
  return obs


def run_demo(cfg: DemoConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict:
  """Runs the study; returns ``{"rows": [...], "pictures": {...}, "curves": {(task, layer, N): mean
  loss per step}, "config", "seconds", "model"}``.

  ``rows`` holds one dict per (task, layer, codes, image) with ``psnr``, ``ssim``
  (``psnr_hole`` for inpaint), the final ``loss`` and ``seconds``: wall time of that
  (task, layer, N) inversion of the whole batch, compilation included.
  """
  import jax
  from jaxinv.inversion import objectives
  from jaxinv.inversion.methods import mganprior
  from jaxinv.models.registry import load_model

  model = load_model(cfg.generator, expect_family="pggan")
  res = model.config.resolution
  for layer in cfg.layers:
    model.config.check_layer(int(layer), allow_ends=False)
  data = load_test_digits(res, cfg.images)
  gt = data["images"]
  task_objs = _make_tasks(cfg, res)
  loss_cfg = objectives.LossConfig(loss="mse")
  grid = [(t, l, n) for t in cfg.tasks for l in cfg.layers for n in cfg.codes]
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=len(grid), desc="demo", unit="inversion", dynamic_ncols=True)
  rows, pictures, curves = [], {}, {}
  t_all = time.time()
  try:
    for name, layer, n in grid:
      task = task_objs[name]
      obs = np.asarray(jax.vmap(task.observe)(gt))
      if (name, "gt") not in pictures:
        pictures[(name, "gt")] = gt
        pictures[(name, "obs")] = _observation_picture(task, obs, res)
      mcfg = mganprior.MGANpriorConfig(codes=int(n), layer=int(layer), loss=loss_cfg,
                                       optimizer="adam", lr=cfg.lr, steps=cfg.steps,
                                       init="normal", seed=cfg.seed)
      t0 = time.time()
      out = mganprior.invert(model.module, model.params, obs, mcfg, degrade=task.degrade,
                             progress=False)
      seconds = time.time() - t0
      restored = task.restore(out.images, obs)
      pictures[(name, layer, n)] = restored
      curves[(name, int(layer), int(n))] = np.asarray(out.loss).mean(axis=1)
      final_loss = out.loss[-1]
      for i in range(len(gt)):
        row = {"method": "mganprior", "task": name, "codes": int(n), "layer": int(layer),
               "image": int(data["index"][i]), "label": int(data["labels"][i])}
        row.update(_score(restored[i], gt[i], task.mask if name == "inpaint" else None))
        row.update({"loss": float(final_loss[i]), "steps": cfg.steps,
                    "seconds": round(seconds, 2)})
        rows.append(row)
      if bar is not None:
        bar.update(1)
        bar.set_postfix(task=name, layer=layer, N=n,
                        psnr=f"{np.mean([r['psnr'] for r in rows[-len(gt):]]):.2f}")
    if cfg.encoder and "reconstruct" in cfg.tasks:
      erows, epics = encoder_comparison(cfg, model, data)
      rows += erows
      pictures.update(epics)
  finally:
    if bar is not None:
      bar.close()
  return {"rows": rows, "pictures": pictures, "curves": curves, "config": cfg,
          "seconds": time.time() - t_all, "model": model.path}


def encoder_comparison(cfg: DemoConfig, model, data: dict) -> tuple[list, dict]:
  """The encoder-only / optimisation-only / hybrid rows on ``reconstruct`` (see the module doc).

  Returns ``(rows, pictures)`` with pictures keyed ``("encoder", method)``.
  """
  import jax
  from jaxinv.inversion.methods import idinvert
  from jaxinv.models.registry import load_model
  enc = load_model(cfg.encoder, expect_family="idinvert-encoder")
  models = idinvert.models_from(model, enc)
  gt = data["images"]
  b = len(gt)
  random_z = jax.random.normal(jax.random.PRNGKey(cfg.seed), (b,) + tuple(models.code_shape))
  runs = {"optimisation": (random_z, 0.0), "hybrid": (None, 0.0),
          "hybrid+indomain": (None, float(cfg.reg_weight))}
  rows, pictures = [], {}
  t0 = time.time()
  start = idinvert.encode(models, gt)
  outputs = {"encoder": (idinvert.render(models, start), None, 0, time.time() - t0)}
  for method, (init, reg) in runs.items():
    settings = idinvert.IDInvertSettings(steps=cfg.steps, learning_rate=cfg.lr, feat_weight=0.0,
                                         reg_weight=reg)
    t0 = time.time()
    res = idinvert.invert(models, gt, settings, init=init, progress=False)
    outputs[method] = (idinvert.render(models, res.wp), res.loss[-1], cfg.steps, time.time() - t0)
  for method in ENCODER_METHODS:
    images, loss, steps, seconds = outputs[method]
    images = np.asarray(images)
    pictures[("encoder", method)] = images
    for i in range(b):
      row = {"method": method, "task": "reconstruct", "codes": "", "layer": "",
             "image": int(data["index"][i]), "label": int(data["labels"][i])}
      row.update(_score(images[i], gt[i], None))
      mse = float(np.mean(np.square(images[i] - gt[i])))
      row.update({"loss": mse if loss is None else float(loss[i]), "steps": steps,
                  "seconds": round(seconds, 2)})
      rows.append(row)
  return rows, pictures


def summarize(rows: Sequence[dict]) -> list[dict]:
  """Mean and standard deviation (``<metric>_std``) of ``psnr`` / ``ssim`` (and ``psnr_hole``) over
  images per (method, task, layer, codes); encoder-comparison groups also carry their ``steps``."""
  groups: dict = {}
  for r in rows:
    key = (r.get("method", "mganprior"), r["task"], r["layer"], r["codes"])
    groups.setdefault(key, []).append(r)
  out = []
  for (method, task, layer, codes), rs in groups.items():
    s = {"method": method, "task": task, "layer": layer, "codes": codes, "images": len(rs)}
    for k in ("psnr", "ssim", "psnr_hole"):
      if k in rs[0]:
        vals = [r[k] for r in rs]
        s[k], s[f"{k}_std"] = float(np.mean(vals)), float(np.std(vals))
    if method != "mganprior":
      s["steps"] = rs[0]["steps"]
    out.append(s)
  return out


def _csv_bytes(rows: Sequence[dict]) -> bytes:
  cols = []
  for r in rows:
    cols += [k for k in r if k not in cols]
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
  w.writeheader()
  for r in rows:
    w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
  return buf.getvalue().encode()


def plot_figure(summary: Sequence[dict], cfg: DemoConfig, curves: dict | None = None):
  """The study's figure (a matplotlib Figure): per task, PSNR vs N with one line per layer (mean ±
  standard deviation over the images; inpainting also the hole-only PSNR, dashed), and with
  ``curves`` a last panel of the mean loss per step at the largest N."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker
  study = [s for s in summary if s["method"] == "mganprior"]
  panels = len(cfg.tasks) + (1 if curves else 0)
  fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
  for ax, task in zip(axes[0], cfg.tasks):
    for layer in cfg.layers:
      pts = sorted((s["codes"], s) for s in study if s["task"] == task and s["layer"] == layer)
      xs = [n for n, _ in pts]
      line = ax.errorbar(xs, [s["psnr"] for _, s in pts], yerr=[s["psnr_std"] for _, s in pts],
                         marker="o", capsize=3, label=f"layer {layer}")
      if pts and "psnr_hole" in pts[0][1]:
        ax.errorbar(xs, [s["psnr_hole"] for _, s in pts], yerr=[s["psnr_hole_std"] for _, s in pts],
                    marker="s", capsize=3, linestyle="--", color=line.lines[0].get_color(),
                    label=f"layer {layer}, hole only")
    ax.set_xscale("log")
    ax.set_xticks(list(cfg.codes))
    ax.set_xticklabels([str(c) for c in cfg.codes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("number of codes N")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(task)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  if curves:
    ax = axes[0][-1]
    n_max = max(cfg.codes)
    for (task, layer, n), curve in sorted(curves.items()):
      if n == n_max:
        ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{task}, layer {layer}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE, mean over images)")
    ax.set_title(f"loss per step, N={n_max}")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  images = max((s["images"] for s in study), default=0)
  fig.suptitle(f"mGANprior on {images} held-out digits (demo-digits prior), {cfg.steps} Adam steps; "
               "mean ± std over images")
  fig.tight_layout()
  return fig


def _plot_png(summary: Sequence[dict], cfg: DemoConfig, curves: dict | None = None) -> bytes:
  import matplotlib.pyplot as plt
  fig = plot_figure(summary, cfg, curves)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  plt.close(fig)
  return buf.getvalue()


def write_outputs(result: dict, out_dir: str) -> dict:
  """Writes ``results.csv``, ``summary.csv``, ``psnr_vs_codes.png``, ``grid_<task>.png``,
  ``config.json`` under ``out_dir`` (each atomically); returns ``{name: path}``."""
  from jaxinv.io import checkpoints, images as image_io
  cfg = result["config"]
  os.makedirs(out_dir, exist_ok=True)
  paths = {}

  def put(name, data):
    paths[name] = os.path.join(out_dir, name)
    checkpoints.atomic_write_bytes(paths[name], data)

  summary = summarize(result["rows"])
  put("results.csv", _csv_bytes(result["rows"]))
  put("summary.csv", _csv_bytes(summary))
  put("psnr_vs_codes.png", _plot_png(summary, cfg, result.get("curves")))
  pics = result["pictures"]
  rows_by = {}
  for r in result["rows"]:
    rows_by[(r.get("method", "mganprior"), r["task"], r["layer"], r["codes"], r["image"])] = r
  images = _image_order(result["rows"])   # the pictures' order: the held-out digits as loaded
  row_labels = [f"digit {label} (#{index})" for index, label in images]
  grids = {}

  def grid(name, columns, col_labels, key_of):
    cells = [[pics[c][i] for c in columns] for i in range(len(images))]
    captions = []
    for i, (index, _) in enumerate(images):
      caps = []
      for c in columns:
        r = rows_by.get(key_of(c, index))
        caps.append(f"{r['psnr']:.1f} dB" if r else "")
      captions.append(caps)
    picture, layout = image_io.labeled_grid(cells, row_labels, col_labels, captions)
    paths[name] = os.path.join(out_dir, name)
    image_io.save_png(paths[name], picture)
    grids[name] = {"rows": list(layout.row_labels), "columns": list(layout.col_labels),
                   "cell": layout.cell, "scale": layout.scale, "origin": list(layout.origin),
                   "pitch": list(layout.pitch), "captions": "PSNR (dB) against the ground truth"}

  for task in cfg.tasks:
    columns = [(task, "gt"), (task, "obs")] + [(task, l, n) for l in cfg.layers for n in cfg.codes]
    labels = ["ground truth", "observation"] + [f"layer {l}, N={n}" for l in cfg.layers for n in cfg.codes]
    grid(f"grid_{task}.png", columns, labels,
         lambda c, index: ("mganprior", c[0], c[1], c[2], index) if len(c) == 3 else None)
  if ("encoder", "encoder") in pics:
    columns = [("reconstruct", "gt")] + [("encoder", m) for m in ENCODER_METHODS]
    grid("grid_encoder.png", columns, ["ground truth"] + list(ENCODER_METHODS),
         lambda c, index: (c[1], "reconstruct", "", "", index) if c[0] == "encoder" else None)
  meta = {"config": dataclasses.asdict(cfg), "model": result["model"],
          "seconds": round(result["seconds"], 1),
          "grids": grids,
          "loss": "mse", "optimizer": "adam", "metrics": "uint8, data_range 255; SSIM Wang et al."}
  if "grid_encoder.png" in grids:
    meta["encoder_rows"] = (f"reconstruct in z [1, 512] with {cfg.encoder}: encoder = G(E(x)) "
                            f"(0 steps); optimisation = z ~ N(0, 1), {cfg.steps} Adam steps; "
                            f"hybrid = z from E(x), {cfg.steps} steps; hybrid+indomain = hybrid "
                            f"+ {cfg.reg_weight} * mean((z - E(G(z)))^2); pixel MSE, lr {cfg.lr}")
  checkpoints.atomic_write_json(os.path.join(out_dir, "config.json"), meta)
  paths["config.json"] = os.path.join(out_dir, "config.json")
  return paths


def _image_order(rows):
  """(index, label) of the held-out images in the order the study saw them."""
  seen = {}
  for r in rows:
    seen.setdefault(r["image"], r["label"])
  return list(seen.items())


def format_encoder_table(summary: Sequence[dict]) -> str:
  """The encoder comparison: one line per method (mean PSNR / SSIM, steps); '' without rows."""
  rows = [s for s in summary if s["method"] in ENCODER_METHODS]
  if not rows:
    return ""
  lines = [f"{'reconstruct, z':<18}{'steps':>6}{'PSNR':>8}{'SSIM':>8}"]
  for s in sorted(rows, key=lambda s: ENCODER_METHODS.index(s["method"])):
    lines.append(f"{s['method']:<18}{s['steps']:>6}{s['psnr']:8.2f}{s['ssim']:8.4f}")
  return "\n".join(lines)


def format_table(summary: Sequence[dict], key: str = "psnr") -> str:
  """A text table of the mGANprior study: one line per (task, layer), one column per N."""
  summary = [s for s in summary if s.get("method", "mganprior") == "mganprior"]
  codes = sorted({s["codes"] for s in summary})
  lines = [f"{'task':<14}{'layer':>6}" + "".join(f"{'N=' + str(c):>9}" for c in codes)]
  seen = []
  for s in summary:
    if (s["task"], s["layer"]) not in seen:
      seen.append((s["task"], s["layer"]))
  for task, layer in seen:
    vals = {s["codes"]: s[key] for s in summary if s["task"] == task and s["layer"] == layer}
    lines.append(f"{task:<14}{layer:>6}" + "".join(f"{vals.get(c, float('nan')):9.2f}" for c in codes))
  return "\n".join(lines)
