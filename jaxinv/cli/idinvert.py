"""``jaxinv invert --method idinvert``: in-domain GAN inversion (flags, defaults and run).

Writes ``OUT/<stem>.png`` (reconstruction), ``OUT/<stem>_encoder.png`` (the encoder-only
reconstruction), ``OUT/grid.png`` (one labelled row per image: target, encoder-only, optimised,
PSNR against the target under each reconstruction), ``OUT/result.npz`` (``wp [B, L, w_dim]``, ``init_wp``, ``loss [S, B]`` —
the total loss before each step's update — each term as ``loss_<term> [S, B]``, and
``names``) and ``OUT/config.json``. Images load the IDInvert way by default
(``--loader idinvert``: OpenCV-style bilinear resize, no antialiasing).
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)

__all__ = ["add_invert_arguments", "run_invert", "METHOD_DEFAULTS", "load_idinvert_models"]

# Per-method defaults of the flags invert.py shares between methods (None there = unset).
METHOD_DEFAULTS = {"steps": 100, "lr": 0.01, "optimizer": "adam"}


def add_invert_arguments(parser):
  g = parser.add_argument_group("IDInvert (--method idinvert; defaults: --steps 100 --lr 0.01, "
                                "Adam; --encoder is the converted domain-guided encoder)")
  g.add_argument("--perceptual", default=None,
                 help="converted IDInvert perceptual model (jaxinv convert vgg16.pth DEST)")
  g.add_argument("--feat-lambda", type=float, default=5e-5, help="VGG conv4_3 feature MSE weight")
  g.add_argument("--reg-lambda", type=float, default=2.0,
                 help="encoder (in-domain) regulariser weight; 0 = plain w+ optimisation")
  g.add_argument("--loader", default=None,
                 help="image loader convention (jaxinv.io.images.LOADERS); default idinvert")


def load_idinvert_models(args):
  from jaxinv.inversion.methods import idinvert as M
  if not args.encoder:
    raise UserError("IDInvert needs --encoder E: convert styleganinv_*_encoder.pth with jaxinv convert")
  if not args.perceptual and args.feat_lambda != 0:
    raise UserError("IDInvert needs --perceptual F: convert the release's vgg16.pth with jaxinv "
                    "convert (or --feat-lambda 0: no perceptual term)")
  gen = load_generator(args.generator, families=("stylegan", "pggan"))
  enc = load_generator(args.encoder, families="idinvert-encoder")
  vgg = load_generator(args.perceptual, families="keras-vgg16") if args.perceptual else None
  try:
    return M.models_from(gen, enc, vgg)
  except ValueError as e:
    raise UserError(str(e)) from None


def _load(paths, resolution, loader):
  from jaxinv.io import images as image_io
  loader = loader or "idinvert"
  if loader not in image_io.LOADERS:
    raise UserError(f"--loader {loader}: unknown; known: {', '.join(image_io.LOADERS)}")
  try:
    return image_io.load_images(paths, resolution, loader=loader)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None


def run_invert(args):
  from jaxinv.inversion.methods import idinvert as M
  from jaxinv.inversion.run import write_result
  from jaxinv.io import images as image_io

  steps = METHOD_DEFAULTS["steps"] if args.steps is None else args.steps
  lr = METHOD_DEFAULTS["lr"] if args.lr is None else args.lr
  if (args.optimizer or "adam") != "adam":
    raise UserError("--method idinvert optimises with Adam; drop --optimizer")
  if steps < 0 or not lr > 0:
    raise UserError(f"--steps must be >= 0 and --lr > 0 (got {steps}, {lr})")
  settings = M.IDInvertSettings(steps=steps, learning_rate=lr, pix_weight=1.0,
                                feat_weight=args.feat_lambda, reg_weight=args.reg_lambda)
  models = load_idinvert_models(args)
  try:
    paths = image_io.list_images(args.images)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  stems = output_stems(paths)
  targets = _load(paths, models.resolution, args.loader)
  result = run_driver(args, M.Method(models, settings), stems, {"x": targets})
  if result is None:  # another process of a multi-process run: the first one writes
    return
  recon, init_recon = result.images[""], result.images["encoder"]
  picture, _ = invert_grid(stems, targets, init_recon, recon if steps else None, steps)
  config = run_settings(args)
  config.update(images=paths, steps=steps, lr=lr, optimizer="adam", loader=args.loader or "idinvert")
  write_result(args.out, result, config)
  image_io.save_png(os.path.join(args.out, "grid.png"), picture)
  finish_driver(args)
  loss = result.stepwise["loss"]
  final = loss[-1] if len(loss) else []
  print(f"wrote {args.out}: {len(stems)} images" + (
      "; final loss " + ", ".join(f"{s} {v:.5g}" for s, v in zip(stems, final)) if len(final)
      else " (encoder only)"))


def invert_grid(stems, targets, encoded, optimised, steps):
  """``(picture, GridLayout)``: per image the target, ``G(E(x))`` and (unless None) the optimised
  reconstruction (``[B, H, W, 3]`` float [-1, 1] or uint8), PSNR (uint8) against the target
  under each reconstruction."""
  from jaxinv import metrics
  from jaxinv.io import images as image_io
  columns = [targets, encoded] + ([optimised] if optimised is not None else [])
  labels = ["target", "encoder G(E(x))"] + ([f"optimised ({steps} steps)"] if optimised is not None else [])
  u8 = lambda a: a if a.dtype == np.uint8 else image_io.to_uint8(a)   # float [-1, 1] or uint8
  rows, captions = [], []
  for i in range(len(stems)):
    t = u8(np.asarray(targets[i]))
    row = [u8(np.asarray(c[i])) for c in columns]
    rows.append(row)
    captions.append([""] + [f"PSNR {metrics.psnr(x, t, 255.0):.2f} dB" for x in row[1:]])
  return image_io.labeled_grid(rows, list(stems), labels, captions)


# --- jaxinv edit modes ---------------------------------------------------------------------------

EDIT_MODES = ("idinvert-manipulate", "idinvert-interpolate", "idinvert-mix")


def add_edit_arguments(parser):
  g = parser.add_argument_group("IDInvert edits (--mode idinvert-*; codes: wp of a "
                                "jaxinv invert --method idinvert result)")
  g.add_argument("--crop-boundary", action="store_true",
                 help="manipulate: accept a layer-wise boundary made for a larger model by "
                      "cropping it to this generator's [1, L, w_dim] and renormalising")
  g.add_argument("--start", type=float, default=-3.0, help="manipulate: first distance")
  g.add_argument("--end", type=float, default=3.0, help="manipulate: last distance")
  g.add_argument("--steps", type=int, default=7, help="manipulate/interpolate: images per row")
  g.add_argument("--manipulate-layers", default=None,
                 help="manipulate: layers moved, e.g. 0-5 (default: the boundary's own)")
  g.add_argument("--layerwise-strength", action="store_true",
                 help="manipulate: scale truncated layers by the generator's truncation psi")
  g.add_argument("--mix-layers", default="0-3", help="mix: layers taken from the style code")


def _boundary(path, num_layers, w_dim, crop=False):
  from jaxinv import editing
  b = editing.load_boundary(path)
  arr = b["boundary"]
  if arr.ndim == 2:
    if arr.shape[1] != w_dim:
      raise UserError(f"--boundary {path} is [1, {arr.shape[1]}]; the generator's w has {w_dim}")
    arr = np.repeat(arr[:, None], num_layers, axis=1)
  elif arr.shape[1:] != (num_layers, w_dim):
    if not crop:
      raise UserError(f"--boundary {path} is {list(arr.shape)} but this generator's codes are "
                      f"[1, {num_layers}, {w_dim}]; use a boundary made for this model, or pass "
                      "--crop-boundary to crop it (and renormalise)")
    try:   # e.g. a released 256 px boundary on a smaller model: crop, renormalise once
      arr = editing.crop_boundary(arr, num_layers, w_dim)
    except editing.BoundaryError as e:
      raise UserError(f"--boundary {path}: {e}") from None
  layers = [i for i in (b["manipulate_layers"] or []) if i < num_layers] or None
  return arr, layers


def run_edit(args):
  from jaxinv import editing
  from jaxinv.io import images as image_io
  import jax

  gen = load_generator(args.generator, families="stylegan")
  L, D = gen.config.num_ws, gen.config.w_dim
  from jaxinv.io.results import read_wp_result
  wp, names = read_wp_result(args.result, L, D)
  synth = jax.jit(lambda p, w: gen.module.apply({"params": p}, None, w, method="synthesis"))
  if args.steps < 1:
    raise UserError(f"--steps must be >= 1 (got {args.steps})")
  rows, labels = [], []
  if args.mode == "idinvert-manipulate":
    if args.boundary is None:
      raise UserError("--mode idinvert-manipulate needs --boundary (an IDInvert .npy or a "
                      "jaxinv directions .npz)")
    b, layers = _boundary(args.boundary, L, D, crop=args.crop_boundary)
    if args.manipulate_layers is not None:
      try:
        layers = editing.parse_indices(args.manipulate_layers, 0, L - 1)
      except ValueError as e:
        raise UserError(f"--manipulate-layers: {e}") from None
    strength = 1.0
    if args.layerwise_strength:
      ex = gen.extras or {}
      strength = editing.layerwise_manipulation_strength(
          L, ex.get("truncation_psi", 1.0), ex.get("truncation_layers", 0))
    codes = editing.manipulate(wp, b, args.start, args.end, args.steps, layerwise=True,
                               num_layers=L, manipulate_layers=layers, is_code_layerwise=True,
                               is_boundary_layerwise=True, strength=strength)
    rows, labels = list(codes), names
    row_labels = list(names)
    columns = [f"distance {d:+.2f}" for d in np.linspace(args.start, args.end, args.steps)]
  elif args.mode == "idinvert-interpolate":
    if len(wp) < 2:
      raise UserError("--mode idinvert-interpolate needs a result with at least 2 images")
    for i in range(len(wp) - 1):
      rows.append(editing.interpolate(wp[i:i + 1], wp[i + 1:i + 2], args.steps)[0])
      labels.append(f"{names[i]}_to_{names[i + 1]}")
    row_labels = [f"{names[i]} -> {names[i + 1]}" for i in range(len(wp) - 1)]
    columns = [f"t={t:.2f}" for t in np.linspace(0.0, 1.0, args.steps)]
  else:
    try:
      mixed = editing.mix_style(wp, wp, L, args.mix_layers)
    except ValueError as e:
      raise UserError(f"--mix-layers: {e}") from None
    rows = list(mixed)      # row s: style of image s on every content image
    labels = [f"style_{n}" for n in names]
    row_labels = [f"style of {n}" for n in names]
    columns = [f"content {n}" for n in names]
  os.makedirs(args.out, exist_ok=True)
  grid, all_codes = [], []
  for label, codes in zip(labels, rows):
    imgs = np.asarray(synth(gen.params, np.asarray(codes, np.float32)))
    image_io.save_png(os.path.join(args.out, f"{label}.png"), np.concatenate(list(imgs), axis=1))
    grid.append(list(imgs))
    all_codes.append(np.asarray(codes, np.float32))
  picture, _ = image_io.labeled_grid(grid, row_labels, columns)
  image_io.save_png(os.path.join(args.out, "grid.png"), picture)
  from jaxinv.io.results import write_npz
  write_npz(os.path.join(args.out, "codes.npz"), codes=np.stack(all_codes), names=np.asarray(labels))
  print(f"wrote {args.out}: {args.mode} for {len(labels)} row(s) of {len(rows[0])} images")
