"""``jaxinv invert --method pti``: pivotal tuning inversion, one generator copy per image.

Phase 1 projects each image to a pivot w (perceptual distance: LPIPS of ``--projector-lpips``,
the quantity NVIDIA's ``metrics/vgg16.pt`` computes, normally LPIPS-VGG), phase 2 tunes a copy
of the generator per image (L2 + LPIPS of ``--lpips``, normally alex). Writes ``OUT/<stem>.png``
(the tuned generator's render of its pivot), ``OUT/result.npz`` (``w_pivot [B, L, D]``,
``steps [B]`` optimizer steps of phase 2, ``loss [T2, B]``, ``names`` and one
``delta/<param path> [B, ...]`` per tuned synthesis parameter: tuned minus original) and
``OUT/config.json``. Every input is checked before anything is written.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError, load_generator, output_stems


def add_invert_arguments(parser):
  from jaxinv.inversion.methods.pti import PTIConfig
  d = PTIConfig()
  g = parser.add_argument_group("PTI (--method pti; defaults: PTI's hyperparameters.py)")
  g.add_argument("--projector-lpips", default=None, metavar="DEST",
                 help="converted LPIPS model for phase 1 (default: --lpips)")
  g.add_argument("--projector-steps", type=int, default=d.first_inv_steps)
  g.add_argument("--pti-steps", type=int, default=d.max_pti_steps)
  g.add_argument("--pti-lr", type=float, default=d.pti_learning_rate)
  g.add_argument("--lpips-threshold", type=float, default=d.lpips_value_threshold,
                 help="phase 2 stops once LPIPS(G(pivot), x) <= this")
  g.add_argument("--pivots", default=None, metavar="E4E_DEST",
                 help="take each image's pivot from this converted e4e/pSp encoder (its w+ codes, "
                      "PTI's first_inv_type 'w+') instead of the w projector")
  g.add_argument("--locality-reg", action="store_true",
                 help="add the locality regulariser (off in PTI's stock settings)")


def run_invert(args):
  import jax
  from jaxinv.inversion.methods import pti
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config, write_npz
  from converters.table import flatten_paths
  if args.lpips is None:
    raise UserError("--method pti needs --lpips DEST (LPIPS-alex: jaxinv convert "
                    "alex.pth DEST --option backbone=ALEXNET.pth)")
  for flag in ("projector_steps", "pti_steps", "batch"):
    if getattr(args, flag) < 1:
      raise UserError(f"--{flag.replace('_', '-')} must be >= 1 (got {getattr(args, flag)})")
  if not args.pti_lr > 0:
    raise UserError(f"--pti-lr must be > 0 (got {args.pti_lr})")
  gen = load_generator(args.generator, families="stylegan2")
  lp2 = load_generator(args.lpips, families="lpips")
  lp1 = load_generator(args.projector_lpips, families="lpips") if args.projector_lpips else lp2
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    x = image_io.load_images(paths, gen.config.resolution, loader="pti")
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  cfg = pti.PTIConfig(first_inv_steps=args.projector_steps, max_pti_steps=args.pti_steps,
                      pti_learning_rate=args.pti_lr, lpips_value_threshold=args.lpips_threshold,
                      use_locality_regularization=args.locality_reg)
  pivots = None
  if args.pivots:
    from jaxinv.inversion.methods import e4e
    enc = load_generator(args.pivots, families="psp")
    want = (gen.config.num_ws, gen.config.w_dim)
    if (enc.config.encoder.style_count, enc.config.encoder.w_dim) != want:
      raise UserError(f"--pivots {args.pivots} encodes to w+ [{enc.config.encoder.style_count}, "
                      f"{enc.config.encoder.w_dim}]; this generator needs {list(want)}")
    try:
      ex = e4e.load_inputs(paths, enc)
    except image_io.ImageError as e:
      raise UserError(str(e)) from None
    pivots = e4e.encode(enc, ex, batch=args.batch, decode=False)["wp"]
  features = pti.lpips_features(lp1.module, lp1.params)
  lpips_fn = lambda a, b: lp2.module.apply({"params": lp2.params}, a, b)
  res = pti.invert(gen.module, gen.params, x, cfg, features, lpips_fn,
                   jax.random.PRNGKey(args.seed), batch=args.batch, pivots=pivots)
  if not (np.isfinite(res["w_pivot"]).all() and np.isfinite(res["images"]).all()):
    raise UserError("PTI produced non-finite values (check the models and --pti-lr)")
  os.makedirs(args.out, exist_ok=True)
  for stem, img in zip(stems, res["images"]):
    image_io.save_png(os.path.join(args.out, f"{stem}.png"), img)
  deltas = {f"delta/{k}": v for k, v in flatten_paths(res["delta"]).items()}
  write_npz(os.path.join(args.out, "result.npz"), w_pivot=res["w_pivot"], steps=res["steps"],
            loss=res["loss"], names=np.asarray(stems), **deltas)
  settings = {k: v for k, v in vars(args).items() if k != "func"}
  settings["images"] = paths
  write_config(args.out, settings)
  print(f"wrote {args.out}: {len(stems)} images, phase-2 steps "
        + ", ".join(f"{s} {int(n)}" for s, n in zip(stems, res["steps"])))
