"""``jaxinv invert --method e4e``: encode images with a converted pSp/e4e checkpoint.

Writes ``OUT/<stem>.png`` (the decoder's reconstruction), ``OUT/result.npz`` (``wp [B, L, D]``
= encoder(x) + latent_avg, ``names``) and ``OUT/config.json``. Every input is checked
before anything is written.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError, load_generator, output_stems, run_settings


def run_invert(args):
  from jaxinv.inversion.methods import e4e
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config, write_npz
  if not args.encoder:
    raise UserError("--method e4e needs --encoder DEST: convert the e4e/pSp checkpoint "
                    "(jaxinv convert e4e_ffhq_encode.pt DEST)")
  if args.batch < 1:
    raise UserError(f"--batch must be >= 1 (got {args.batch})")
  model = load_generator(args.encoder, families="psp")
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    x = e4e.load_inputs(paths, model)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  res = e4e.encode(model, x, batch=args.batch)
  if not np.isfinite(res["wp"]).all():
    raise UserError(f"{args.encoder}: the encoder produced non-finite codes (corrupt weights?)")
  os.makedirs(args.out, exist_ok=True)
  for stem, img in zip(stems, res["images"]):
    image_io.save_png(os.path.join(args.out, f"{stem}.png"), img)
  write_npz(os.path.join(args.out, "result.npz"), wp=res["wp"], names=np.asarray(stems))
  settings = run_settings(args)
  settings["images"] = paths
  write_config(args.out, settings)
  print(f"wrote {args.out}: {len(stems)} images encoded to w+ "
        f"[{res['wp'].shape[1]}, {res['wp'].shape[2]}]")
