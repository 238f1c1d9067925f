"""``jaxinv invert --method projector`` and ``--method nvidia-projector``: the StyleGAN2
projector scripts, one problem per image (:mod:`jaxinv.inversion.methods.projector`).

``--method projector`` is rosinality's ``projector.py``: Adam with the script's lr ramps on w
(``--space w``, default) or w+ (``--space wp``) and the synthesis noise maps, latent noise ramp,
noise regulariser and renormalisation. Defaults are the script's: ``--steps 1000 --lr 0.1``,
LPIPS-VGG image loss (``--lpips``, default the built-in ``vgg`` for this method; ``--loss mse``
replaces it by the mean squared error). Targets are loaded at ``min(resolution, 256)`` px
(``--loader``, default ``psp``: PIL bilinear, as torchvision's ``Resize``). Writes
``OUT/<stem>.png``, ``OUT/result.npz`` (``latent [B, D]`` or ``[B, L, D]``, ``noise{i} [B, r, r]``,
``loss [S, B]`` and its terms ``mse_loss``, ``n_loss``, ``p_loss``, ``noise_strength`` per step,
``names``) and ``OUT/config.json`` (the resolved settings).

``--method nvidia-projector`` is NVIDIA's ``projector.py`` on StyleGAN2 / StyleGAN3: w-space
projection from ``w_avg`` (estimated from ``RandomState(123)`` z, as the script), noise
regularisation and renormalisation, lr ramps, w noise ramp
(:class:`~jaxinv.inversion.methods.projector.NvidiaMethod`: an image's noise buffers and w noise
come from its own name and ``--seed``). The perceptual term is LPIPS-VGG (``--loss lpips --lpips
DEST``, the distance NVIDIA's vgg16.pt computes) or ``--loss mse``. Writes ``result.npz`` with
``w [B, num_ws, w_dim]`` (the projected w repeated, as the script's output), the final
``noise{i}`` maps, ``loss [S, B]`` and ``names``, one PNG per image and ``config.json``.
"""

from __future__ import annotations

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)

__all__ = ["run_invert", "METHOD_DEFAULTS", "NVIDIA_DEFAULTS"]

# Per-method defaults of the flags invert.py shares between methods (None there = unset).
METHOD_DEFAULTS = {"steps": 1000, "lr": 0.1, "optimizer": "adam", "space": "w", "lpips": "vgg",
                   "loader": "psp"}
NVIDIA_DEFAULTS = {"steps": 1000, "lr": 0.1}


def _steps_and_lr(args, defaults):
  """The reconstruction-only, Adam-only checks both scripts share; ``(steps, lr)``."""
  flag = f"--method {args.method}"
  if getattr(args, "task", "reconstruct") not in (None, "reconstruct"):
    raise UserError(f"{flag} reconstructs (no --task degradations)")
  steps = defaults["steps"] if args.steps is None else args.steps
  lr = defaults["lr"] if args.lr is None else args.lr
  if (args.optimizer or "adam") != "adam":
    raise UserError(f"{flag} optimises with Adam; drop --optimizer")
  if steps < 1 or not lr > 0:
    raise UserError(f"--steps must be >= 1 and --lr > 0 (got {steps}, {lr})")
  return steps, lr


def _config(args):
  from jaxinv.inversion.methods import projector as proj
  steps, lr = _steps_and_lr(args, METHOD_DEFAULTS)
  space = args.space or METHOD_DEFAULTS["space"]
  if space not in ("w", "wp"):
    raise UserError(f"--method projector optimises --space w or wp, not {space}")
  if args.loss not in ("lpips", "mse", "combine"):
    raise UserError(f"--method projector's image loss is LPIPS (--loss lpips) or --loss mse, "
                    f"not {args.loss}")
  image_loss = "mse" if args.loss == "mse" else "lpips"
  return proj.ProjectorConfig(steps=steps, lr=lr, w_plus=space == "wp", image_loss=image_loss,
                              seed=args.seed)


def _nvidia_config(args):
  from jaxinv.inversion.methods import projector as proj
  steps, lr = _steps_and_lr(args, NVIDIA_DEFAULTS)
  if (getattr(args, "space", None) or "w") != "w":
    raise UserError(f"--method nvidia-projector optimises one w (--space w), not {args.space}")
  if args.loss not in ("lpips", "mse"):
    raise UserError("--method nvidia-projector takes --loss lpips (with --lpips DEST, LPIPS-VGG) "
                    "or --loss mse")
  return proj.ProjectorConfig.nvidia(steps=steps, lr=lr, image_loss=args.loss, lpips_net="vgg",
                                     seed=args.seed)


def _lpips(args, cfg, nvidia: bool):
  """``(lpips params or None, cfg)``: the script's LPIPS network, when the loss uses one."""
  import dataclasses
  if cfg.image_loss != "lpips":
    return None, cfg
  if nvidia:
    lp = load_generator(args.lpips, families="lpips")
    if lp.config.get("net", "vgg") != "vgg":
      raise UserError(f"--lpips {args.lpips}: NVIDIA's projector uses LPIPS-VGG; this is "
                      f"{lp.config.get('net')} (pass --lpips vgg or a converted LPIPS-VGG)")
    return lp.params, cfg
  # invert's --lpips defaults to alex (PadInv's); the script's LPIPS is VGG.
  lp = load_generator(METHOD_DEFAULTS["lpips"] if args.lpips == "alex" else args.lpips,
                      families="lpips")
  return lp.params, dataclasses.replace(cfg, lpips_net=lp.config["net"])


def run_invert(args):
  import numpy as np
  from jaxinv.inversion import run as run_lib
  from jaxinv.inversion.methods import projector as proj
  from jaxinv.io import images as image_io

  nvidia = args.method == "nvidia-projector"
  cfg = _nvidia_config(args) if nvidia else _config(args)
  model = load_generator(args.generator,
                         families=("stylegan2", "stylegan3") if nvidia else "stylegan2")
  if getattr(model.config, "c_dim", 0):
    raise UserError(f"--method {args.method}: conditional generators are not supported (the "
                    "script maps z without labels)")
  lpips_params, cfg = _lpips(args, cfg, nvidia)
  loader = None if nvidia else (args.loader or METHOD_DEFAULTS["loader"])
  if loader is not None and loader not in image_io.LOADERS:
    raise UserError(f"--loader {loader}: unknown; known: {', '.join(image_io.LOADERS)}")
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    size = min(model.config.resolution, 256)
    targets = (image_io.load_images(paths, size) if loader is None
               else image_io.load_images(paths, size, loader=loader))
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  method = (proj.NvidiaMethod if nvidia else proj.Method).create(model.module, model.params, cfg,
                                                                 lpips_params)
  result = run_driver(args, method, stems, {"target": targets})
  if result is None:  # another process of a multi-process run: the first one writes
    return
  settings = run_settings(args)
  settings.update(images=paths, steps=cfg.steps, lr=cfg.lr, optimizer="adam",
                  space="wp" if cfg.w_plus else "w", image_loss=cfg.image_loss)
  if loader is not None:
    settings["loader"] = loader
  run_lib.write_result(args.out, result, settings)
  finish_driver(args)
  label = f"{model.family}, nvidia-projector" if nvidia else f"projector, space {settings['space']}"
  print(f"wrote {args.out}: {len(stems)} images ({label}); final loss "
        + ", ".join(f"{s} {v:.5g}" for s, v in zip(stems, np.asarray(result.stepwise["loss"][-1]))))
