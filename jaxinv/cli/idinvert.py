"""``jaxinv invert --method idinvert``: in-domain GAN inversion (flags, defaults and run).

Writes ``OUT/<stem>.png`` (reconstruction), ``OUT/<stem>_encoder.png`` (the encoder-only
reconstruction), ``OUT/result.npz`` (``wp [B, L, w_dim]``, ``init_wp``, ``loss [S, B]`` —
the total loss before each step's update — each term as ``loss_<term> [S, B]``, and
``names``) and ``OUT/config.json``. Images load the IDInvert way by default
(``--loader idinvert``: OpenCV-style bilinear resize, no antialiasing).
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError, load_generator

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
  if not args.perceptual:
    raise UserError("IDInvert needs --perceptual F: convert the release's vgg16.pth with jaxinv convert")
  gen = load_generator(args.generator, families="stylegan")
  enc = load_generator(args.encoder, families="idinvert-encoder")
  vgg = load_generator(args.perceptual, families="keras-vgg16")
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
  from jaxinv.inversion.optimize import NonFiniteLossError
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config, write_npz

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
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  if len(set(stems)) != len(stems):
    raise UserError("several input images share a name; outputs are named by stem")
  targets = _load(paths, models.resolution, args.loader)
  batch = max(1, min(args.batch, len(paths)))
  parts = []
  for start in range(0, len(paths), batch):
    x = targets[start:start + batch]
    pad = batch - len(x)
    if pad:    # one batch shape compiles once; images are independent, so padding is inert
      x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
    try:
      r = M.invert(models, x, settings, chunk=args.chunk,
                   progress=f"idinvert {start + 1}-{min(start + batch, len(paths))}/{len(paths)}")
    except NonFiniteLossError as e:
      raise UserError(str(e)) from None
    n = batch - pad
    parts.append({"wp": np.asarray(r.wp)[:n], "init_wp": np.asarray(r.init_wp)[:n],
                  "loss": np.asarray(r.loss)[:, :n],
                  "aux": {k: np.asarray(v)[:, :n] for k, v in r.aux.items()}})
  wp = np.concatenate([p["wp"] for p in parts])
  init_wp = np.concatenate([p["init_wp"] for p in parts])
  loss = np.concatenate([p["loss"] for p in parts], axis=1)
  aux = {k: np.concatenate([p["aux"][k] for p in parts], axis=1) for k in parts[0]["aux"]}
  recon = np.asarray(M.render(models, wp))
  init_recon = np.asarray(M.render(models, init_wp))
  os.makedirs(args.out, exist_ok=True)
  for stem, img, img0 in zip(stems, recon, init_recon):
    image_io.save_png(os.path.join(args.out, f"{stem}.png"), img)
    image_io.save_png(os.path.join(args.out, f"{stem}_encoder.png"), img0)
  write_npz(os.path.join(args.out, "result.npz"), wp=wp, init_wp=init_wp, loss=loss,
            names=np.asarray(stems), **aux)
  config = {k: v for k, v in vars(args).items() if k != "func"}
  config.update(images=paths, steps=steps, lr=lr, optimizer="adam", loader=args.loader or "idinvert")
  write_config(args.out, config)
  final = loss[-1] if len(loss) else []
  print(f"wrote {args.out}: {len(stems)} images" + (
      "; final loss " + ", ".join(f"{s} {v:.5g}" for s, v in zip(stems, final)) if len(final)
      else " (encoder only)"))
