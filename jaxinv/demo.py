"""The main job in miniature: an mGANprior study on the bundled ``demo-digits`` prior.

:func:`run_demo` inverts held-out test digits (never seen in training) with the
multi-code method (:func:`jaxinv.inversion.methods.mganprior.invert`, the shared
optimisation loop) for every objective × task × composing layer ℓ × number of codes N,
and scores each result against the ground truth. The tasks are the operators of
:mod:`jaxinv.tasks`: ``reconstruct``, ``inpaint`` (DGP's centre hole, a third of
the side) and ``super-resolve`` (bilinear ×4). The objectives are pixel MSE alone
(``mse``) and the official ``Combine`` loss (``mse+vgg``: MSE + λ·0.001·L1 of VGG16
``relu3_3`` features, the built-in ImageNet VGG16, images resized to the model's
resolution as the official ``--image_size``, λ the official per-task weight). The
``mse+vgg`` runs cover a subset of the (ℓ, N) grid (default: the last layer, the
smallest and largest N) because the VGG term costs several times the 32 px
generator. The optimiser is Adam, which converges in a few hundred steps where the
official SGD(lr 1) needs thousands.

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

Outputs of :func:`write_outputs`: ``results.csv`` (one row per method, objective, task,
N, ℓ, image; ``method`` is ``mganprior`` for the study, the encoder rows leave N and ℓ
empty), ``summary.csv`` (mean, standard deviation and 95 % confidence half-width over
images), ``paired.csv`` (per-image differences between N values and between objectives,
mean ± 95 % CI), ``psnr_vs_codes.png``, one ``grid_<task>.png`` per task (rows: the first
``grid_images`` digits; columns: ground truth, observation, then each objective / ℓ / N),
``grid_encoder.png`` (ground truth, then each encoder-row method) and ``config.json``.

Images are NHWC float32 in [-1, 1]; metrics are computed on the uint8 pictures
(``data_range`` 255): PSNR and SSIM (Wang et al.) over the whole image, LPIPS v0.1
(built-in AlexNet by default) on the whole 32 px image; ``psnr_hole`` is PSNR over the
missing pixels only (``inpaint``).
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
           "encoder_comparison", "format_table", "format_encoder_table", "OBJECTIVES",
           "paired_differences", "format_paired"]

TASK_NAMES = ("reconstruct", "inpaint", "super-resolve")
OBJECTIVES = ("mse", "mse+vgg")
ENCODER_METHODS = ("encoder", "optimisation", "hybrid", "hybrid+indomain")
METRICS = ("psnr", "ssim", "lpips", "psnr_hole")
# VGG weight λ of mse+vgg per task: the official scripts' (jaxinv invert's task defaults).
VGG_LAMBDA = {"reconstruct": 1.0, "inpaint": 0.1, "super-resolve": 1.0}
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
  codes: tuple = (1, 5, 20)               # N values
  layers: tuple = (2, 4)                  # composing layers ℓ (4×4×64, 8×8×32 features at 32 px)
  images: int = 32                        # first held-out test digits
  batch: int = 32                         # images per compiled inversion
  steps: int = 150                        # Adam steps per inversion
  lr: float = 0.05
  sr_factor: int = 4
  seed: int = 0                           # init of z (jax.random.PRNGKey(seed)); α = 1/N
  objectives: tuple = OBJECTIVES          # subset of OBJECTIVES
  vgg: str = "imagenet-vgg16"             # VGG16 of mse+vgg (built-in name or converted dir)
  vgg_layers: tuple | None = None         # mse+vgg at these ℓ (None: the last of `layers`)
  vgg_codes: tuple | None = None          # ... and these N (None: the smallest and largest)
  lpips: str | None = "alex"              # LPIPS metric (built-in alex / vgg, a dir; None: off)
  grid_images: int = 8                    # digits shown in the grids
  encoder: str | None = "demo-digits-encoder"   # None: no encoder rows
  reg_weight: float = REG_WEIGHT          # in-domain regulariser of hybrid+indomain

  def __post_init__(self):
    bad = [t for t in self.tasks if t not in TASK_NAMES]
    if bad:
      raise ValueError(f"unknown demo task(s) {bad}; choose from {', '.join(TASK_NAMES)}")
    bad = [o for o in self.objectives if o not in OBJECTIVES]
    if bad or not self.objectives:
      raise ValueError(f"unknown demo objective(s) {bad}; choose from {', '.join(OBJECTIVES)}")
    if not self.codes or min(self.codes) < 1:
      raise ValueError(f"codes must be positive integers, got {self.codes}")
    if self.images < 1 or self.steps < 1 or self.batch < 1 or self.grid_images < 1:
      raise ValueError("images, batch, steps and grid_images must be >= 1")
    for name, sub, full in (("vgg_layers", self.vgg_layers, self.layers),
                            ("vgg_codes", self.vgg_codes, self.codes)):
      if sub is not None and (not sub or set(sub) - set(full)):
        raise ValueError(f"{name} {list(sub)} must be a non-empty subset of {list(full)}")

  def grid_of(self, objective: str) -> list[tuple[int, int]]:
    """The (ℓ, N) pairs run with ``objective``."""
    if objective == "mse":
      return [(l, n) for l in self.layers for n in self.codes]
    layers = self.vgg_layers if self.vgg_layers is not None else (self.layers[-1],)
    codes = self.vgg_codes if self.vgg_codes is not None else sorted({min(self.codes), max(self.codes)})
    return [(l, n) for l in layers for n in codes]

  def runs(self) -> list[tuple[str, str, int, int]]:
    """Every (objective, task, ℓ, N) inversion of the study, in run order."""
    return [(o, t, int(l), int(n)) for o in self.objectives for t in self.tasks
            for l, n in self.grid_of(o)]


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


def _loss_config(objective: str, task: str, resolution: int):
  from jaxinv.inversion import objectives
  if objective == "mse":
    return objectives.LossConfig(loss="mse")
  return objectives.LossConfig(loss="combine", l1_lambda=0.0, l2_lambda=1.0,
                               vgg_lambda=VGG_LAMBDA[task],
                               vgg=objectives.VGGLossConfig(size=resolution))


def _score(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, lpips_model=None) -> list[dict]:
  """Per-image metrics of a batch ``[B, H, W, 3]`` (float [-1, 1]) on its uint8 pictures."""
  from jaxinv import metrics
  from jaxinv.io.images import to_uint8
  p, g = to_uint8(pred), to_uint8(gt)
  rows = [{"psnr": metrics.psnr(a, b, 255.0), "ssim": metrics.ssim(a, b, 255.0)} for a, b in zip(p, g)]
  if lpips_model is not None:
    to_pm1 = lambda a: np.asarray(a, np.float32) / np.float32(255.0) * 2 - 1
    for row, v in zip(rows, np.asarray(metrics.lpips(lpips_model, to_pm1(p), to_pm1(g)))):
      row["lpips"] = float(v)
  if mask is not None:
    hole = mask.max(axis=-1) > 0.5
    for row, a, b in zip(rows, p, g):
      row["psnr_hole"] = metrics.psnr(a[hole], b[hole], 255.0)
  return rows


def _observation_picture(task, obs: np.ndarray, resolution: int) -> np.ndarray:
  """The observation shown at full size: SR nearest-enlarged, inpaint hole in mid-grey."""
  obs = np.asarray(obs)
  if task.name == "super-resolve":
    f = resolution // obs.shape[1]
    return np.repeat(np.repeat(obs, f, axis=1), f, axis=2)
  if task.name == "inpaint":
    return np.where(task.mask[None] > 0.5, 0.0, obs)
  return obs


def _batches(n: int, batch: int):
  for start in range(0, n, batch):
    yield start, min(start + batch, n)


def run_demo(cfg: DemoConfig, progress: bool = True, log: Callable[[str], None] = print) -> dict:
  """Runs the study; returns ``{"rows": [...], "pictures": {...}, "curves": {(objective, task,
  layer, N): mean loss per step}, "config", "seconds"}``.

  ``rows`` holds one dict per (objective, task, layer, codes, image) with ``psnr``, ``ssim``,
  ``lpips`` (unless ``cfg.lpips`` is None; ``psnr_hole`` for inpaint), the final ``loss`` and
  ``seconds``: wall time of that (objective, task, layer, N) inversion of all images,
  compilation included. Images run in batches of ``cfg.batch`` (the last one padded by
  repeating its last image: images are independent, so padding is inert and one shape
  compiles once); the init is drawn once for all images (``PRNGKey(seed)``, as
  :meth:`jaxinv.inversion.spaces.MultiCode.init` for the whole set), so results do not depend
  on the batch size.
  """
  import jax
  from jaxinv.inversion import spaces
  from jaxinv.inversion.methods import mganprior
  from jaxinv.models.registry import load_model

  model = load_model(cfg.generator, expect_family="pggan")
  res = model.config.resolution
  for layer in cfg.layers:
    model.config.check_layer(int(layer), allow_ends=False)
  vgg_params = None
  if "mse+vgg" in cfg.objectives:
    vgg_params = load_model(cfg.vgg, expect_family="vgg16").params
  lpips_model = load_model(cfg.lpips, expect_family="lpips") if cfg.lpips else None
  data = load_test_digits(res, cfg.images)
  gt = data["images"]
  n_img = len(gt)
  batch = min(cfg.batch, n_img)
  task_objs = _make_tasks(cfg, res)
  runs = cfg.runs()
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=len(runs) * len(range(0, n_img, batch)), desc="demo", unit="inversion",
               dynamic_ncols=True)
  rows, pictures, curves = [], {}, {}
  t_all = time.time()
  try:
    for objective, name, layer, n in runs:
      task = task_objs[name]
      obs = np.asarray(jax.vmap(task.observe)(gt))
      if (name, "gt") not in pictures:
        pictures[(name, "gt")] = gt
        pictures[(name, "obs")] = _observation_picture(task, obs, res)
      mcfg = mganprior.MGANpriorConfig(codes=n, layer=layer, loss=_loss_config(objective, name, res),
                                       optimizer="adam", lr=cfg.lr, steps=cfg.steps,
                                       init="normal", seed=cfg.seed)
      t0 = time.time()
      # one init draw for all images, so an image's start does not depend on its batch
      init_all = spaces.MultiCode(model.module, layer, n).init(jax.random.PRNGKey(cfg.seed), n_img,
                                                               "normal")
      pad = lambda a, k: np.concatenate([a, np.repeat(a[-1:], k, 0)]) if k else a
      restored, losses = [], []
      for start, stop in _batches(n_img, batch):
        k_pad = batch - (stop - start)
        x = pad(obs[start:stop], k_pad)
        init = {k: pad(np.asarray(v)[start:stop], k_pad) for k, v in init_all.items()}
        out = mganprior.invert(model.module, model.params, x, mcfg, degrade=task.degrade,
                               vgg_params=vgg_params if objective == "mse+vgg" else None,
                               init=init, progress=False)
        k = stop - start
        restored.append(np.asarray(task.restore(out.images, x))[:k])
        losses.append(np.asarray(out.loss)[:, :k])
        if bar is not None:
          bar.update(1)
      seconds = time.time() - t0
      restored, loss = np.concatenate(restored), np.concatenate(losses, axis=1)
      pictures[(objective, name, layer, n)] = restored
      curves[(objective, name, layer, n)] = loss.mean(axis=1)
      scores = _score(restored, gt, task.mask if name == "inpaint" else None, lpips_model)
      for i in range(n_img):
        row = {"method": "mganprior", "objective": objective, "task": name, "codes": n,
               "layer": layer, "image": int(data["index"][i]), "label": int(data["labels"][i])}
        row.update(scores[i])
        row.update({"loss": float(loss[-1, i]), "steps": cfg.steps, "seconds": round(seconds, 2)})
        rows.append(row)
      if bar is not None:
        bar.set_postfix(objective=objective, task=name, layer=layer, N=n,
                        psnr=f"{np.mean([r['psnr'] for r in rows[-n_img:]]):.2f}")
    if cfg.encoder and "reconstruct" in cfg.tasks:
      erows, epics = encoder_comparison(cfg, model, data, lpips_model)
      rows += erows
      pictures.update(epics)
  finally:
    if bar is not None:
      bar.close()
  return {"rows": rows, "pictures": pictures, "curves": curves, "config": cfg,
          "seconds": time.time() - t_all}


def encoder_comparison(cfg: DemoConfig, model, data: dict, lpips_model=None) -> tuple[list, dict]:
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
    scores = _score(images, gt, None, lpips_model)
    for i in range(b):
      row = {"method": method, "objective": "mse", "task": "reconstruct", "codes": "", "layer": "",
             "image": int(data["index"][i]), "label": int(data["labels"][i])}
      row.update(scores[i])
      mse = float(np.mean(np.square(images[i] - gt[i])))
      row.update({"loss": mse if loss is None else float(loss[i]), "steps": steps,
                  "seconds": round(seconds, 2)})
      rows.append(row)
  return rows, pictures


def _t975(dof: int) -> float:
  """The 0.975 quantile of Student's t with ``dof`` degrees of freedom."""
  from scipy import stats   # a dependency of scikit-image
  return float(stats.t.ppf(0.975, dof))


