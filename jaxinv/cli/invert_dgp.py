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

from jaxinv.cli.common import UserError, load_generator, output_stems


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
  from jaxinv.inversion import run
  keys = run.image_keys(args.seed, stems)
  out = {k: [] for k in ("z", "y", "z0", "x", "target", "select_losses", "records", "g_params")}
  for start in range(0, len(paths), args.batch):
    sl = slice(start, start + args.batch)
    r = dgp.invert(g.module, g.params, d.module, d.params, origins[sl], classes[sl], sched,
                   keys[sl], progress=f"dgp {start + 1}/{len(paths)}")
    for k in out:
      out[k].append(r[k])
  cat = {k: np.concatenate(v) for k, v in out.items() if k not in ("records", "g_params")}
  recs = {k: np.concatenate([r[k] for r in out["records"]], axis=1) for k in out["records"][0]} \
      if out["records"] and out["records"][0] else {}
  # DGP's get_metrics against the input (meaningful when the input is the ground truth).
  mets = [dgp.metrics(x, o, sched.dgp_mode) for x, o in zip(cat["x"], origins)]
  os.makedirs(args.out, exist_ok=True)
  for stem, x, t in zip(stems, cat["x"], cat["target"]):
    image_io.save_png(os.path.join(args.out, f"{stem}.png"), x)
    image_io.save_png(os.path.join(args.out, f"{stem}_target.png"), t)
  grid, _ = image_io.labeled_grid([list(origins), list(cat["target"]), list(cat["x"])],
                                  ["input", f"observation ({sched.dgp_mode})", "DGP output"], stems)
  image_io.save_png(os.path.join(args.out, "grid.png"), grid)
  write_npz(os.path.join(args.out, "result.npz"), z=cat["z"], y=cat["y"], z0=cat["z0"],
            select_losses=cat["select_losses"], names=np.asarray(stems),
            **{f"metric_{k}": np.asarray([m[k] for m in mets]) for k in mets[0]},
            loss=recs.get("loss", np.zeros((0, len(stems)), np.float32)),
            **{k: v for k, v in recs.items() if k not in ("loss", "z")})
  _manipulations(args, g, sched, stems, cat, out["g_params"])
  settings = {k: v for k, v in vars(args).items() if k != "func"}
  settings.update(images=paths, classes=list(map(int, classes)), schedule_resolved=sched.to_lists())
  write_config(args.out, settings)
  final = recs["loss"][-1] if "loss" in recs and len(recs["loss"]) else []
  print(f"wrote {args.out}: {len(stems)} images ({sched.dgp_mode}); final loss "
        + ", ".join(f"{s} {l:.5g}" for s, l in zip(stems, final)))


JITTER_STDS = (0.3, 0.5, 0.7)
TRANSFER_CLASSES = tuple(range(151, 294))  # DGP's example.py: dogs and cats
JITTER_STREAM = 1 << 20                     # key stream of the jitter samples (see run.image_key)


def _manipulations(args, g, sched, stems, cat, g_params_batches):
  """DGP's post-reconstruction outputs, each with the image's fine-tuned generator."""
  import jax
  from jaxinv.inversion.methods import dgp
  from jaxinv.io import images as image_io
  mode = sched.dgp_mode
  if mode not in ("jitter", "category_transfer", "morphing"):
    return
  per_image = [jax.tree_util.tree_map(lambda a, i=i: a[i], gp)
               for gp in g_params_batches for i in range(len(jax.tree_util.tree_leaves(gp)[0]))]
  rows = []
  if mode == "jitter":
    from jaxinv.inversion import run
    for i, stem in enumerate(stems):
      noise = np.asarray(jax.random.normal(run.image_key(args.seed, stem, stream=JITTER_STREAM),
                                           (args.jitter_samples, g.config.dim_z)))
      xs = dgp.jitter(g.module, per_image[i], cat["z"][i:i + 1], cat["y"][i:i + 1], noise,
                      JITTER_STDS)
      rows = [list(xs[k * len(noise):(k + 1) * len(noise)]) for k in range(len(JITTER_STDS))]
      image_io.save_png(os.path.join(args.out, f"{stem}_jitter.png"), image_io.make_grid(rows))
  elif mode == "category_transfer":
    classes = [c for c in (args.transfer_classes or TRANSFER_CLASSES) if 0 <= c < g.config.n_classes]
    if not classes:
      raise UserError(f"no --transfer-classes inside this generator's {g.config.n_classes} classes")
    for i, stem in enumerate(stems):
      xs = dgp.category_transfer(g.module, per_image[i], cat["z"][i:i + 1], classes)
      image_io.save_png(os.path.join(args.out, f"{stem}_transfer.png"),
                        image_io.make_grid([list(xs)]))
  elif mode == "morphing":
    if len(stems) != 2:
      raise UserError(f"morphing interpolates between exactly 2 images; got {len(stems)}")
    alphas = [i / 10 for i in range(11)]
    xs = dgp.morph(g.module, per_image[0], per_image[1], cat["z"][0:1], cat["z"][1:2],
                   cat["y"][0:1], cat["y"][1:2], alphas)
    image_io.save_png(os.path.join(args.out, f"{stems[0]}_to_{stems[1]}_morph.png"),
                      image_io.make_grid([list(xs[::-1])]))
