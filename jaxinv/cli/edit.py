"""Semantic editing of inverted images: move their codes along a boundary, render each step.

``jaxinv edit --generator DEST --result OUT/result.npz --boundary b.npy --max-step 4.2
--frames F --out DIR`` moves every one of the N codes of each image along the boundary normal
(``z_t = z + (l_t − 1)·max_step·n``, ``l_t = linspace(0, 2, F)``; alpha kept), renders each frame
with the multi-code generator and writes ``DIR/<name>/frame_XXX.png`` plus ``DIR/<name>_strip.png``
(``--strip`` frames, each headed by its distance ``d = (l_t − 1)·max_step`` along the boundary).
The composing layer and N come from the inversion's ``config.json`` (``--layer`` overrides).
Other editing modes are added as further ``--mode`` choices.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli import idinvert as idinvert_cli, padinv as padinv_cli, pti as pti_cli
from jaxinv.cli.common import UserError, load_generator

# Each method's edit modes and flags live in its own module.
MODES = (("mganprior-boundary",) + padinv_cli.EDIT_MODES + idinvert_cli.EDIT_MODES
         + pti_cli.EDIT_MODES)


def register(sub):
  p = sub.add_parser("edit", help="move inverted codes along a semantic boundary",
                     description=__doc__.splitlines()[0])
  p.add_argument("--mode", default="mganprior-boundary", choices=MODES,
                 help="which edit (boundary walk, PadInv map edits, IDInvert manipulations)")
  p.add_argument("--generator", required=True, help="converted generator directory")
  p.add_argument("--result", required=True, help="result.npz of a jaxinv invert run")
  p.add_argument("--boundary", default=None,
                 help="boundary .npy ([1, D] or [D] unit normal) or a .npz written by jaxinv "
                      "directions; required by the boundary modes")
  p.add_argument("--max-step", type=float, default=4.2, help="largest move along the boundary")
  p.add_argument("--frames", type=int, default=240,
                 help="number of steps F (official: fps × duration = 240)")
  p.add_argument("--layer", type=int, default=None,
                 help="composing layer (default: the inversion's, from its config.json)")
  p.add_argument("--strip", type=int, default=10,
                 help="frames shown in the strip PNG (evenly spaced, ends included)")
  p.add_argument("--out", required=True, help="output directory")
  for method in (padinv_cli, idinvert_cli, pti_cli):
    method.add_edit_arguments(p)
  p.set_defaults(func=run, out_kind="dir")


def _layer_of(result_path, override):
  from jaxinv.io.results import ResultFileError, result_setting
  if override is not None:
    return override
  try:
    return int(result_setting(result_path, "layer"))
  except (ResultFileError, TypeError, ValueError):
    raise UserError(f"--result {result_path}: cannot read the composing layer from the "
                    "config.json beside it; pass --layer") from None


def _read_boundary(path):
  """A plain ``.npy`` normal, or the ``.npz`` that ``jaxinv directions`` writes (one direction)."""
  import zipfile
  from jaxinv import editing
  from jaxinv.io.arrays import load_npy
  if zipfile.is_zipfile(path):
    b = editing.load_boundary(path)["boundary"]
    if b.ndim != 2:
      raise UserError(f"--boundary {path}: a layer-wise direction {b.shape}; this mode moves the "
                      "generator's z and needs one [1, z_dim] direction (jaxinv directions on a "
                      "PGGAN writes those)")
  else:
    b = load_npy(path, "--boundary")
  return np.asarray(b, np.float32).reshape(-1)


def _check_boundary(b, path, z_dim):
  if b.shape[0] != z_dim:
    raise UserError(f"--boundary {path} has {b.shape[0]} dimensions but the generator's z has "
                    f"{z_dim}; use a boundary made for this generator's latent space")
  if not np.all(np.isfinite(b)) or not np.linalg.norm(b) > 0:
    raise UserError(f"--boundary {path}: not a finite non-zero vector")
  return b


def strip_grid(name, images, distances):
  """``(picture, GridLayout)``: one labelled row ``name``, a column per frame headed by its
  distance along the boundary."""
  from jaxinv.io import images as image_io
  return image_io.labeled_grid([list(images)], [name], [f"d={d:+.2f}" for d in distances])


def run(args):
  import jax
  from jaxinv import tasks
  from jaxinv.inversion import spaces
  from jaxinv.io import images as image_io
  from jaxinv.models.layered import LayerIndexError

  if args.mode in padinv_cli.EDIT_MODES:
    return padinv_cli.run_edit(args)
  if args.mode in pti_cli.EDIT_MODES:
    return pti_cli.run_edit(args)
  if args.mode in idinvert_cli.EDIT_MODES:
    return idinvert_cli.run_edit(args)
  if args.boundary is None:
    raise UserError("--mode mganprior-boundary needs --boundary b.npy")
  if args.frames < 2:
    raise UserError(f"--frames must be >= 2 (got {args.frames})")
  if args.strip < 1:
    raise UserError(f"--strip must be >= 1 (got {args.strip})")
  boundary = _read_boundary(args.boundary)
  from jaxinv.io.results import read_multicode_result
  z, alpha, names = read_multicode_result(args.result)
  model = load_generator(args.generator, families="pggan")
  layer = _layer_of(args.result, args.layer)
  try:
    space = spaces.MultiCode(model.module, layer, z.shape[1])
  except (LayerIndexError, ValueError) as e:
    raise UserError(str(e)) from None
  if z.shape[2] != space.z_dim or alpha.shape[2] != space.channels:
    raise UserError(f"--result codes z {z.shape} / alpha {alpha.shape} do not fit this generator at "
                    f"layer {layer} (z_dim {space.z_dim}, {space.channels} channels)")
  n = _check_boundary(boundary, args.boundary, space.z_dim)
  frames = np.asarray(tasks.boundary_frames(jax.numpy.asarray(z), n, args.max_step, args.frames))
  distances = (np.linspace(0.0, 2.0, args.frames) - 1.0) * args.max_step   # of frame t along n
  render = jax.jit(jax.vmap(space.render, in_axes=(0, None)))
  os.makedirs(args.out, exist_ok=True)
  for i, name in enumerate(names):
    imgs = np.asarray(render({"z": frames[:, i], "alpha": np.repeat(alpha[i:i + 1], args.frames, 0)},
                             model.params))
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    for t, img in enumerate(imgs):
      image_io.save_png(os.path.join(d, f"frame_{t:03d}.png"), img)
    pick = np.unique(np.round(np.linspace(0, args.frames - 1, min(args.strip, args.frames))).astype(int))
    strip, _ = strip_grid(name, [imgs[t] for t in pick], distances[pick])
    image_io.save_png(os.path.join(args.out, f"{name}_strip.png"), strip)
  print(f"wrote {args.out}: {len(names)} image(s) × {args.frames} frames along {args.boundary} "
        f"(±{args.max_step})")
