"""Train a Swapping Autoencoder on an image folder (or TFDS): the official losses and optimizers in JAX.

Usage::

  python -m jaxinv.experiments.train_sae --workdir /tmp/sae --config experiments/train_sae.py:tiny
  python -m jaxinv.experiments.train_sae --workdir /tmp/sae --data /path/to/images \\
      --init_from CONVERTED_MODEL_DIR --iterations 1000

Re-running with the same ``--workdir`` resumes from the last orbax checkpoint.
``get_config(arg)``: ``arg`` = ``church256`` (the official church defaults, batch 16)
or ``tiny`` (the golden fixture's 128 px architecture, batch 4, demo images).
"""

from __future__ import annotations

import argparse
import os

import ml_collections

_DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                     "mganprior_examples")

TINY_OPTIONS = dict(crop_size=128, netE_scale_capacity=0.125, netG_scale_capacity=0.0625,
                    netD_scale_capacity=0.0625, spatial_code_ch=4, global_code_ch=48, patch_size=32,
                    netPatchD_scale_capacity=1.0, netPatchD_max_nc=64)
CHURCH_OPTIONS = dict(crop_size=256, netE_scale_capacity=1.0, netG_scale_capacity=1.0,
                      netD_scale_capacity=1.0, spatial_code_ch=8, global_code_ch=2048, patch_size=128,
                      netPatchD_scale_capacity=4.0, netPatchD_max_nc=384,
                      patch_use_aggregation=False)


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.init_from = ""                    # a converted model dir to fine-tune ("" = official random init)
  c.options = dict(TINY_OPTIONS if arg == "tiny" else CHURCH_OPTIONS)   # official option names
  c.batch_size = 4 if arg == "tiny" else 16
  c.iterations = 60 if arg == "tiny" else 1_000_000   # one iteration = a D step (+R1) and a G step
  c.log_every = 10 if arg == "tiny" else 100
  c.sample_every = 30 if arg == "tiny" else 2000
  c.checkpoint_every = 30 if arg == "tiny" else 5000
  c.data = ml_collections.ConfigDict()
  c.data.images = os.path.normpath(_DEMO)   # folder (recursive), file, or tfds:NAME?split=train
  c.data.limit = 0                    # 0 = all images
  return c.lock() if hasattr(c, "lock") else c


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--config", default="tiny", help="tiny | church256 (or path.py:arg)")
  p.add_argument("--data", default=None, help="image folder or TFDS split tfds:NAME?split=train (overrides config.data.images)")
  p.add_argument("--init_from", default=None)
  p.add_argument("--iterations", type=int, default=None)
  p.add_argument("--batch_size", type=int, default=None)
  p.add_argument("--limit", type=int, default=None, help="use only the first N images")
  for name in ("seed", "log_every", "sample_every", "checkpoint_every"):
    p.add_argument(f"--{name}", type=int, default=None)
  args = p.parse_args(argv)
  arg = args.config.split(":")[-1]
  config = get_config(arg)
  with config.unlocked() if hasattr(config, "unlocked") else _null():
    if args.data:
      config.data.images = args.data
    if args.init_from:
      config.init_from = args.init_from
    if args.iterations:
      config.iterations = args.iterations
    if args.batch_size:
      config.batch_size = args.batch_size
    if args.limit is not None:
      config.data.limit = args.limit
    for name in ("seed", "log_every", "sample_every", "checkpoint_every"):
      if getattr(args, name) is not None:
        setattr(config, name, getattr(args, name))
  from jaxinv.training import sae
  summary = sae.train(config, args.workdir)
  print(f"done: {summary['iterations']} iterations, {summary['images_per_s']} images/s")


class _null:
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


if __name__ == "__main__":
  main()