def _mean_std_ci(vals) -> tuple[float, float, float]:
  """Mean, sample standard deviation and 95 % confidence half-width of the mean (Student's t;
  0 for one value)."""
  vals = np.asarray(vals, np.float64)
  if len(vals) < 2:
    return float(np.mean(vals)), 0.0, 0.0
  std = float(np.std(vals, ddof=1))
  return float(np.mean(vals)), std, _t975(len(vals) - 1) * std / float(np.sqrt(len(vals)))


def paired_differences(rows: Sequence[dict]) -> list[dict]:
  """Differences between two runs on the same images, per image then averaged: each N against
  the next smaller N (same objective, task, layer; ``comparison`` ``"N=b - N=a"``) and every
  other objective against ``mse`` (same task, layer, N; ``"mse+vgg - mse"``). Per metric the
  mean difference (later minus earlier) and ``<metric>_ci95`` (Student's t over images). Paired,
  so the spread between digits — much larger than these effects — cancels."""
  by: dict = {}
  for r in rows:
    if r.get("method", "mganprior") == "mganprior":
      by.setdefault((r["objective"], r["task"], r["layer"], r["codes"]), {})[r["image"]] = r
  pairs = []
  for o, t, l, n in by:
    smaller = [m for (o2, t2, l2, m) in by if (o2, t2, l2) == (o, t, l) and m < n]
    if smaller:
      pairs.append((f"N={n} - N={max(smaller)}", (o, t, l, max(smaller)), (o, t, l, n)))
  for o, t, l, n in by:
    if o != "mse" and ("mse", t, l, n) in by:
      pairs.append((f"{o} - mse", ("mse", t, l, n), (o, t, l, n)))
  out = []
  for label, key_a, key_b in pairs:
    a, b = by[key_a], by[key_b]
    images = [i for i in a if i in b]
    s = {"comparison": label, "objective": key_b[0], "task": key_b[1], "layer": key_b[2],
         "codes": key_b[3], "images": len(images)}
    for k in METRICS:
      if k in a[images[0]]:
        mean, _, ci = _mean_std_ci([b[i][k] - a[i][k] for i in images])
        s[k], s[f"{k}_ci95"] = mean, ci
    out.append(s)
  return out


