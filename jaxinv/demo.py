"""The main job in miniature: an mGANprior study on the bundled ``demo-digits`` prior.

:func:`run_demo` inverts held-out test digits (never seen in training) with the
multi-code method (:func:`jaxinv.inversion.methods.mganprior.invert`, the shared
optimisation loop) for every task × composing layer ℓ × number of codes N, and
scores each result against the ground truth. The tasks are the operators of
:mod:`jaxinv.tasks`: ``reconstruct``, ``inpaint`` (DGP's centre hole, a third of
the side) and ``super-resolve`` (bilinear ×4). The loss is pixel MSE (the demo
ships no VGG weights) and the optimiser Adam, which converges in a few hundred
steps where the official SGD(lr 1) needs thousands.

Outputs of :func:`write_outputs`: ``results.csv`` (one row per task, N, ℓ, image),
``summary.csv`` (mean over images), ``psnr_vs_codes.png`` and one
``grid_<task>.png`` per task (rows: images; columns: ground truth, observation,
then N = 1 … at each ℓ), plus ``config.json``.

Images are NHWC float32 in [-1, 1]; metrics are computed on the uint8 pictures
(``data_range`` 255), PSNR and SSIM (Wang et al.) over the whole image;
``psnr_hole`` is PSNR over the missing pixels only (``inpaint``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from typing import Callable, Sequence

import numpy as np

__all__ = ["DemoConfig", "load_test_digits", "run_demo", "write_outputs", "summarize"]

TASK_NAMES = ("reconstruct", "inpaint", "super-resolve")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  """What the demo runs (every field recorded in ``config.json``)."""
  generator: str = "demo-digits"          # bundled name or a converted model directory
  tasks: tuple = TASK_NAMES               # subset of TASK_NAMES
  codes: tuple = (1, 2, 5, 10, 20)        # N values
  layers: tuple = (2, 4, 6)               # composing layers ℓ (4×4, 8×8, 16×16 features at 32 px)
  images: int = 6                         # first held-out test digits
  steps: int = 200                        # Adam steps per inversion
  lr: float = 0.05
  sr_factor: int = 4
  seed: int = 0                           # init of z (jax.random.PRNGKey(seed)); α = 1/N

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
  from jaxinv.io.grid import to_uint8
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
  """Runs the study; returns ``{"rows": [...], "pictures": {...}, "config", "seconds", "model"}``.

  ``rows`` holds one dict per (task, layer, codes, image) with ``psnr``, ``ssim``
  (``psnr_hole`` for inpaint), the final ``loss`` and ``seconds`` of that inversion
  (compilation included).
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
  rows, pictures = [], {}
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
      final_loss = out.loss[-1]
      for i in range(len(gt)):
        row = {"task": name, "codes": int(n), "layer": int(layer), "image": int(data["index"][i]),
               "label": int(data["labels"][i])}
        row.update(_score(restored[i], gt[i], task.mask if name == "inpaint" else None))
        row.update({"loss": float(final_loss[i]), "steps": cfg.steps,
                    "seconds": round(seconds / len(gt), 3)})
        rows.append(row)
      if bar is not None:
        bar.update(1)
        bar.set_postfix(task=name, layer=layer, N=n,
                        psnr=f"{np.mean([r['psnr'] for r in rows[-len(gt):]]):.2f}")
  finally:
    if bar is not None:
      bar.close()
  return {"rows": rows, "pictures": pictures, "config": cfg, "seconds": time.time() - t_all,
          "model": model.path}


def summarize(rows: Sequence[dict]) -> list[dict]:
  """Mean ``psnr`` / ``ssim`` (and ``psnr_hole``) over images per (task, layer, codes)."""
  groups: dict = {}
  for r in rows:
    groups.setdefault((r["task"], r["layer"], r["codes"]), []).append(r)
  out = []
  for (task, layer, codes), rs in groups.items():
    s = {"task": task, "layer": layer, "codes": codes, "images": len(rs),
         "psnr": float(np.mean([r["psnr"] for r in rs])),
         "ssim": float(np.mean([r["ssim"] for r in rs]))}
    if "psnr_hole" in rs[0]:
      s["psnr_hole"] = float(np.mean([r["psnr_hole"] for r in rs]))
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


def _plot_png(summary: Sequence[dict], cfg: DemoConfig) -> bytes:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(cfg.tasks), figsize=(4.2 * len(cfg.tasks), 3.4), squeeze=False)
  for ax, task in zip(axes[0], cfg.tasks):
    for layer in cfg.layers:
      pts = sorted((s["codes"], s["psnr"]) for s in summary
                   if s["task"] == task and s["layer"] == layer)
      ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"layer {layer}")
    ax.set_xscale("log")
    ax.set_xticks(list(cfg.codes))
    ax.set_xticklabels([str(c) for c in cfg.codes])
    ax.set_xlabel("number of codes N")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(task)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle("mGANprior on held-out digits (demo-digits prior)")
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100)
  plt.close(fig)
  return buf.getvalue()


def write_outputs(result: dict, out_dir: str) -> dict:
  """Writes ``results.csv``, ``summary.csv``, ``psnr_vs_codes.png``, ``grid_<task>.png``,
  ``config.json`` under ``out_dir`` (each atomically); returns ``{name: path}``."""
  from jaxinv.io import checkpoints, grid
  cfg = result["config"]
  os.makedirs(out_dir, exist_ok=True)
  paths = {}

  def put(name, data):
    paths[name] = os.path.join(out_dir, name)
    checkpoints.atomic_write_bytes(paths[name], data)

  summary = summarize(result["rows"])
  put("results.csv", _csv_bytes(result["rows"]))
  put("summary.csv", _csv_bytes(summary))
  put("psnr_vs_codes.png", _plot_png(summary, cfg))
  pics = result["pictures"]
  for task in cfg.tasks:
    cols = [pics[(task, "gt")], pics[(task, "obs")]]
    cols += [pics[(task, l, n)] for l in cfg.layers for n in cfg.codes]
    b = cols[0].shape[0]
    cells = np.stack(cols, axis=1).reshape((-1,) + cols[0].shape[1:])
    name = f"grid_{task}.png"
    grid.save_png(os.path.join(out_dir, name), grid.image_grid(cells, len(cols)), scale=2)
    paths[name] = os.path.join(out_dir, name)
  meta = {"config": dataclasses.asdict(cfg), "model": result["model"],
          "seconds": round(result["seconds"], 1),
          "grid_columns": ["ground truth", "observation"] + [f"layer {l}, N {n}"
                                                             for l in cfg.layers for n in cfg.codes],
          "loss": "mse", "optimizer": "adam", "metrics": "uint8, data_range 255; SSIM Wang et al."}
  checkpoints.atomic_write_json(os.path.join(out_dir, "config.json"), meta)
  paths["config.json"] = os.path.join(out_dir, "config.json")
  return paths


def format_table(summary: Sequence[dict], key: str = "psnr") -> str:
  """A text table: one line per (task, layer), one column per N."""
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
