"""``jaxinv invert --method pti``: pivotal tuning inversion, one generator copy per image.

Phase 1 projects each image to a pivot w (perceptual distance: LPIPS of ``--projector-lpips``,
default vgg, the quantity NVIDIA's ``metrics/vgg16.pt`` computes), phase 2 tunes a copy of the
generator per image (L2 + LPIPS of ``--lpips``, default alex as PTI). Writes ``OUT/<stem>.png``
(the tuned generator's render of its pivot), ``OUT/result.npz`` (``w_pivot [B, L, D]``,
``steps [B]`` optimizer steps of phase 2, ``loss [T2, B]``, ``names``), ``OUT/deltas/`` (each
image's tuned generator as tuned minus original synthesis parameters, one orbax checkpoint with
a leading image axis: :mod:`jaxinv.io.deltas`; ``jaxinv edit`` reads it) and
``OUT/config.json``. Every input is checked before anything is written.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)


def add_invert_arguments(parser):
  from jaxinv.inversion.methods.pti import PTIConfig
  d = PTIConfig()
  g = parser.add_argument_group("PTI (--method pti; defaults: PTI's hyperparameters.py)")
  g.add_argument("--projector-lpips", default="vgg", metavar="NET",
                 help="LPIPS of phase 1 (NVIDIA's metrics/vgg16.pt computes LPIPS-VGG): built-in "
                      "alex or vgg, or a converted LPIPS directory (default: %(default)s)")
  g.add_argument("--projector-steps", type=int, default=d.first_inv_steps,
                 help="phase 1: steps of the w projector that finds each pivot")
  g.add_argument("--pti-steps", type=int, default=d.max_pti_steps,
                 help="phase 2: most generator-tuning steps per image (the LPIPS early stop may end sooner)")
  g.add_argument("--pti-lr", type=float, default=d.pti_learning_rate,
                 help="phase 2: Adam learning rate of the generator tuning")
  g.add_argument("--lpips-threshold", type=float, default=d.lpips_value_threshold,
                 help="phase 2 stops once LPIPS(G(pivot), x) <= this")
  g.add_argument("--pivots", default=None, metavar="E4E_DEST",
                 help="take each image's pivot from this converted e4e/pSp encoder (its w+ codes, "
                      "PTI's first_inv_type 'w+') instead of the w projector; the same as "
                      "--init encoder --encoder E4E_DEST")
  g.add_argument("--locality-reg", action="store_true",
                 help="add the locality regulariser (off in PTI's stock settings)")


def run_invert(args):
  from jaxinv.inversion.methods import pti
  from jaxinv.inversion.run import write_result
  from jaxinv.io import images as image_io
  from jaxinv.io.deltas import nest, save_deltas
  for flag in ("projector_steps", "pti_steps", "batch"):
    if getattr(args, flag) < 1:
      raise UserError(f"--{flag.replace('_', '-')} must be >= 1 (got {getattr(args, flag)})")
  if not args.pti_lr > 0:
    raise UserError(f"--pti-lr must be > 0 (got {args.pti_lr})")
  from jaxinv.cli.common import as_generator
  gen = as_generator(load_generator(args.generator, families=("stylegan2", "psp")))
  lp2 = load_generator(args.lpips, families="lpips")
  lp1 = load_generator(args.projector_lpips, families="lpips")
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
  source = _pivot_encoder(args)
  if source:
    from jaxinv.cli.common import encoder_codes
    pivots = encoder_codes(source[1], source[0], gen, paths, args.batch)
  features = pti.lpips_features(lp1.module, lp1.params)
  lpips_fn = lambda a, b: lp2.module.apply({"params": lp2.params}, a, b)
  method = pti.Method(gen.module, gen.params, cfg, features, lpips_fn)
  data = {"image": x} if pivots is None else {"image": x, "pivot": np.asarray(pivots, np.float32)}
  result = run_driver(args, method, stems, data)
  if result is None:  # another process of a multi-process run: the first one writes
    return
  if not (np.isfinite(result.arrays["w_pivot"]).all() and np.isfinite(result.images[""]).all()):
    finish_driver(args)
    raise UserError("PTI produced non-finite values (check the models and --pti-lr)")
  delta = nest({k[len("delta/"):]: result.arrays.pop(k) for k in list(result.arrays)
                if k.startswith("delta/")})
  os.makedirs(args.out, exist_ok=True)
  save_deltas(os.path.join(args.out, DELTAS_DIR), delta, stems)
  settings = run_settings(args)
  settings["images"] = paths
  write_result(args.out, result, settings)
  finish_driver(args)
  print(f"wrote {args.out}: {len(stems)} images, phase-2 steps "
        + ", ".join(f"{s} {int(n)}" for s, n in zip(stems, result.arrays["steps"])))


def _pivot_encoder(args):
  """``(flag, encoder dir)`` of the pivots' e4e/pSp encoder (``--pivots E`` or ``--init encoder
  --encoder E``), or None for the w projector."""
  init = getattr(args, "init", None)
  if init not in (None, "encoder"):
    raise UserError(f"--init {init}: PTI starts from the w projector or, with --init encoder "
                    "--encoder E4E_DEST, from an e4e/pSp encoder's w+ codes")
  if init == "encoder":
    if not getattr(args, "encoder", None):
      raise UserError("--init encoder needs --encoder E4E_DEST (a converted e4e/pSp checkpoint)")
    if args.pivots and args.pivots != args.encoder:
      raise UserError("--pivots and --init encoder --encoder name different encoders; give one")
    return "--encoder", args.encoder
  return ("--pivots", args.pivots) if args.pivots else None


EDIT_MODES = ("interfacegan",)
DELTAS_DIR = "deltas"   # beside result.npz


def add_edit_arguments(parser):
  g = parser.add_argument_group("interfacegan (e4e / PTI results; e4e's LatentEditor)")
  g.add_argument("--factors", type=float, nargs="+", default=[-3, -2, -1, 0, 1, 2],
                 help="code + f · direction for each f (e4e's factor_range (-3, 3) by default)")


def run_edit(args):
  """``edit --mode interfacegan``: ``w + f·d`` rendered with each image's generator — the
  tuned one of a PTI result (``w_pivot`` and the ``deltas/`` folder beside its result.npz),
  else the plain one — and written as
  ``OUT/<name>_strip.png`` (frames side by side, e4e's ``tensor2im``: truncated to uint8)
  plus ``OUT/edits.npz`` (``latents [B, F, L, D]``)."""
  import jax
  from jaxinv import editing
  from jaxinv.inversion.methods import pti
  from jaxinv.io import images as image_io
  from jaxinv.io.deltas import DeltaError, load_deltas
  from jaxinv.io.results import read_pivot_result, write_npz
  if args.boundary is None:
    raise UserError("--mode interfacegan needs --boundary DIRECTION (.npy/.npz, [1, D] or [1, L, D])")
  from jaxinv.cli.common import as_generator
  model = as_generator(load_generator(args.generator, families=("stylegan2", "psp")))
  module, params = model.module, model.params
  codes, names, tuned = read_pivot_result(args.result)
  delta = None
  if tuned:
    try:
      delta = load_deltas(os.path.join(os.path.dirname(os.path.abspath(args.result)), DELTAS_DIR),
                          names=names, like=pti.trainable(params))
    except DeltaError as e:
      raise UserError(str(e)) from None
  try:
    d = np.asarray(editing.load_boundary(args.boundary)["boundary"], np.float32)
  except (OSError, ValueError) as e:
    raise UserError(f"--boundary {args.boundary}: {e}") from None
  L, D = module.config.num_ws, module.config.w_dim
  if codes.shape[1:] != (L, D) or d.shape[-1] != D:
    raise UserError(f"codes {list(codes.shape[1:])} / direction {list(d.shape)} do not fit this "
                    f"generator's w+ [{L}, {D}]")
  d = d.reshape((1, -1, D))
  factors = np.asarray(args.factors, np.float32)
  render = jax.jit(lambda p, w: module.apply({"params": p}, None, w, method=module.synthesis))
  os.makedirs(args.out, exist_ok=True)
  lat_all = []
  for i, name in enumerate(names):
    lat = codes[i][None] + factors[:, None, None] * d
    p = params if delta is None else pti.apply_delta(params, jax.tree.map(lambda v: v[i], delta))
    img = np.asarray(render(p, lat))
    u8 = (np.clip((img + 1) / 2, 0, 1) * 255).astype(np.uint8)       # tensor2im: truncation
    image_io.save_png(os.path.join(args.out, f"{name}_strip.png"),
                      np.concatenate(list(u8), axis=1))
    lat_all.append(lat)
  write_npz(os.path.join(args.out, "edits.npz"), latents=np.stack(lat_all), factors=factors,
            names=np.asarray(names))
  print(f"wrote {args.out}: {len(names)} strips of {len(factors)} edits")