def summarize(rows: Sequence[dict]) -> list[dict]:
  """Per (method, objective, task, layer, codes): the number of images and, of every metric
  (``psnr``, ``ssim``, ``lpips``, ``psnr_hole``), the mean, the sample standard deviation
  (``<metric>_std``) and the half-width of the 95 % confidence interval of the mean
  (``<metric>_ci95``, Student's t over images; 0 for one image). Encoder-comparison groups
  also carry their ``steps``."""
  groups: dict = {}
  for r in rows:
    key = (r.get("method", "mganprior"), r.get("objective", "mse"), r["task"], r["layer"], r["codes"])
    groups.setdefault(key, []).append(r)
  out = []
  for (method, objective, task, layer, codes), rs in groups.items():
    s = {"method": method, "objective": objective, "task": task, "layer": layer, "codes": codes,
         "images": len(rs)}
    for k in METRICS:
      if k in rs[0]:
        s[k], s[f"{k}_std"], s[f"{k}_ci95"] = _mean_std_ci([r[k] for r in rs])
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


OBJECTIVE_LABELS = {"mse": "MSE", "mse+vgg": "MSE+VGG"}
_METRIC_AXES = {"psnr": "PSNR (dB)", "lpips": "LPIPS (alex), lower is better"}


def plot_figure(summary: Sequence[dict], cfg: DemoConfig, curves: dict | None = None):
  """The study's figure (a matplotlib Figure). One row per metric (PSNR; LPIPS when measured),
  one column per task: the metric vs N with one line per (objective, layer), mean ± 95 %
  confidence interval over the images (inpainting also the hole-only PSNR, dashed). With
  ``curves`` a last column of the mean loss per step at the largest N of each objective."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker
  study = [s for s in summary if s["method"] == "mganprior"]
  metrics_shown = ["psnr"] + (["lpips"] if any("lpips" in s for s in study) else [])
  ncol = len(cfg.tasks) + (1 if curves else 0)
  fig, axes = plt.subplots(len(metrics_shown), ncol, figsize=(4.4 * ncol, 3.6 * len(metrics_shown)),
                           squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  lines_of = [(o, l) for o in cfg.objectives for l in sorted({l for l, _ in cfg.grid_of(o)})]
  style = {key: (colors[i % len(colors)], "o" if key[0] == "mse" else "^")
           for i, key in enumerate(lines_of)}
  for r, metric in enumerate(metrics_shown):
    for ax, task in zip(axes[r], cfg.tasks):
      for objective, layer in lines_of:
        pts = sorted((s["codes"], s) for s in study if s["task"] == task and s["layer"] == layer
                     and s["objective"] == objective)
        if not pts:
          continue
        xs = [n for n, _ in pts]
        color, marker = style[(objective, layer)]
        label = f"{OBJECTIVE_LABELS[objective]}, layer {layer}"
        ax.errorbar(xs, [s[metric] for _, s in pts], yerr=[s[f"{metric}_ci95"] for _, s in pts],
                    marker=marker, color=color, capsize=3, label=label)
        if metric == "psnr" and "psnr_hole" in pts[0][1]:
          ax.errorbar(xs, [s["psnr_hole"] for _, s in pts],
                      yerr=[s["psnr_hole_ci95"] for _, s in pts], marker=marker, color=color,
                      capsize=3, linestyle="--", label=f"{label}, hole only")
      ax.set_xscale("log")
      ax.set_xticks(list(cfg.codes))
      ax.set_xticklabels([str(c) for c in cfg.codes])
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
      ax.set_xlabel("number of codes N")
      ax.set_ylabel(_METRIC_AXES[metric])
      ax.set_title(task)
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7)
  if curves:
    loss_axes = [axes[r][-1] for r in range(len(metrics_shown))]
    for i, objective in enumerate(cfg.objectives):
      ax = loss_axes[min(i, len(loss_axes) - 1)]
      n_max = max(n for _, n in cfg.grid_of(objective))
      for (obj, task, layer, n), curve in sorted(curves.items()):
        if obj == objective and n == n_max:
          ax.plot(np.arange(1, len(curve) + 1), curve,
                  label=f"{OBJECTIVE_LABELS[obj]}, {task}, layer {layer}, N={n}")
      ax.set_yscale("log")
      ax.set_xlabel("step")
      ax.set_ylabel("loss (mean over images)")
      ax.set_title("loss per step, " + (OBJECTIVE_LABELS[objective] if len(loss_axes) > 1
                                        else ", ".join(OBJECTIVE_LABELS[o] for o in cfg.objectives)))
      ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
      ax.grid(alpha=0.3)
      ax.legend(fontsize=6)
    for ax in loss_axes[len(cfg.objectives):]:
      ax.set_axis_off()
  images = max((s["images"] for s in study), default=0)
  fig.suptitle(f"mGANprior on {images} held-out digits (demo-digits prior), {cfg.steps} Adam steps; "
               "mean ± 95% CI over images")
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
  """Writes ``results.csv``, ``summary.csv``, ``paired.csv`` (:func:`paired_differences`; when
  there is a pair), ``psnr_vs_codes.png``, ``grid_<task>.png``, ``config.json`` under
  ``out_dir`` (each atomically); returns ``{name: path}``."""
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
  paired = paired_differences(result["rows"])
  if paired:
    put("paired.csv", _csv_bytes(paired))
  put("psnr_vs_codes.png", _plot_png(summary, cfg, result.get("curves")))
  pics = result["pictures"]
  rows_by = {}
  for r in result["rows"]:
    rows_by[(r.get("method", "mganprior"), r.get("objective", "mse"), r["task"], r["layer"],
             r["codes"], r["image"])] = r
  images = _image_order(result["rows"])[:cfg.grid_images]   # the held-out digits as loaded
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
    runs = [(o, l, n) for o in cfg.objectives for l, n in cfg.grid_of(o)]
    columns = [(task, "gt"), (task, "obs")] + [(o, task, l, n) for o, l, n in runs]
    labels = ["ground truth", "observation"] + [f"{OBJECTIVE_LABELS[o]}, layer {l}, N={n}"
                                                for o, l, n in runs]
    grid(f"grid_{task}.png", columns, labels,
         lambda c, index: ("mganprior",) + c + (index,) if len(c) == 4 else None)
  if ("encoder", "encoder") in pics:
    columns = [("reconstruct", "gt")] + [("encoder", m) for m in ENCODER_METHODS]
    grid("grid_encoder.png", columns, ["ground truth"] + list(ENCODER_METHODS),
         lambda c, index: (c[1], "mse", "reconstruct", "", "", index) if c[0] == "encoder" else None)
  meta = {"config": dataclasses.asdict(cfg), "seconds": round(result["seconds"], 1),
          "grids": grids, "optimizer": "adam",
          "objectives": {"mse": "pixel MSE",
                         "mse+vgg": ("MSE + lambda * 0.001 * mean |VGG16 relu3_3(x) - relu3_3(y)| "
                                     f"(features[:16], {cfg.vgg}, images resized nearest to the "
                                     f"model resolution); lambda per task {VGG_LAMBDA}")},
          "metrics": ("uint8, data_range 255; SSIM Wang et al.; LPIPS v0.1 "
                      f"{cfg.lpips or 'off'} on the whole image; spread: sample std and 95% CI "
                      "half-width (Student's t) over images")}
  if "grid_encoder.png" in grids:
    meta["encoder_rows"] = (f"reconstruct in z with {cfg.encoder}: encoder = G(E(x)) "
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
  """The encoder comparison: one line per method (mean ± 95 % CI of PSNR, SSIM, LPIPS; steps);
  '' without rows."""
  rows = [s for s in summary if s["method"] in ENCODER_METHODS]
  if not rows:
    return ""
  keys = [k for k in ("psnr", "ssim", "lpips") if k in rows[0]]
  lines = [f"{'reconstruct, z':<18}{'steps':>6}" + "".join(f"{k.upper():>18}" for k in keys)]
  for s in sorted(rows, key=lambda s: ENCODER_METHODS.index(s["method"])):
    lines.append(f"{s['method']:<18}{s['steps']:>6}" + "".join(f"{_pm(s, k):>18}" for k in keys))
  return "\n".join(lines)


def _pm(s: dict, key: str) -> str:
  digits = 2 if key.startswith("psnr") else 3
  return f"{s[key]:.{digits}f} ± {s[key + '_ci95']:.{digits}f}"


def format_table(summary: Sequence[dict], key: str = "psnr") -> str:
  """A text table of the mGANprior study: one line per (objective, task, layer), one column per
  N, each cell mean ± 95 % CI half-width over the images."""
  summary = [s for s in summary if s.get("method", "mganprior") == "mganprior" and key in s]
  codes = sorted({s["codes"] for s in summary})
  lines = [f"{'objective':<10}{'task':<14}{'layer':>6}" + "".join(f"{'N=' + str(c):>16}" for c in codes)]
  seen = []
  for s in summary:
    if (s["objective"], s["task"], s["layer"]) not in seen:
      seen.append((s["objective"], s["task"], s["layer"]))
  for objective, task, layer in seen:
    vals = {s["codes"]: s for s in summary
            if (s["objective"], s["task"], s["layer"]) == (objective, task, layer)}
    lines.append(f"{objective:<10}{task:<14}{layer:>6}"
                 + "".join(f"{_pm(vals[c], key) if c in vals else '-':>16}" for c in codes))
  return "\n".join(lines)


def format_paired(paired: Sequence[dict], key: str = "psnr") -> str:
  """One line per paired comparison: mean difference ± 95 % CI of ``key``."""
  lines = [f"{'comparison':<16}{'objective':<10}{'task':<14}{'layer':>6}{'N':>4}{key + ' diff':>20}"]
  for s in paired:
    if key in s:
      lines.append(f"{s['comparison']:<16}{s['objective']:<10}{s['task']:<14}{s['layer']:>6}"
                   f"{s['codes']:>4}{_pm(s, key):>20}")
  return "\n".join(lines)
