"""``jaxinv generate DEST --latents z.npy --out out.npy``: raw generator output (float32 NCHW, no clamp)."""

from __future__ import annotations

import io
import os

import numpy as np

from jaxinv.cli.common import UserError, check_out_dir, load_generator


def register(sub):
  p = sub.add_parser("generate", help="render latents with a converted generator")
  p.add_argument("generator", help="converted model directory (or a bundled name, e.g. demo-digits)")
  p.add_argument("--latents", required=True, help=".npy of latents, e.g. z [B, z_dim]")
  p.add_argument("--out", required=True, help="output .npy: images [B, C, H, W] float32 (PyTorch layout)")
  p.add_argument("--png-dir", default=None, help="also write one PNG per image here")
  from jaxinv.cli import style_options
  style_options.add_generate_args(p)
  p.add_argument("--classes", default=None,
                 help=".npy of int classes [B] (class-conditional generators, e.g. BigGAN)")
  p.set_defaults(func=run, out_kind="file")


def run(args):
  import jax.numpy as jnp
  from jaxinv.io import images as image_io
  from jaxinv.io.checkpoints import atomic_write_bytes
  from jaxinv.io.arrays import load_npy
  z = load_npy(args.latents, "--latents")
  if args.png_dir:
    check_out_dir(args.png_dir, "--png-dir")
  model = load_generator(args.generator)
  if model.family == "pggan":
    z_dim = model.config.z_dim
    if z.ndim != 2 or z.shape[1] != z_dim:
      raise UserError(f"{args.latents}: latents of shape {z.shape}; this PGGAN needs [B, {z_dim}]")
    img = model.module.apply(model.variables(), jnp.asarray(z, jnp.float32))
  elif model.family in ("stylegan", "stylegan2", "stylegan3"):
    from jaxinv.cli import style_options
    img = style_options.generate(model, z, args)
  elif model.family == "biggan":
    img = _biggan(model, z, args.classes)
  else:
    raise UserError(f"generate does not support the {model.family} family")
  img = np.asarray(img, np.float32)
  buf = io.BytesIO()
  np.save(buf, np.ascontiguousarray(img.transpose(0, 3, 1, 2)))
  atomic_write_bytes(args.out, buf.getvalue())
  if args.png_dir:
    os.makedirs(args.png_dir, exist_ok=True)
    for i, im in enumerate(img):
      image_io.save_png(os.path.join(args.png_dir, f"{i:06d}.png"), im)
  print(f"wrote {args.out}: {img.shape[0]} images, NCHW {img.shape[3]}x{img.shape[1]}x{img.shape[2]}")


def _biggan(model, z, classes_path):
  """BigGAN: ``G(z, shared(y))`` (use_in off), z ``[B, dim_z]``, classes ``[B]``."""
  import jax
  import jax.numpy as jnp
  from jaxinv.models import biggan
  cfg = model.config
  if z.ndim != 2 or z.shape[1] != cfg.dim_z:
    raise UserError(f"latents of shape {z.shape}; this BigGAN needs [B, {cfg.dim_z}]")
  if classes_path is None:
    raise UserError("BigGAN is class-conditional: pass --classes y.npy (int classes [B])")
  from jaxinv.io.arrays import load_npy
  y = load_npy(classes_path, "--classes")
  if y.shape != (z.shape[0],) or y.dtype.kind not in "iu":
    raise UserError(f"{classes_path}: classes of shape {y.shape} ({y.dtype}); need int [{z.shape[0]}]")
  if y.min() < 0 or y.max() >= cfg.n_classes:
    raise UserError(f"{classes_path}: classes must be in [0, {cfg.n_classes})")
  gen = jax.jit(lambda zz, yy: biggan.generate(model.module, model.params, zz, yy))
  return gen(jnp.asarray(z, jnp.float32), jnp.asarray(y, jnp.int32))
