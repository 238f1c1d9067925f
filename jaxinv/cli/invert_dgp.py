"""``jaxinv invert --method dgp``: DGP restoration / reconstruction with generator fine-tuning.

Same output layout as mGANprior: ``OUT/<stem>.png`` (final image), ``OUT/<stem>_target.png``
(the degraded observation), ``OUT/grid.png`` (rows: input, observation, output),
``OUT/result.npz`` (``z [B, dim_z]``, ``y [B]``, ``z0``, ``loss [S, B]`` before each step's
update, the per-step loss terms, ``select_losses``, ``names``) and ``OUT/config.json``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxinv.cli.common import UserError, load_generator


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


def run(args):
  import jax
  from jaxinv.inversion.methods import dgp
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config, write_npz
  from jaxinv.cli.invert import _stems

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
    stems = _stems(paths)
    origins = np.stack([dgp.load_image(p, res) for p in paths])
  except (image_io.ImageError, OSError) as e:
    raise UserError(str(e)) from None
  classes = args.dgp_class * len(paths) if len(args.dgp_class) == 1 else args.dgp_class
  if len(classes) != len(paths):
    raise UserError(f"--class gives {len(args.dgp_class)} classes for {len(paths)} images")
  if max(classes) >= g.config.n_classes:
    raise UserError(f"--class {max(classes)} is outside this generator's {g.config.n_classes} classes")
  key = jax.random.PRNGKey(args.seed)
  out = {k: [] for k in ("z", "y", "z0", "x", "target", "select_losses", "records")}
  for start in range(0, len(paths), args.batch):
    sl = slice(start, start + args.batch)
    r = dgp.invert(g.module, g.params, d.module, d.params, origins[sl], classes[sl], sched,
                   jax.random.fold_in(key, start), progress=f"dgp {start + 1}/{len(paths)}")
    for k in out:
      out[k].append(r[k])
  cat = {k: np.concatenate(v) for k, v in out.items() if k != "records"}
  recs = {k: np.concatenate([r[k] for r in out["records"]], axis=1) for k in out["records"][0]} \
      if out["records"] and out["records"][0] else {}
  os.makedirs(args.out, exist_ok=True)
  for stem, x, t in zip(stems, cat["x"], cat["target"]):
    image_io.save_png(os.path.join(args.out, f"{stem}.png"), x)
    image_io.save_png(os.path.join(args.out, f"{stem}_target.png"), t)
  grid = image_io.make_grid([list(origins), list(cat["target"]), list(cat["x"])])
  image_io.save_png(os.path.join(args.out, "grid.png"), grid)
  write_npz(os.path.join(args.out, "result.npz"), z=cat["z"], y=cat["y"], z0=cat["z0"],
            select_losses=cat["select_losses"], names=np.asarray(stems),
            loss=recs.get("loss", np.zeros((0, len(stems)), np.float32)),
            **{k: v for k, v in recs.items() if k not in ("loss", "z")})
  settings = {k: v for k, v in vars(args).items() if k != "func"}
  settings.update(images=paths, classes=list(map(int, classes)), schedule_resolved=sched.to_lists())
  write_config(args.out, settings)
  final = recs["loss"][-1] if "loss" in recs and len(recs["loss"]) else []
  print(f"wrote {args.out}: {len(stems)} images ({sched.dgp_mode}); final loss "
        + ", ".join(f"{s} {l:.5g}" for s, l in zip(stems, final)))
