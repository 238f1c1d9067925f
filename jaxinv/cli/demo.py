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
  p.add_argument("--codes", default=",".join(map(str, d.codes)), help="numbers of codes N")
  p.add_argument("--layers", default=",".join(map(str, d.layers)), help="composing layers ℓ")
  p.add_argument("--images", type=int, default=d.images, help="held-out test digits to invert")
  p.add_argument("--steps", type=int, default=d.steps, help="Adam steps per inversion")
  p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
  p.add_argument("--seed", type=int, default=d.seed, help="seed of the z initialisation")
  p.add_argument("--encoder", default=d.encoder,
                 help="idinvert-encoder for the generator's z: adds encoder-only, optimisation-only "
                      f"and hybrid reconstruct rows at equal steps (default {d.encoder})")
  p.add_argument("--no-encoder", action="store_true", help="skip the encoder rows")
  p.add_argument("--reg-weight", type=float, default=d.reg_weight,
                 help="in-domain regulariser weight of the hybrid+indomain row")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.set_defaults(func=run, out_kind="dir")


def run(args):
  from jaxinv import demo
  from jaxinv.cli.common import load_generator
  tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
  try:
    cfg = demo.DemoConfig(generator=args.generator, tasks=tasks, codes=_ints(args.codes),
                          layers=_ints(args.layers), images=args.images, steps=args.steps,
                          lr=args.lr, seed=args.seed,
                          encoder=None if args.no_encoder else args.encoder,
                          reg_weight=args.reg_weight)
  except ValueError as e:
    raise UserError(str(e)) from None
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
  result = demo.run_demo(cfg, progress=not args.no_progress)
  paths = demo.write_outputs(result, args.out)
  summary = demo.summarize(result["rows"])
  print(f"mean PSNR (dB) over {cfg.images} held-out digits, {cfg.steps} Adam steps:")
  print(demo.format_table(summary))
  enc_table = demo.format_encoder_table(summary)
  if enc_table:
    print(f"encoder / optimisation / hybrid at equal steps ({cfg.steps}), mean over the same digits:")
    print(enc_table)
  print(f"{len(result['rows'])} rows in {result['seconds']:.0f} s; wrote "
        + ", ".join(sorted(paths)) + f" to {args.out}")
