"""``jaxinv demo --out DIR``: the mGANprior study on the bundled demo prior (see :mod:`jaxinv.demo`)."""

from __future__ import annotations

from jaxinv.cli.common import UserError


def _ints(text):
  try:
    vals = tuple(int(v) for v in text.split(",") if v.strip())
  except ValueError:
    raise UserError(f"{text!r} must be comma-separated integers, e.g. 1,2,5") from None
  if not vals:
    raise UserError("an empty list; give comma-separated integers, e.g. 1,2,5")
  return vals


def register(sub):
  from jaxinv import demo
  d = demo.DemoConfig()
  p = sub.add_parser("demo", help="mGANprior study on held-out digits with the bundled prior")
  p.add_argument("--out", required=True, help="output directory (results.csv, plot, grids)")
  p.add_argument("--generator", default=d.generator,
                 help=f"bundled name or converted PGGAN directory (default {d.generator})")
  p.add_argument("--tasks", default=",".join(d.tasks),
                 help=f"comma-separated subset of {','.join(demo.TASK_NAMES)}")
  p.add_argument("--codes", default=",".join(map(str, d.codes)),
                 help="numbers of codes N (default %(default)s)")
  p.add_argument("--layers", default=",".join(map(str, d.layers)),
                 help="composing layers ℓ (default %(default)s)")
  p.add_argument("--images", type=int, default=d.images,
                 help="held-out test digits to invert (default %(default)s)")
  p.add_argument("--batch", type=int, default=d.batch,
                 help="images per compiled inversion (default %(default)s)")
  p.add_argument("--steps", type=int, default=d.steps, help="Adam steps per inversion (default %(default)s)")
  p.add_argument("--objectives", default=",".join(d.objectives),
                 help=f"comma-separated subset of {','.join(demo.OBJECTIVES)}: pixel MSE alone and "
                      "the official MSE + VGG16 relu3_3 (default %(default)s)")
  p.add_argument("--vgg", default=d.vgg,
                 help="VGG16 of mse+vgg: built-in imagenet-vgg16 or a converted directory "
                      "(default %(default)s)")
  p.add_argument("--vgg-layers", default=None,
                 help="layers ℓ run with mse+vgg, a subset of --layers (default: the last one)")
  p.add_argument("--vgg-codes", default=None,
                 help="N values run with mse+vgg, a subset of --codes (default: the smallest and "
                      "the largest)")
  p.add_argument("--lpips", default=d.lpips,
                 help="LPIPS v0.1 metric: built-in alex or vgg, a converted directory, or none "
                      "(default %(default)s)")
  p.add_argument("--grid-images", type=int, default=d.grid_images,
                 help="held-out digits shown in the grids (default %(default)s)")
  p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default %(default)s)")
  p.add_argument("--seed", type=int, default=d.seed, help="seed of the z initialisation (default %(default)s)")
  p.add_argument("--encoder", default=d.encoder,
                 help="idinvert-encoder for the generator's z: adds encoder-only, optimisation-only "
                      f"and hybrid reconstruct rows at equal steps (default {d.encoder})")
  p.add_argument("--no-encoder", action="store_true", help="skip the encoder rows")
  p.add_argument("--reg-weight", type=float, default=d.reg_weight,
                 help="in-domain regulariser weight of the hybrid+indomain row (default %(default)s)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=run, out_kind="dir")


def run(args):
  from jaxinv import demo
  from jaxinv.cli.common import load_generator
  tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
  objectives = tuple(o.strip() for o in args.objectives.split(",") if o.strip())
  lpips = None if str(args.lpips).lower() == "none" else args.lpips
  try:
    cfg = demo.DemoConfig(generator=args.generator, tasks=tasks, codes=_ints(args.codes),
                          layers=_ints(args.layers), images=args.images, batch=args.batch,
                          steps=args.steps, lr=args.lr, seed=args.seed, objectives=objectives,
                          vgg=args.vgg,
                          vgg_layers=_ints(args.vgg_layers) if args.vgg_layers else None,
                          vgg_codes=_ints(args.vgg_codes) if args.vgg_codes else None,
                          lpips=lpips, grid_images=args.grid_images,
                          encoder=None if args.no_encoder else args.encoder,
                          reg_weight=args.reg_weight)
  except ValueError as e:
    raise UserError(str(e)) from None
  import os
  from jaxinv.models.registry import BUILTIN_WEIGHTS, LPIPS_NETS
  vgg_builtin = tuple(n for n in BUILTIN_WEIGHTS if n not in LPIPS_NETS.values())
  lpips_builtin = tuple(LPIPS_NETS) + tuple(LPIPS_NETS.values())
  for flag, name, builtin in (("--vgg", cfg.vgg if "mse+vgg" in cfg.objectives else None, vgg_builtin),
                              ("--lpips", cfg.lpips, lpips_builtin)):
    if name and name not in builtin and not os.path.isdir(name):
      raise UserError(f"{flag} {name}: neither a built-in model ({', '.join(builtin)}) nor a "
                      "converted model directory")
  model = load_generator(cfg.generator, "pggan")
  for layer in cfg.layers:
    try:
      model.config.check_layer(layer, allow_ends=False)
    except ValueError as e:
      raise UserError(f"--layers: {e}") from None
  if cfg.encoder:
    enc = load_generator(cfg.encoder, "idinvert-encoder")
    if tuple(enc.config.code_shape) != (1, model.config.z_dim) or \
        enc.config.resolution != model.config.resolution:
      raise UserError(f"--encoder {cfg.encoder} maps {enc.config.resolution} px to "
                      f"{list(enc.config.code_shape)}, not to this generator's z "
                      f"[1, {model.config.z_dim}] at {model.config.resolution} px "
                      "(or pass --no-encoder)")
  from jaxinv.io.checkpoints import ModelDirError
  try:   # the VGG and LPIPS models load before any inversion runs
    result = demo.run_demo(cfg, progress=not args.no_progress)
  except (ModelDirError, OSError) as e:
    raise UserError(str(e)) from None
  paths = demo.write_outputs(result, args.out)
  summary = demo.summarize(result["rows"])
  n_img = max(s["images"] for s in summary)
  for key, what in (("psnr", "PSNR (dB)"), ("lpips", f"LPIPS ({cfg.lpips})")):
    if any(key in s for s in summary):
      print(f"{what}, mean ± 95% CI over {n_img} held-out digits, {cfg.steps} Adam steps:")
      print(demo.format_table(summary, key))
  paired = demo.paired_differences(result["rows"])
  if paired:
    print(f"paired PSNR differences (dB), mean ± 95% CI over the same {n_img} digits:")
    print(demo.format_paired(paired))
  enc_table = demo.format_encoder_table(summary)
  if enc_table:
    print(f"encoder / optimisation / hybrid at equal steps ({cfg.steps}), same digits:")
    print(enc_table)
  print(f"{len(result['rows'])} rows in {result['seconds']:.0f} s; wrote "
        + ", ".join(sorted(paths)) + f" to {args.out}")
