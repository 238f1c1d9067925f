"""``jaxinv swap --model DEST --structure A.png… --texture B.png… --out DIR``: Swapping Autoencoder transfer.

Writes ``DIR/grid.png`` (labelled; first row: the texture images, first column: the
structure images, cell (i, j): structure i with texture j), one PNG per pair
(``swap_s{i}_t{j}.png``), with ``--interpolate K`` the strips
``interp_s{i}_t{j}.png`` (K steps from image i's own texture to texture j), and with
``--mask M.png`` the region-limited transfers ``masked_s{i}_t{j}.png`` plus
``masked_grid.png``. ``DIR/run.json`` records the settings.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError


def register(sub):
  p = sub.add_parser("swap", help="Swapping Autoencoder: structure of one image, texture of another",
                     description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True, help="converted swapping_autoencoder model directory")
  p.add_argument("--structure", nargs="+", required=True, metavar="IMG",
                 help="images that give the structure (rows)")
  p.add_argument("--texture", nargs="+", required=True, metavar="IMG",
                 help="images that give the texture (columns)")
  p.add_argument("--out", required=True, help="output directory")
  p.add_argument("--size", type=int, default=None,
                 help="resize inputs to SIZE x SIZE (default: the model's crop_size; multiple of 16)")
  p.add_argument("--interpolate", type=int, default=0, metavar="K",
                 help="also write K-step texture interpolation strips")
  p.add_argument("--mask", default=None, help="grayscale mask: transfer the texture only where white")
  p.add_argument("--noise", choices=("fixed", "zero", "random"), default="fixed",
                 help="fixed: one noise draw shared by all images (default); zero; random: per image")
  p.add_argument("--seed", type=int, default=0, help="key for the fixed/random noise")
  p.add_argument("--batch", type=int, default=8, help="images per compiled call")
  p.set_defaults(func=run, out_kind="dir")


def _names(paths, width=14):
  """File stems as grid labels; a long one (e.g. a hash) cut to ``width`` characters."""
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  return [s if len(s) <= width else s[:width - 3] + "..." for s in stems]


def swap_grid(structures, textures, swaps, s_names, t_names, masked=False):
  """``(picture, GridLayout)``: row 0 the texture images (under a blank corner), then one row
  per structure image: itself, then its swap with each texture (uint8 ``[S, T, H, W, 3]``)."""
  from jaxinv.io import images as image_io
  what = "in the mask" if masked else ""
  rows = [[None] + list(textures)] + [[structures[i]] + list(swaps[i]) for i in range(len(structures))]
  row_labels = ["texture images"] + [f"structure {n}" for n in s_names]
  col_labels = ["structure"] + [" ".join(filter(None, ("texture", n, what))) for n in t_names]
  return image_io.labeled_grid(rows, row_labels, col_labels)


def interpolation_strip(frames, s_name, t_name):
  """``(picture, GridLayout)`` of one ``--interpolate`` strip ``[K, H, W, 3]``: the texture moves
  from structure image ``s_name``'s own (0) to image ``t_name``'s (1)."""
  from jaxinv.io import images as image_io
  alphas = np.linspace(0.0, 1.0, len(frames))
  return image_io.labeled_grid([list(frames)], [f"{s_name} with texture of {t_name}"],
                               [f"texture {a:.2f}" for a in alphas])


def run(args):
  from jaxinv import swapping
  from jaxinv.io import images as image_io
  from jaxinv.io.checkpoints import ModelDirError, atomic_write_json
  from jaxinv.models.registry import load_model

  try:
    model = load_model(args.model, expect_family="swapping_autoencoder")
  except ModelDirError as e:
    raise UserError(str(e)) from None
  cfg = model.config
  size = args.size or cfg.crop_size
  if size % cfg.code_stride:
    raise UserError(f"--size {size} must be a multiple of {cfg.code_stride}")
  if args.interpolate == 1 or args.interpolate < 0:
    raise UserError("--interpolate K needs K >= 2")
  if args.batch < 1:
    raise UserError("--batch must be >= 1")
  for f in list(args.structure) + list(args.texture) + ([args.mask] if args.mask else []):
    if not os.path.isfile(f):
      raise UserError(f"no such image: {f}")
  try:
    s_img = swapping.load_images(args.structure, size)
    t_img = swapping.load_images(args.texture, size)
    mask = swapping.load_mask(args.mask, size) if args.mask else None
  except (OSError, image_io.ImageError) as e:
    raise UserError(f"cannot read an input image: {e}") from None
  sw = swapping.Swapper(model, batch=args.batch, noise=args.noise, seed=args.seed)
  os.makedirs(args.out, exist_ok=True)
  u8 = swapping.to_uint8
  out = u8(sw.swap_all(s_img, t_img))
  for i in range(out.shape[0]):
    for j in range(out.shape[1]):
      image_io.save_png(os.path.join(args.out, f"swap_s{i}_t{j}.png"), out[i, j])
  s_names, t_names = _names(args.structure), _names(args.texture)
  grid, _ = swap_grid(u8(s_img), u8(t_img), out, s_names, t_names)
  image_io.save_png(os.path.join(args.out, "grid.png"), grid)
  written = ["grid.png"]
  if args.interpolate:
    strips = u8(sw.interpolate(s_img, t_img, args.interpolate))
    for i in range(strips.shape[0]):
      for j in range(strips.shape[1]):
        strip, _ = interpolation_strip(strips[i, j], s_names[i], t_names[j])
        image_io.save_png(os.path.join(args.out, f"interp_s{i}_t{j}.png"), strip)
    written.append("interp_s*_t*.png")
  if mask is not None:
    masked = u8(sw.masked_swap(s_img, t_img, mask))
    for i in range(masked.shape[0]):
      for j in range(masked.shape[1]):
        image_io.save_png(os.path.join(args.out, f"masked_s{i}_t{j}.png"), masked[i, j])
    mgrid, _ = swap_grid(u8(s_img), u8(t_img), masked, s_names, t_names, masked=True)
    image_io.save_png(os.path.join(args.out, "masked_grid.png"), mgrid)
    written.append("masked_grid.png")
  atomic_write_json(os.path.join(args.out, "run.json"), {
      "model": os.path.abspath(args.model), "structure": args.structure, "texture": args.texture,
      "size": size, "interpolate": args.interpolate, "mask": args.mask, "noise": args.noise,
      "seed": args.seed})
  print(f"wrote {args.out}: {out.shape[0]}x{out.shape[1]} swaps; " + ", ".join(written))
