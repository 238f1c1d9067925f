"""``jaxinv invert --method nvidia-projector``: NVIDIA's ``projector.py`` on StyleGAN2 / StyleGAN3.

w-space projection from ``w_avg`` (estimated from ``RandomState(123)`` z, as the script),
noise regularisation and renormalisation, lr ramps, w noise ramp
(:class:`jaxinv.inversion.methods.projector.NvidiaMethod`, one problem per image: an image's
noise buffers and w noise come from its own name and ``--seed``). The perceptual term is
LPIPS-VGG (``--loss lpips --lpips DEST``, the distance NVIDIA's vgg16.pt computes) or
``--loss mse``. Writes ``result.npz`` with ``w [B, num_ws, w_dim]`` (the projected w repeated,
as the script's output), the final ``noise{i}`` maps, ``loss [S, B]`` and ``names``, one PNG per
image and ``config.json`` (the resolved settings).
"""

from __future__ import annotations

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)

__all__ = ["run_invert", "METHOD_DEFAULTS"]

METHOD_DEFAULTS = {"steps": 1000, "lr": 0.1}


def _config(args):
  from jaxinv.inversion.methods import projector as proj
  if getattr(args, "task", "reconstruct") not in (None, "reconstruct"):
    raise UserError("--method nvidia-projector reconstructs (no --task degradations)")
  if (args.optimizer or "adam") != "adam":
    raise UserError("--method nvidia-projector optimises with Adam; drop --optimizer")
  if (getattr(args, "space", None) or "w") != "w":
    raise UserError(f"--method nvidia-projector optimises one w (--space w), not {args.space}")
  if args.loss not in ("lpips", "mse"):
    raise UserError("--method nvidia-projector takes --loss lpips (with --lpips DEST, LPIPS-VGG) "
                    "or --loss mse")
  steps = METHOD_DEFAULTS["steps"] if args.steps is None else args.steps
  lr = METHOD_DEFAULTS["lr"] if args.lr is None else args.lr
  if steps < 1 or not lr > 0:
    raise UserError(f"--steps must be >= 1 and --lr > 0 (got {steps}, {lr})")
  return proj.ProjectorConfig.nvidia(steps=steps, lr=lr, image_loss=args.loss, lpips_net="vgg",
                                     seed=args.seed)


def run_invert(args):
  import numpy as np
  from jaxinv.inversion import run as run_lib
  from jaxinv.inversion.methods import projector as proj
  from jaxinv.io import images as image_io
  cfg = _config(args)
  model = load_generator(args.generator, families=("stylegan2", "stylegan3"))
  if getattr(model.config, "c_dim", 0):
    raise UserError("nvidia-projector: conditional generators are not supported (projector.py "
                    "maps z without labels)")
  lpips_params = None
  if cfg.image_loss == "lpips":
    lp = load_generator(args.lpips, families="lpips")
    if lp.config.get("net", "vgg") != "vgg":
      raise UserError(f"--lpips {args.lpips}: NVIDIA's projector uses LPIPS-VGG; this is "
                      f"{lp.config.get('net')} (pass --lpips vgg or a converted LPIPS-VGG)")
    lpips_params = lp.params
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    targets = image_io.load_images(paths, min(model.config.resolution, 256))
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  method = proj.NvidiaMethod.create(model.module, model.params, cfg, lpips_params)
  result = run_driver(args, method, stems, {"target": targets})
  if result is None:  # another process of a multi-process run: the first one writes
    return
  settings = run_settings(args)
  settings.update(images=paths, steps=cfg.steps, lr=cfg.lr, optimizer="adam", space="w",
                  image_loss=cfg.image_loss)
  run_lib.write_result(args.out, result, settings)
  finish_driver(args)
  print(f"wrote {args.out}: {len(stems)} images ({model.family}, nvidia-projector); final loss "
        + ", ".join(f"{s} {v:.5g}" for s, v in zip(stems, np.asarray(result.stepwise["loss"][-1]))))
