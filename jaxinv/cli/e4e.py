"""``jaxinv invert --method e4e``: encode images with a converted pSp/e4e checkpoint.

Writes ``OUT/<stem>.png`` (the decoder's reconstruction), ``OUT/result.npz`` (``wp [B, L, D]``
= encoder(x) + latent_avg, ``names``) and ``OUT/config.json``. Every input is checked
before anything is written.
"""

from __future__ import annotations


import numpy as np

from jaxinv.cli.common import (UserError, finish_driver, load_generator, output_stems, run_driver,
                               run_settings)


def run_invert(args):
  from jaxinv.inversion.methods import e4e
  from jaxinv.inversion.run import write_result
  from jaxinv.io import images as image_io
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
  result = run_driver(args, e4e.Method(model), stems, {"image": x})
  if result is None:  # another process of a multi-process run: the first one writes
    return
  if not np.isfinite(result.arrays["wp"]).all():
    finish_driver(args)
    raise UserError(f"{args.encoder}: the encoder produced non-finite codes (corrupt weights?)")
  settings = run_settings(args)
  settings["images"] = paths
  write_result(args.out, result, settings)
  finish_driver(args)
  res = result.arrays
  print(f"wrote {args.out}: {len(stems)} images encoded to w+ "
        f"[{res['wp'].shape[1]}, {res['wp'].shape[2]}]")
