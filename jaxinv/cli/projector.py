"""``jaxinv invert --method projector``: rosinality's StyleGAN2 ``projector.py``, one problem per image.

Adam with the script's lr ramps on w (``--space w``, default) or w+ (``--space wp``) and the
synthesis noise maps, latent noise ramp, noise regulariser and renormalisation
(:mod:`jaxinv.inversion.methods.projector`). Defaults are the script's: ``--steps 1000 --lr 0.1``,
LPIPS-VGG image loss (``--lpips``, default the built-in ``vgg`` for this method; ``--loss mse``
replaces it by the mean squared error). Targets are loaded at ``min(resolution, 256)`` px
(``--loader``, default ``psp``: PIL bilinear, as torchvision's ``Resize``).

Writes ``OUT/<stem>.png``, ``OUT/result.npz`` (``latent [B, D]`` or ``[B, L, D]``, ``noise{i}
[B, r, r]``, ``loss [S, B]`` and its terms ``mse_loss``, ``n_loss``, ``p_loss``,
``noise_strength`` per step, ``names``) and ``OUT/config.json`` (the resolved settings).
"""

from __future__ import annotations

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)

__all__ = ["run_invert", "METHOD_DEFAULTS"]

# Per-method defaults of the flags invert.py shares between methods (None there = unset).
METHOD_DEFAULTS = {"steps": 1000, "lr": 0.1, "optimizer": "adam", "space": "w", "lpips": "vgg",
                   "loader": "psp"}


def _config(args):
  from jaxinv.inversion.methods import projector as proj
  if getattr(args, "task", "reconstruct") not in (None, "reconstruct"):
    raise UserError("--method projector reconstructs (no --task degradations)")
  steps = METHOD_DEFAULTS["steps"] if args.steps is None else args.steps
  lr = METHOD_DEFAULTS["lr"] if args.lr is None else args.lr
  if (args.optimizer or "adam") != "adam":
    raise UserError("--method projector optimises with Adam; drop --optimizer")
  if steps < 1 or not lr > 0:
    raise UserError(f"--steps must be >= 1 and --lr > 0 (got {steps}, {lr})")
  space = args.space or METHOD_DEFAULTS["space"]
  if space not in ("w", "wp"):
    raise UserError(f"--method projector optimises --space w or wp, not {space}")
  if args.loss not in ("lpips", "mse", "combine"):
    raise UserError(f"--method projector's image loss is LPIPS (--loss lpips) or --loss mse, "
                    f"not {args.loss}")
  image_loss = "mse" if args.loss == "mse" else "lpips"
  return proj.ProjectorConfig(steps=steps, lr=lr, w_plus=space == "wp", image_loss=image_loss,
                              seed=args.seed)


def run_invert(args):
  import dataclasses

  import numpy as np
  from jaxinv.inversion import run as run_lib
  from jaxinv.inversion.methods import projector as proj
  from jaxinv.io import images as image_io

  cfg = _config(args)
  model = load_generator(args.generator, families="stylegan2")
  gcfg = model.config
  if getattr(gcfg, "c_dim", 0):
    raise UserError("--method projector: conditional generators are not supported (the script "
                    "maps z without labels)")
  lpips_params = None
  if cfg.image_loss == "lpips":
    # invert's --lpips defaults to alex (PadInv's); the script's LPIPS is VGG.
    name = METHOD_DEFAULTS["lpips"] if args.lpips == "alex" else args.lpips
    lp = load_generator(name, families="lpips")
    lpips_params = lp.params
    cfg = dataclasses.replace(cfg, lpips_net=lp.config["net"])
  loader = args.loader or METHOD_DEFAULTS["loader"]
  if loader not in image_io.LOADERS:
    raise UserError(f"--loader {loader}: unknown; known: {', '.join(image_io.LOADERS)}")
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    targets = image_io.load_images(paths, min(gcfg.resolution, 256), loader=loader)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  method = proj.Method.create(model.module, model.params, cfg, lpips_params)
  result = run_driver(args, method, stems, {"target": targets})
  if result is None:  # another process of a multi-process run: the first one writes
    return
  settings = run_settings(args)
  settings.update(images=paths, steps=cfg.steps, lr=cfg.lr, optimizer="adam",
                  space="wp" if cfg.w_plus else "w", image_loss=cfg.image_loss, loader=loader)
  run_lib.write_result(args.out, result, settings)
  finish_driver(args)
  final = result.stepwise["loss"][-1]
  print(f"wrote {args.out}: {len(stems)} images (projector, space {settings['space']}); final "
        "loss " + ", ".join(f"{s} {v:.5g}" for s, v in zip(stems, np.asarray(final))))
