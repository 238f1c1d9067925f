"""``jaxinv diffuse``: IDInvert semantic diffusion of a target's centre crop into context images.

Writes ``OUT/<context>.png`` (the diffused result), ``OUT/<context>_pasted.png`` (the crop
pasted into the context: what was fitted, inside the mask), ``OUT/result.npz`` (``wp [B, L,
w_dim]``, ``init_wp``, ``loss [S, B]``, ``loss_pix``, ``loss_feat``, ``names``) and
``OUT/config.json``. Contexts run through the library driver in batches of ``--batch`` (sharded
over the local devices, resumable from ``OUT/.jaxinv-work``); each is independent. The loss is
restricted to the crop and has no regulariser.
"""

from __future__ import annotations

from jaxinv.cli.common import UserError, finish_driver, output_stems, run_driver


def register(sub):
  p = sub.add_parser("diffuse", help="semantic diffusion (IDInvert): blend a target crop into contexts",
                     description=__doc__.splitlines()[0])
  p.add_argument("--generator", required=True, help="converted IDInvert generator directory")
  p.add_argument("--encoder", required=True, help="converted IDInvert encoder directory")
  p.add_argument("--perceptual", required=True, help="converted IDInvert vgg16 directory")
  p.add_argument("--target", required=True, help="image whose centre crop is diffused")
  p.add_argument("--context", required=True, nargs="+", help="context images or folders")
  p.add_argument("--center", type=int, nargs=2, metavar=("X", "Y"), default=None,
                 help="crop centre in model pixels (default: the official 125 145 scaled from 256 px)")
  p.add_argument("--crop", type=int, nargs=2, metavar=("W", "H"), default=None,
                 help="crop size in model pixels (default: the official 110 110 scaled from 256 px)")
  p.add_argument("--steps", type=int, default=100, help="optimisation steps")
  p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
  p.add_argument("--feat-lambda", type=float, default=5e-5,
                 help="weight of the VGG conv4_3 feature term")
  p.add_argument("--loader", default="idinvert", help="image loader convention (default idinvert)")
  p.add_argument("--chunk", type=int, default=50, help="steps per compiled scan chunk")
  p.add_argument("--batch", type=int, default=8,
                 help="contexts per compiled batch (sharded over local devices)")
  p.add_argument("--out", required=True, help="output directory")
  p.set_defaults(func=run, out_kind="dir")


def _box(args, resolution):
  from jaxinv.inversion.methods import idinvert as M
  default = M.DiffuseSettings().box_at(resolution)
  cx, cy = args.center if args.center else default[:2]
  w, h = args.crop if args.crop else default[2:]
  if w < 1 or h < 1:
    raise UserError(f"--crop must be positive, got {w} {h}")
  if cx - w // 2 < 0 or cy - h // 2 < 0 or cx - w // 2 + w > resolution or cy - h // 2 + h > resolution:
    raise UserError(f"--crop {w} {h} at --center {cx} {cy} leaves the {resolution} px image")
  return cx, cy, w, h


def run(args):
  from jaxinv.cli.idinvert import load_idinvert_models, _load
  from jaxinv.inversion.methods import idinvert as M
  from jaxinv.inversion.run import write_result
  from jaxinv.io import images as image_io

  if args.steps < 0 or not args.lr > 0:
    raise UserError(f"--steps must be >= 0 and --lr > 0 (got {args.steps}, {args.lr})")
  if args.batch < 1:
    raise UserError(f"--batch must be >= 1 (got {args.batch})")
  args.optimizer = None
  models = load_idinvert_models(args)
  try:
    ctx_paths = image_io.list_images(args.context)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  stems = output_stems(ctx_paths, "context images")
  target = _load([args.target], models.resolution, args.loader)[0]
  contexts = _load(ctx_paths, models.resolution, args.loader)
  cx, cy, w, h = _box(args, models.resolution)
  settings = M.DiffuseSettings(steps=args.steps, learning_rate=args.lr,
                               feat_weight=args.feat_lambda, center_x=cx, center_y=cy,
                               crop_x=w, crop_y=h)
  method = M.DiffuseMethod(models, settings, target)
  # Deterministic (no randomness): the seed only names the key rule in config.json.
  result = run_driver(args, method, stems, {"context": contexts}, seed=0)
  if result is None:  # another process of a multi-process run: the first one writes
    return
  config = {k: v for k, v in vars(args).items() if k != "func"}
  config.update(contexts=ctx_paths, center=[cx, cy], crop=[w, h])
  write_result(args.out, result, config)
  finish_driver(args)
  print(f"wrote {args.out}: {len(stems)} diffused images (crop {w}x{h} at {cx},{cy})")
