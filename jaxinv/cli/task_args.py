"""The ``--task`` part of ``jaxinv invert``: flags, per-task defaults, observations, task outputs.

Kept apart from :mod:`jaxinv.cli.invert` so that the inversion command only calls four hooks:
:func:`add_arguments`, :func:`apply_defaults`, :func:`prepare` and :func:`write_outputs`.

Per-task defaults are those of the official mGANprior scripts (README §8 of the golden fixtures):

=============  =====  ===  =====  ==========  ===============================
task           layer  N    steps  vgg_lambda  source
=============  =====  ===  =====  ==========  ===============================
reconstruct    6      30   3000   1.0         multi_code_inversion.py
colorize       4      20   1500   1.0         colorization.py
super-resolve  6      30   2000   1.0         super_resolution.py (factor 16, bilinear)
inpaint        4      30   3000   0.1         inpainting.py
denoise        6      30   3000   1.0         (no official script: reconstruction's)
=============  =====  ===  =====  ==========  ===============================

All use SGD lr 1 and the ``Combine`` loss (l1 0, l2 1, relu3_3, L1, size 256).
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError

TASK_DEFAULTS = {
    "reconstruct": {"layer": 6, "codes": 30, "steps": 3000, "vgg_lambda": 1.0},
    "colorize": {"layer": 4, "codes": 20, "steps": 1500, "vgg_lambda": 1.0},
    "super-resolve": {"layer": 6, "codes": 30, "steps": 2000, "vgg_lambda": 1.0, "factor": 16},
    "inpaint": {"layer": 4, "codes": 30, "steps": 3000, "vgg_lambda": 0.1},
    "denoise": {"layer": 6, "codes": 30, "steps": 3000, "vgg_lambda": 1.0},
}



def add_arguments(p):
  """Adds the task flags; the task-dependent defaults are filled in by :func:`apply_defaults`."""
  from jaxinv import tasks
  g = p.add_argument_group("task (defaults per task: official mGANprior scripts)")
  g.add_argument("--task", default="reconstruct", choices=tasks.TASKS,
                 help="what the loss compares: loss = base(degrade(G(v)), observation)")
  g.add_argument("--factor", type=int, default=None, help="super-resolution factor (default 16)")
  g.add_argument("--downsample", default="bilinear", choices=tasks.DOWNSAMPLE_MODES,
                 help="super-resolution operator (bilinear = official, no antialias)")
  g.add_argument("--mask", default=None, help="inpainting mask image (white = missing pixels)")
  g.add_argument("--sigma", type=float, default=None, help="denoising: noise std on the [-1, 1] scale")
  g.add_argument("--observed", action="store_true",
                 help="the images are already observations (low-res / grey / holed / noisy), "
                      "not ground truth to degrade")
  # None = "take the task's default" (see TASK_DEFAULTS); the loss flags still override.
  p.set_defaults(layer=None, codes=None, steps=None, vgg_lambda=None)


def apply_defaults(args) -> None:
  """Fills every flag left unset with the task's official default."""
  for k, v in TASK_DEFAULTS[args.task].items():
    if getattr(args, k, None) is None:
      setattr(args, k, v)
  if args.task != "super-resolve" and args.factor is not None:
    raise UserError(f"--factor only applies to --task super-resolve (got --task {args.task})")
  if args.task != "inpaint" and args.mask is not None:
    raise UserError(f"--mask only applies to --task inpaint (got --task {args.task})")
  if args.task != "denoise" and args.sigma is not None:
    raise UserError(f"--sigma only applies to --task denoise (got --task {args.task})")
  if args.task == "inpaint" and args.mask is None:
    raise UserError("--task inpaint needs --mask FILE (white = missing pixels), e.g. "
                    "mganprior_examples/masks/mask-2.png")
  if args.task == "denoise" and args.sigma is None:
    raise UserError("--task denoise needs --sigma S (noise std on the [-1, 1] scale, e.g. 0.1)")


def make(args, resolution: int):
  """The :class:`jaxinv.tasks.Task` of these flags at the model resolution."""
  import jax
  from jaxinv import tasks
  key = jax.random.fold_in(jax.random.PRNGKey(args.seed), tasks.NOISE_STREAM)
  try:
    return tasks.make_task(args.task, resolution, factor=args.factor, downsample=args.downsample,
                           mask=args.mask, sigma=args.sigma,
                           key=key if args.task == "denoise" else None)
  except ValueError as e:
    raise UserError(str(e)) from None


def prepare(args, paths, resolution: int):
  """Loads the inputs and makes the observations.

  Returns ``(task, observations [B, s, s, 3], ground_truth [B, res, res, 3] | None)``.
  Ground truth is resized to the model resolution; ``--observed`` images to the observation
  size (``res / factor`` for super-resolution). Nothing is written here.
  """
  from jaxinv import tasks
  from jaxinv.cli.common import output_stems
  from jaxinv.io import images as image_io
  task = make(args, resolution)
  try:
    if args.observed:
      return task, tasks.as_observed(task, image_io.load_images(paths, task.observation_size)), None
    gt = image_io.load_images(paths, resolution)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  return task, tasks.observations(task, gt, output_stems(paths), args.seed), gt


def degrade_kwargs(task) -> dict:
  """Keyword arguments for ``mganprior.invert`` (none for plain reconstruction)."""
  return {} if task.name == "reconstruct" else {"degrade": task.degrade}


def settings(args, task) -> dict:
  """What config.json records about the task (its noise key included)."""
  out = {"task": task.name, "observed": bool(args.observed)}
  if task.name == "super-resolve":
    out.update(factor=task.factor, downsample=task.downsample)
  if task.name == "inpaint":
    out.update(mask=os.path.abspath(args.mask), mask_missing_fraction=float(np.mean(task.mask)))
  if task.name == "denoise":
    from jaxinv import tasks
    from jaxinv.inversion import run
    out.update(sigma=task.sigma, noise_key=run.describe(args.seed, tasks.NOISE_STREAM))
  return out


def write_outputs(out_dir, stems, task, outputs, observations, ground_truth) -> None:
  """``<stem>_observation.png``, ``<stem>_restored.png`` and ``<stem>_grid.png`` per image
  (:func:`jaxinv.tasks.pictures`)."""
  if task.name == "reconstruct":
    return
  from jaxinv import tasks
  from jaxinv.io import images as image_io
  for i, stem in enumerate(stems):
    pics = tasks.pictures(task, stem, outputs[i], observations[i],
                          None if ground_truth is None else ground_truth[i])
    for suffix, picture in pics.items():
      image_io.save_png(os.path.join(out_dir, f"{stem}_{suffix}.png"), picture)
