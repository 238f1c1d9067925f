"""PadInv's part of ``jaxinv invert`` (``--method padinv``) and of ``jaxinv edit`` (padinv modes).

Not a subcommand of its own: :mod:`jaxinv.cli.invert` adds :func:`add_invert_arguments`
to its parser and hands ``--method padinv`` to :func:`run_invert`.

``jaxinv invert --method padinv --generator G [--encoder E] --images ... --out OUT
[--steps S] [--space padding|wp] [--lpips LPIPS_DIR]``:

* with ``--encoder``, the PadInv encoder runs batched (the official inversion); with
  ``--steps S > 0`` the (w+, padding maps) of each image are then refined with Adam on
  ``--l2-lambda * MSE + --lpips-lambda * LPIPS + --wnorm-lambda * ||w+ - w_avg||`` (our
  extension; the official code has no per-image optimisation). ``--space wp`` refines w+
  alone with the maps fixed.
* without ``--encoder`` the start is the average w and the generator's own constant and
  zero borders (``--steps`` must then be > 0).

Writes ``OUT/<stem>.png``, ``OUT/result.npz`` (``wp [B, n, w]``, ``map_slot{s} [B, S, S, C]``
(NHWC), ``loss [S, B]`` and its terms ``loss_mse`` / ``loss_lpips`` / ``loss_wnorm``, ``names``)
and ``OUT/config.json``. Runs through the library driver (resumable from ``OUT/.jaxinv-work``).
Images are read as PadInv does: centre square crop, area resize, ``x / 255 * 2 - 1``.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)

__all__ = ["add_invert_arguments", "run_invert", "METHOD_DEFAULTS", "edit_result"]

# Per-method defaults of the flags invert.py shares between methods (None there = unset).
METHOD_DEFAULTS = {"steps": 0, "lr": 0.01, "optimizer": "adam"}


PADINV_SPACES = ("padding", "wp")


def add_invert_arguments(parser):
  """PadInv's flags. ``--space``, ``--lpips``, ``--steps``, ``--lr``, ``--optimizer``,
  ``--l2-lambda``, ``--batch`` and ``--chunk`` are the shared ones of ``jaxinv invert``
  (``--space`` gains the choice ``padding``; ``--lpips DEST`` is the AlexNet LPIPS model)."""
  g = parser.add_argument_group(
      "PadInv (--method padinv; defaults: --steps 0 = encoder only, --lr 0.01, adam, "
      "--space padding = w+ and padding maps jointly, --space wp = w+ alone)")
  g.add_argument("--encoder", default=None, help="converted encoder directory (PadInv or IDInvert, by --method)")
  # --space (padding | wp: refine w+ and padding maps jointly, or w+ alone) and --lpips (the
  # AlexNet LPIPS model of the refinement loss) are the shared invert flags.
  g.add_argument("--lpips-lambda", type=float, default=0.8, help="weight of the LPIPS term")
  g.add_argument("--wnorm-lambda", type=float, default=0.0,
                 help="weight of ||w+ - w_avg|| (our extension; 0 = off)")


def _settings(args):
  from jaxinv.inversion.methods import padinv as M
  if getattr(args, "task", "reconstruct") not in (None, "reconstruct"):
    raise UserError("--method padinv reconstructs (no --task degradations)")
  # --steps of invert defaults per task (None when unset); PadInv's default is 0.
  steps = METHOD_DEFAULTS["steps"] if args.steps is None else args.steps
  lr = METHOD_DEFAULTS["lr"] if args.lr is None else args.lr
  opt = METHOD_DEFAULTS["optimizer"] if args.optimizer is None else args.optimizer
  if opt != "adam":
    raise UserError("--method padinv refines with Adam; drop --optimizer or pass --optimizer adam")
  if steps < 0:
    raise UserError(f"--steps must be >= 0 (got {steps})")
  if not lr > 0:
    raise UserError(f"--lr must be > 0 (got {lr})")
  space = args.space or "padding"
  if space not in PADINV_SPACES:
    raise UserError(f"--method padinv refines --space padding (w+ and maps) or wp (w+ alone), "
                    f"not {space}")
  return M.PadInvSettings(steps=steps, space=space, lr=lr, mse_weight=args.l2_lambda,
                          lpips_weight=args.lpips_lambda if steps else 0.0,
                          wnorm_weight=args.wnorm_lambda)


def run_invert(args):
  from jaxinv.inversion.methods import padinv as M
  from jaxinv.inversion.run import write_result
  from jaxinv.io import images as image_io

  settings = _settings(args)
  gen = load_generator(args.generator, families="padinv-stylegan2")
  enc = load_generator(args.encoder, families="padinv-encoder") if args.encoder else None
  if enc is None and settings.steps == 0:
    raise UserError("--method padinv without --encoder starts from the average w: pass --steps S > 0 "
                    "(or give --encoder E for the official encoder inversion)")
  lpips_fn = lpips_params = None
  if settings.steps and settings.lpips_weight:
    from jaxinv.models import lpips
    lp = load_generator(args.lpips, families="lpips")
    net = lp.config["net"]
    lpips_params = lp.params
    lpips_fn = lambda p, x, y: lpips.lpips_distance(p, x, y, net=net)  # noqa: E731
  res = enc.config.resolution if enc is not None else gen.config.resolution
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    targets = image_io.load_images(paths, res, loader="padinv")
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  method = M.Method(gen, settings, enc, lpips_fn, lpips_params)
  result = run_driver(args, method, stems, {"x": targets})
  if result is None:  # another process of a multi-process run: the first one writes
    return
  config = run_settings(args)
  config.update(images=paths, steps=settings.steps, lr=settings.lr, optimizer="adam",
                slots=sorted(int(k[len("map_slot"):]) for k in result.arrays
                             if k.startswith("map_slot")))
  write_result(args.out, result, config)
  finish_driver(args)
  loss = result.stepwise["loss"]
  final = loss[-1] if len(loss) else []
  print(f"wrote {args.out}: {len(stems)} images" + (
      "; final loss " + ", ".join(f"{s} {v:.5g}" for s, v in zip(stems, final)) if len(final)
      else " (encoder only)"))


def edit_result(generator_dir, result_path, out, *, boundary=None, alphas=(0.0,), rows=None,
                swap_with=None):
  """PadInv edits of a result.npz, written as PNGs under ``out``.

  * ``boundary`` (``.npy``, ``[w]`` or ``[n, w]``): for each alpha, ``wp + alpha * boundary``
    (on ``rows``) rendered with each image's own padding maps → ``<stem>_a{alpha}.png``.
  * ``swap_with`` (another result.npz, same number of images): w+ of this result with the
    padding maps of the other → ``<stem>_style_<other>_maps.png``.
  """
  import jax.numpy as jnp
  from jaxinv.inversion.methods import padinv as M
  from jaxinv.io import images as image_io
  from jaxinv.io.arrays import load_npy
  from jaxinv.io.results import read_padinv_result
  if boundary is not None:
    load_npy(boundary, "--boundary")        # a bad direction file stops before any work
  gen = load_generator(generator_dir, families="padinv-stylegan2")
  wp, maps, names = read_padinv_result(result_path)
  os.makedirs(out, exist_ok=True)
  render = M._jit_render(gen.module)
  written = []
  if boundary is not None:
    b = load_npy(boundary, "--boundary").astype(np.float32)
    b = b.reshape(-1) if b.ndim == 2 and b.shape[0] == 1 else b
    if b.shape[-1] != wp.shape[-1]:
      raise UserError(f"{boundary}: direction of size {b.shape[-1]}, w has {wp.shape[-1]}")
    for a in alphas:
      wp2, maps2 = M.edit_keep_maps(wp, maps, b, a, rows)
      imgs = np.asarray(render(gen.params, wp2, {s: jnp.asarray(m) for s, m in maps2.items()}))
      for n, img in zip(names, imgs):
        p = os.path.join(out, f"{n}_a{a:g}.png")
        image_io.save_png(p, img)
        written.append(p)
  if swap_with is not None:
    wp_o, maps_o, names_o = read_padinv_result(swap_with)
    if len(wp_o) != len(wp) or set(maps_o) != set(maps):
      raise UserError(f"{swap_with}: needs the same number of images and slots as {result_path}")
    wp2, maps2 = M.swap_maps(jnp.asarray(wp), {s: jnp.asarray(m) for s, m in maps_o.items()})
    imgs = np.asarray(render(gen.params, wp2, maps2))
    for n, no, img in zip(names, names_o, imgs):
      p = os.path.join(out, f"{n}_style_{no}_maps.png")
      image_io.save_png(p, img)
      written.append(p)
  return written


# ----------------------------------------------------------------------------- jaxinv edit

EDIT_MODES = ("padinv-keep-maps", "padinv-swap")


def add_edit_arguments(parser):
  g = parser.add_argument_group("PadInv modes (padinv-keep-maps: w+ moved along --boundary, "
                                "alphas (linspace(0, 2, F) - 1) * max_step, padding maps kept; "
                                "padinv-swap: w+ of --result with the maps of --swap-with)")
  g.add_argument("--swap-with", default=None, metavar="RESULT",
                 help="padinv-swap: the result.npz whose padding maps (spatial layout) are used")


def run_edit(args):
  if args.mode == "padinv-keep-maps":
    if args.boundary is None:
      raise UserError("--mode padinv-keep-maps needs --boundary b.npy ([w_dim] or [num_ws, w_dim])")
    if args.frames < 1:
      raise UserError(f"--frames must be >= 1 (got {args.frames})")
    alphas = (np.linspace(0.0, 2.0, args.frames) - 1.0) * args.max_step if args.frames > 1 \
        else np.array([args.max_step])
    written = edit_result(args.generator, args.result, args.out, boundary=args.boundary,
                          alphas=tuple(float(a) for a in alphas))
  else:
    if args.swap_with is None:
      raise UserError("--mode padinv-swap needs --swap-with OTHER/result.npz (the maps to use)")
    written = edit_result(args.generator, args.result, args.out, swap_with=args.swap_with)
  print(f"wrote {len(written)} images to {args.out}")
