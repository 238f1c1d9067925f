"""``jaxinv directions``: unit editing directions without trained boundaries (SeFa or PCA).

Writes ``OUT/<method>_<k>.npz`` — the plain boundary format ``jaxinv edit`` and
:func:`jaxinv.editing.load_boundary` read (``boundary [1, D]`` or ``[1, L, D]``,
``manipulate_layers``, plus ``value``: eigenvalue or variance) — and ``OUT/<method>_<k>.png``,
a strip of one sample moved along the direction, plus ``OUT/config.json``.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError, load_generator


def register(sub):
  p = sub.add_parser("directions", help="editing directions by SeFa (closed form) or PCA of w",
                     description=__doc__.splitlines()[0])
  p.add_argument("--generator", required=True, help="converted generator directory or bundled name")
  p.add_argument("--method", default="sefa", choices=("sefa", "pca"),
                 help="SeFa (eigenvectors of the style weights) or PCA of sampled w")
  p.add_argument("--num", type=int, default=5, help="how many directions")
  p.add_argument("--layers", default=None, help="SeFa: style layers used, e.g. 0-3 (default all)")
  p.add_argument("--samples", type=int, default=10000, help="PCA: sampled w")
  p.add_argument("--distance", type=float, default=3.0, help="strip: move from -D to +D")
  p.add_argument("--strip", type=int, default=5, help="images per strip")
  p.add_argument("--seed", type=int, default=0, help="key of the sampled z (PCA, strips)")
  p.add_argument("--out", required=True, help="output directory")
  p.set_defaults(func=run, out_kind="dir")


def run(args):
  from jaxinv import editing
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config

  if args.num < 1 or args.strip < 1 or args.samples < 2:
    raise UserError("--num and --strip must be >= 1 and --samples >= 2")
  model = load_generator(args.generator, families=("stylegan", "stylegan2", "pggan"))
  try:
    dirs, vals, space = editing.generator_directions(model, args.method, args.num, args.samples,
                                                     args.seed, args.layers)
  except ValueError as e:
    raise UserError(str(e)) from None
  os.makedirs(args.out, exist_ok=True)
  distances = np.linspace(-args.distance, args.distance, args.strip)
  layers = editing.parse_indices(args.layers) or None
  for k, (d, v) in enumerate(zip(dirs, vals)):
    name = f"{args.method}_{k:02d}"
    editing.save_boundary(os.path.join(args.out, f"{name}.npz"), d[None], layers,
                          value=np.float32(v))
    strip = editing.direction_strip(model, d, distances, seed=args.seed)
    image_io.save_png(os.path.join(args.out, f"{name}.png"), np.concatenate(list(strip), axis=1))
  config = {k: v for k, v in vars(args).items() if k != "func"}
  config.update(space=space, values=[float(v) for v in vals])
  write_config(args.out, config)
  print(f"wrote {args.out}: {len(dirs)} {args.method} directions in {space} "
        f"(values {', '.join(f'{v:.4g}' for v in vals)})")
