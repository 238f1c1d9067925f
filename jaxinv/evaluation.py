"""Scoring folders of predictions against ground truth: pairing by file stem and three protocols.

* :func:`evaluate_dirs` — PSNR, SSIM (Wang et al.: Gaussian σ 1.5, population covariance), SSIM
  with scikit-image's defaults (7×7 box, sample covariance) on uint8 [0, 255], and optionally
  LPIPS v0.1; with an inpainting mask only the hole is scored, as DGP does.
* :func:`evaluate_padinv` — PadInv's protocol: the prediction resized (nearest) to the source
  size, per-image MSE on [-1, 1] and AlexNet LPIPS.
* :func:`evaluate_dgp` — DGP's ``get_metrics`` (L1 / MSE on [0, 1], PSNR, SSIM as
  scikit-image <= 0.17 computed them) for one of its restoration modes.

Each returns one row ``{"name": stem, <metric>: float, ...}`` per pair and a last row named
``mean``; :func:`jaxinv.io.results.write_metrics_csv` writes them.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from jaxinv.io.errors import InputFileError

__all__ = ["EvaluationError", "PREDICTION_SUFFIX", "AUXILIARY_SUFFIXES", "AUXILIARY_NAMES",
           "DEFAULT_COLUMNS", "DGP_COLUMNS", "pair_by_stem", "load_pair", "evaluate_dirs",
           "evaluate_padinv", "evaluate_dgp"]


class EvaluationError(InputFileError):
  """The folders, images or mask given cannot be scored (message says why and what to do)."""


#: Files jaxinv's own commands write beside ``<stem>.png``: ``<stem>_restored.png`` is the
#: prediction of a restoration task (preferred over ``<stem>.png``); the others are pictures of
#: the run (observation, grids, targets...) and never scored.
PREDICTION_SUFFIX = "_restored"
AUXILIARY_SUFFIXES = ("_observation", "_grid", "_target", "_encoder", "_pasted", "_jitter",
                      "_transfer")
AUXILIARY_NAMES = ("grid", "masked_grid")

DEFAULT_COLUMNS = ("psnr", "ssim", "ssim_skimage")
DGP_COLUMNS = ("l1_loss_origin", "mse_loss_origin", "psnr", "ssim")


def pair_by_stem(pred_dir: str, gt_dir: str, subset: bool = False) -> list[tuple[str, str, str]]:
  """``[(stem, pred_path, gt_path)]`` sorted by stem; refuses folders that do not pair up.

  ``pred_dir`` may be a ``jaxinv invert`` output folder: ``<stem>_restored.png`` stands for
  ``<stem>`` and the run's other pictures are skipped (see :data:`AUXILIARY_SUFFIXES`).
  ``subset``: ground-truth images without a prediction are left out instead of refused.
  """
  from jaxinv.io.images import IMAGE_EXTENSIONS

  def index(folder, what):
    if not os.path.isdir(folder):
      raise EvaluationError(f"{what} {folder} is not a folder")
    out = {}
    for f in sorted(os.listdir(folder)):
      stem, ext = os.path.splitext(f)
      if ext.lower() not in IMAGE_EXTENSIONS:
        continue
      if stem in out:
        raise EvaluationError(f"{what} {folder} has two images with stem {stem!r} "
                              f"({os.path.basename(out[stem])}, {f}); keep one")
      out[stem] = os.path.join(folder, f)
    if not out:
      raise EvaluationError(f"{what} {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return out

  gt = index(gt_dir, "GT_DIR")
  pred = _predictions(index(pred_dir, "PRED_DIR"), gt)
  only_p, only_g = sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))
  if subset:
    only_g = []
  if only_p or only_g:
    def few(xs):
      return ", ".join(xs[:5]) + (f" … (+{len(xs) - 5})" if len(xs) > 5 else "")
    parts = []
    if only_p:
      parts.append(f"{len(only_p)} prediction(s) without ground truth: {few(only_p)}")
    if only_g:
      parts.append(f"{len(only_g)} ground truth image(s) without prediction: {few(only_g)} "
                   "(--subset scores only the predictions present)")
    raise EvaluationError("images do not pair up by file stem — " + "; ".join(parts)
                          + ". Name each prediction like its ground truth (e.g. 0001.png ↔ 0001.jpg)")
  return [(s, pred[s], gt[s]) for s in sorted(pred)]


def _predictions(found: dict, gt: dict) -> dict:
  """``{stem: path}`` of the predictions among a folder's images (jaxinv's naming understood).

  A name the ground truth also has is always a prediction, so ground truth named like an
  auxiliary picture (``x_grid.png``) still pairs."""
  pred = {}
  for stem, path in found.items():
    if stem in gt:
      pred.setdefault(stem, path)
      continue
    if stem.endswith(PREDICTION_SUFFIX) and stem[: -len(PREDICTION_SUFFIX)]:
      pred[stem[: -len(PREDICTION_SUFFIX)]] = path   # the restoration beats the plain rendering
      continue
    base = next((stem[: -len(s)] for s in AUXILIARY_SUFFIXES if stem.endswith(s)), None)
    if stem in AUXILIARY_NAMES or (base and (base in found or base + PREDICTION_SUFFIX in found)):
      continue
    pred.setdefault(stem, path)
  return pred


def load_pair(pred_path, gt_path) -> tuple[np.ndarray, np.ndarray]:
  """Both images as uint8 ``[H, W, 3]``; a prediction of another size is resized (bicubic, warned)."""
  from PIL import Image
  from jaxinv.io.images import load_rgb_uint8
  p, g = load_rgb_uint8(pred_path), load_rgb_uint8(gt_path)
  if p.shape != g.shape:
    warnings.warn(f"{pred_path}: {p.shape[1]}x{p.shape[0]} resized (bicubic) to the ground "
                  f"truth's {g.shape[1]}x{g.shape[0]} ({gt_path})", stacklevel=2)
    p = np.asarray(Image.fromarray(p).resize((g.shape[1], g.shape[0]), Image.BICUBIC))
  return p, g


def _load_pairs(pairs):
  """Every file read before any score (a bad file stops the run with nothing written)."""
  from jaxinv.io.images import ImageError
  try:
    return [(s,) + load_pair(p, g) for s, p, g in pairs]
  except ImageError as e:
    raise EvaluationError(f"{e}; nothing written") from None


def _with_mean(rows: list[dict]) -> list[dict]:
  """``rows`` plus the ``mean`` row (float64 means; an infinite PSNR stays infinite)."""
  if not rows:
    raise EvaluationError("no image pairs to score")
  keys = [k for k in rows[0] if k != "name"]
  mean = {"name": "mean"}
  for k in keys:
    mean[k] = float(np.mean(np.array([r[k] for r in rows], np.float64)))
  return rows + [mean]


LPIPS_MIN_SIDE = 32    # jaxinv.metrics.image_metrics refuses LPIPS on a smaller region


def evaluate_dirs(pred_dir, gt_dir, mask=None, lpips_model=None, subset=False,
                  lpips_optional=False, lpips_name="alex", warn=None) -> list[dict]:
  """Rows ``{"name", "psnr", "ssim", "ssim_skimage"[, "lpips"]}`` plus the ``mean`` row.

  ``mask``: an inpainting mask file (white = missing), resized nearest to each (square) image;
  only the hole is scored. ``lpips_model``: a loaded ``lpips`` model, or None for no LPIPS.
  LPIPS needs a region (the image, or the mask's hole box) of at least ``LPIPS_MIN_SIDE``
  pixels a side: smaller is an error, or with ``lpips_optional`` (LPIPS not asked for by
  name) one ``warn`` line (default: stderr) and no ``lpips`` column.
  """
  from jaxinv import metrics, tasks
  images = _load_pairs(pair_by_stem(pred_dir, gt_dir, subset=subset))
  masks = {}
  for stem, _, g in images:
    if mask is not None:
      size = g.shape[0]
      if g.shape[0] != g.shape[1]:
        raise EvaluationError(f"--mask needs square images; {stem} is {g.shape[1]}x{g.shape[0]}")
      if size not in masks:
        try:
          masks[size] = tasks.load_mask(mask, size)
        except ValueError as e:
          raise EvaluationError(str(e)) from None
  if lpips_model is not None:
    small = _smallest_region(images, masks)
    if small is not None:
      side, what = small
      problem = (f"LPIPS needs at least {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE} pixels but the {what} "
                 f"is {side} px across")
      if not lpips_optional:
        raise EvaluationError(f"--lpips {lpips_name}: {problem}; score a larger region or pass "
                              "--lpips none; nothing written")
      (warn or _stderr)(f"warning: no LPIPS column: {problem}; PSNR and SSIM only (pass "
                        "--lpips none to silence this)")
      lpips_model = None
  rows = []
  for stem, p, g in images:
    m = masks[g.shape[0]] if mask is not None else None
    try:
      vals = metrics.image_metrics(p, g, mask=m, lpips_model=lpips_model)
    except ValueError as e:
      raise EvaluationError(f"{stem}: {e}") from None
    rows.append({"name": stem, **vals})
  return _with_mean(rows)


def _stderr(line):
  import sys
  print(line, file=sys.stderr)


def _smallest_region(images, masks):
  """``(side, what)`` of the smallest region LPIPS would see (the image, or the hole box of
  ``masks[size]``) when under ``LPIPS_MIN_SIDE``, else None."""
  from jaxinv import metrics
  sides = []
  for stem, _, g in images:
    if not masks:
      sides.append((min(g.shape[:2]), f"image {stem}"))
      continue
    t, b, l, r = metrics.hole_box(masks[g.shape[0]])
    sides.append((min(b - t, r - l), f"--mask hole's box at {g.shape[0]} px"))
  side, what = min(sides)
  return (side, what) if side < LPIPS_MIN_SIDE else None


def evaluate_padinv(pred_dir, gt_dir, lpips_model=None, subset=False) -> list[dict]:
  """PadInv's protocol: rows ``{"name", "mse"[, "lpips"]}`` plus the ``mean`` row.

  The prediction is resized (nearest) to the source size, then per image MSE on [-1, 1] and
  AlexNet LPIPS (``lpips_model``, a loaded ``lpips`` model of net ``alex``; None: no LPIPS).
  """
  import jax.numpy as jnp
  from jaxinv.inversion.methods import padinv as M
  from jaxinv.io import images as image_io
  lp = (None, None)
  if lpips_model is not None:
    from jaxinv.models import lpips
    if lpips_model.config.get("net") != "alex":
      raise EvaluationError(f"PadInv's protocol uses AlexNet LPIPS, this LPIPS model is "
                            f"{lpips_model.config.get('net')}")
    lp = (lambda p, x, y: lpips.lpips_distance(p, x, y, net="alex"), lpips_model.params)
  rows = []
  for stem, p, g in pair_by_stem(pred_dir, gt_dir, subset=subset):
    try:
      pred = image_io.load_rgb_uint8(p).astype(np.float32) / 255 * 2.0 - 1.0
      gt = image_io.load_rgb_uint8(g).astype(np.float32) / 255 * 2.0 - 1.0
    except image_io.ImageError as e:
      raise EvaluationError(f"{e}; nothing written") from None
    vals = M.evaluate_protocol(jnp.asarray(pred[None]), jnp.asarray(gt[None]), *lp)
    rows.append({"name": stem, **{k: float(np.asarray(v)[0]) for k, v in vals.items()}})
  return _with_mean(rows)


def evaluate_dgp(pred_dir, gt_dir, mode: str, subset=False) -> list[dict]:
  """DGP's ``get_metrics`` for ``mode`` (SR, colorization, inpainting, reconstruct): rows
  ``{"name", "l1_loss_origin", "mse_loss_origin", "psnr", "ssim"}`` plus the ``mean`` row."""
  from jaxinv.inversion.methods import dgp
  from jaxinv.io.images import uint8_to_tanh
  rows = []
  for s, p, g in _load_pairs(pair_by_stem(pred_dir, gt_dir, subset=subset)):
    r = dgp.metrics(uint8_to_tanh(p), uint8_to_tanh(g), mode)
    rows.append({"name": s, **{c: r[c] for c in DGP_COLUMNS}})
  return _with_mean(rows)
