"""What every subcommand shares: the user-error type and small argument helpers."""

from __future__ import annotations

import os

__all__ = ["UserError", "check_out_dir", "check_out_file", "load_generator", "output_stems",
           "encoder_codes", "as_generator", "run_driver", "finish_driver", "run_settings",
           "record_method_flags", "METHOD_FLAGS"]


class UserError(Exception):
  """A problem with the user's input: printed as one line, no traceback, exit status 2."""


def load_generator(name_or_dir, families=None):
  """Loads a converted model, turning every loading problem into a :class:`UserError`."""
  from jaxinv.io.checkpoints import ModelDirError
  from jaxinv.models.registry import load_model
  try:
    return load_model(name_or_dir, expect_family=families)
  except (ModelDirError, OSError, ValueError) as e:
    raise UserError(str(e)) from None


def output_stems(paths, what: str = "input images") -> list[str]:
  """The names outputs take from ``paths`` (file stems, ``NAME-SPLIT-i`` for TFDS); refuses repeats."""
  from jaxinv.io.images import image_stem
  stems = [image_stem(p) for p in paths]
  dup = sorted({s for s in stems if stems.count(s) > 1})
  if dup:
    raise UserError(f"several {what} share the name {dup}; outputs are named by stem")
  return stems


def _nearest_existing(path: str) -> str:
  path = os.path.abspath(path)
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return path


def _can_create_in(folder: str) -> bool:
  """Whether a file can be created in ``folder`` (tried, not guessed: root ignores modes, and
  read-only mounts only show when writing)."""
  import tempfile
  try:
    with tempfile.TemporaryFile(dir=folder):
      return True
  except OSError:
    return False


def check_out_dir(path, flag: str = "--out") -> str:
  """Refuses, before any work, an output folder that is a file or cannot be written."""
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{flag} {path} is an existing file; name a folder (new or existing)")
  base = _nearest_existing(path)
  if not os.path.isdir(base):
    raise UserError(f"{flag} {path}: {base} is a file, so the folder cannot be made there")
  if not _can_create_in(base):
    raise UserError(f"{flag} {path}: {base} is not writable; choose a writable place")
  return path


def check_out_file(path, flag: str = "--out") -> str:
  """Refuses, before any work, an output file that is a folder or cannot be written."""
  path = os.fspath(path)
  if os.path.isdir(path):
    raise UserError(f"{flag} {path} is a folder; name the file to write (a path inside it)")
  base = _nearest_existing(os.path.dirname(os.path.abspath(path)))
  if not os.path.isdir(base):
    raise UserError(f"{flag} {path}: {base} is a file, so the output cannot be made there")
  if not _can_create_in(base):
    raise UserError(f"{flag} {path}: {base} is not writable; choose a writable place")
  return path


#: flag (dest) -> the one ``invert --method`` it configures; filled by the invert parser, so a
#: run's config.json records its own method's flags and not every other method's defaults.
METHOD_FLAGS: dict = {}


def record_method_flags(parser, owners: dict, shared=()):
  """Marks every flag of an argument group whose title starts with a key of ``owners`` as that
  method's (``shared`` flags stay everyone's)."""
  for group in parser._action_groups:
    owner = owners.get(group.title.split(" ")[0])
    if owner:
      METHOD_FLAGS.update({a.dest: owner for a in group._group_actions if a.dest not in shared})


def run_settings(args) -> dict:
  """The settings a run records: every flag but the parser's hook and other methods' flags."""
  method = getattr(args, "method", None)
  return {k: v for k, v in vars(args).items()
          if k != "func" and METHOD_FLAGS.get(k, method) == method}


WORK_DIR = ".jaxinv-work"   # inside --out: finished batches and in-flight checkpoints (resume)


def run_driver(args, method, names, load, seed=None):
  """Runs ``method`` through the library driver with ``OUT/.jaxinv-work`` for resume.

  Returns the :class:`jaxinv.inversion.run.Result` (``None`` on a multi-process run's other
  processes). A rerun of the same command continues where a killed one stopped; a non-finite
  loss is a :class:`UserError` and leaves no work folder behind.
  """
  import shutil
  from jaxinv.inversion import run
  from jaxinv.inversion.optimize import NonFiniteLossError
  work = os.path.join(args.out, WORK_DIR)
  try:
    result = run.run(method, names, load, seed=args.seed if seed is None else seed,
                     batch=args.batch, work_dir=work, chunk=getattr(args, "chunk", None),
                     progress=not getattr(args, "no_progress", False))
  except NonFiniteLossError as e:
    shutil.rmtree(work, ignore_errors=True)
    raise UserError(str(e)) from None
  return result


def finish_driver(args):
  """Removes the work folder once the results are written."""
  import shutil
  shutil.rmtree(os.path.join(args.out, WORK_DIR), ignore_errors=True)


def encoder_codes(encoder_dir, flag, generator, paths, batch):
  """``--init encoder``: the w+ codes ``encoder(x) + latent_avg [B, L, D]`` of the images at
  ``paths`` (pSp's inference transform), checked to fit ``generator``'s w+."""
  import numpy as np
  from jaxinv.inversion.methods import e4e
  from jaxinv.io import images as image_io
  try:
    enc = load_generator(encoder_dir, families="psp")
  except UserError as e:
    raise UserError(f"{flag}: {e} (an e4e/pSp encoder converted with jaxinv convert "
                    "e4e_ffhq_encode.pt DEST)") from None
  gc, dc = generator.config, enc.config.decoder
  want = (gc.num_ws, gc.w_dim)
  got = (enc.config.encoder.style_count, enc.config.encoder.w_dim)
  if got != want or dc.resolution != gc.resolution:
    raise UserError(f"{flag} {encoder_dir} encodes to w+ {list(got)} of a {dc.resolution} px "
                    f"generator; this one is {gc.resolution} px with w+ {list(want)}: use the "
                    "encoder trained for this generator")
  try:
    x = e4e.load_inputs(paths, enc)
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  codes = e4e.encode(enc, x, batch=batch, decode=False)["wp"]
  if not np.isfinite(codes).all():
    raise UserError(f"{flag} {encoder_dir}: the encoder produced non-finite codes (corrupt weights?)")
  return codes


def as_generator(model):
  """A loaded model as a StyleGAN2 generator: a ``psp`` model gives its decoder (the e4e/pSp
  checkpoint's own StyleGAN2), anything else is returned as is."""
  if model.family != "psp":
    return model
  import dataclasses
  from jaxinv.models import stylegan2
  cfg = model.config.decoder
  return dataclasses.replace(model, family="stylegan2", config=cfg,
                             module=stylegan2.StyleGAN2Generator(cfg),
                             params=model.params["decoder"], extras={})
