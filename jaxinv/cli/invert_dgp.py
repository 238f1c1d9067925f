"""``jaxinv invert --method dgp``: DGP restoration / reconstruction with generator fine-tuning.

Same output layout as mGANprior: ``OUT/<stem>.png`` (final image), ``OUT/<stem>_target.png``
(the degraded observation), ``OUT/grid.png`` (rows: input, observation, output),
``OUT/result.npz`` (``z [B, dim_z]``, ``y [B]``, ``z0``, ``loss [S, B]`` before each step's
update, the per-step loss terms, ``select_losses``, ``names``, and DGP's ``metric_*`` of the
output against the input image) and ``OUT/config.json``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems,
                               run_driver, run_settings)


def _schedule(args):
  from jaxinv.inversion.methods import dgp
  try:
    sched = dgp.load_schedule(args.schedule)
  except FileNotFoundError as e:
    raise UserError(str(e)) from None
  over = {}
  if args.mode:
    over["dgp_mode"] = args.mode
    over["factor"] = 2 if args.mode == "hybrid" else sched.factor
  if args.select_num is not None:
    if args.select_num < 0:
      raise UserError(f"--select-num must be >= 0 (got {args.select_num})")
    over["select_num"] = args.select_num
  if args.iterations is not None:
    if len(args.iterations) != len(sched.stages) or min(args.iterations) < 0:
      raise UserError(f"--iterations needs {len(sched.stages)} non-negative counts (one per stage "
                      f"of {args.schedule})")
    over["stages"] = tuple(dataclasses.replace(s, iterations=n)
                           for s, n in zip(sched.stages, args.iterations))
  return dataclasses.replace(sched, **over)


def add_invert_arguments(p):
  d = p.add_argument_group("DGP (--method dgp; defaults: the schedule's official script)")
  d.add_argument("--discriminator", default=None, help="converted BigGAN D directory (DGP's D_*.pth)")
  d.add_argument("--class", dest="dgp_class", type=int, nargs="+", default=[-1],
                 help="ImageNet class per image (one value for all); -1 = unknown, searched")
  d.add_argument("--schedule", default="in128_SR_D_biased",
                 help="NAME: a built-in schedule (jaxinv/assets/dgp_schedules/NAME.json) or a JSON file (per-stage lists)")
  d.add_argument("--mode", default=None, help="override the schedule's dgp_mode "
                 "(SR, colorization, inpainting, hybrid, jitter, reconstruct)")
  d.add_argument("--iterations", type=int, nargs="+", default=None,
                 help="override the per-stage iteration counts (e.g. for a quick run)")
  d.add_argument("--select-num", type=int, default=None, help="override the number of z candidates")
  d.add_argument("--jitter-samples", type=int, default=30,
                 help="jitter mode: samples per std (stds 0.3, 0.5, 0.7) from each fine-tuned G")
  d.add_argument("--transfer-classes", type=int, nargs="+", default=None,
                 help="category_transfer mode: target classes (default DGP's 151..293, "
                      "limited to the generator's classes)")


def run_invert(args):
  from jaxinv.inversion import run as run_lib
  from jaxinv.inversion.methods import dgp
  from jaxinv.io import images as image_io

  if args.discriminator is None:
    raise UserError("--method dgp needs --discriminator D_DIR (convert DGP's D_*.pth with "
                    "jaxinv convert D_128.pth D_DIR)")
  g = load_generator(args.generator, families="biggan")
  d = load_generator(args.discriminator, families="biggan_d")
  res = g.config.resolution
  if d.config.resolution != res:
    raise UserError(f"--discriminator is {d.config.resolution}px but --generator is {res}px")
  sched = _schedule(args)
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    origins = np.stack([dgp.load_image(p, res) for p in paths])
  except (image_io.ImageError, OSError) as e:
    raise UserError(str(e)) from None
  classes = args.dgp_class * len(paths) if len(args.dgp_class) == 1 else args.dgp_class
  if len(classes) != len(paths):
    raise UserError(f"--class gives {len(args.dgp_class)} classes for {len(paths)} images")
  if max(classes) >= g.config.n_classes:
    raise UserError(f"--class {max(classes)} is outside this generator's {g.config.n_classes} classes")
  mode = sched.dgp_mode
  transfer = ()
  if mode == "category_transfer":
    transfer = tuple(c for c in (args.transfer_classes or TRANSFER_CLASSES)
                     if 0 <= c < g.config.n_classes)
    if not transfer:
      raise UserError(f"no --transfer-classes inside this generator's {g.config.n_classes} classes")
  if mode == "morphing":
    if len(stems) != 2:
      raise UserError(f"morphing interpolates between exactly 2 images; got {len(stems)}")
    args.batch = max(args.batch, 2)
  method = dgp.Method(g.module, g.params, d.module, d.params, sched,
                      jitter_samples=args.jitter_samples, jitter_stds=JITTER_STDS,
                      transfer_classes=transfer)
  data = {"origin": origins, "class": np.asarray(classes, np.int32),
          "jitter_key": np.stack([np.asarray(run_lib.image_key(args.seed, s, stream=JITTER_STREAM))
                                  for s in stems])}
  result = run_driver(args, method, stems, data)
  if result is None:  # another process of a multi-process run: the first one writes
    return
  morph = result.images.pop("morph", None)
  settings = run_settings(args)
  settings.update(images=paths, classes=list(map(int, classes)), schedule_resolved=sched.to_lists())
  run_lib.write_result(args.out, result, settings)
  if morph is not None:
    image_io.save_png(os.path.join(args.out, f"{stems[0]}_to_{stems[1]}_morph.png"), morph[0])
  grid, _ = image_io.labeled_grid([list(origins), list(result.images["target"]),
                                   list(result.images[""])],
                                  ["input", f"observation ({mode})", "DGP output"], stems)
  image_io.save_png(os.path.join(args.out, "grid.png"), grid)
  finish_driver(args)
  loss = result.stepwise["loss"]
  final = loss[-1] if len(loss) else []
  print(f"wrote {args.out}: {len(stems)} images ({mode}); final loss "
        + ", ".join(f"{s} {l:.5g}" for s, l in zip(stems, final)))


JITTER_STDS = (0.3, 0.5, 0.7)
TRANSFER_CLASSES = tuple(range(151, 294))  # DGP's example.py: dogs and cats
JITTER_STREAM = 1 << 20                     # key stream of the jitter samples (see run.image_key)
