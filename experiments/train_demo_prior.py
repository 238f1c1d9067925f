"""Trains the bundled demo prior ``demo-digits``: a 32 px PGGAN on scikit-learn's digits.

    PYTHONPATH=. python experiments/train_demo_prior.py [--out jaxinv/assets/demo_digits] [--steps N]

Writes ``OUT/generator`` (a jaxinv model directory, family ``pggan``; what
``load_model("demo-digits")`` reads), ``OUT/manifest.json`` (config, seed,
split, timing, losses summary), ``OUT/samples.png`` (EMA generator, fixed z),
``OUT/losses.csv`` and ``OUT/test_digits.npz`` (the held-out split the demo
inverts, so the installed package needs no scikit-learn). The objective and its
rationale are in :mod:`jaxinv.training.gan`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import ml_collections
import numpy as np

from jaxinv.io import checkpoints, images as image_io
from jaxinv.models import pggan
from jaxinv.training import digits, gan


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """The demo prior's settings; ``arg="tiny"`` shrinks it to a few steps (tests)."""
  c = ml_collections.ConfigDict()
  c.seed = 0                      # jax.random.key(seed): init, batches, latents
  c.split_seed = 0                # numpy RandomState permutation of the 1,797 digits
  c.n_test = 297                  # held-out digits (never seen in training)
  c.resolution = 32
  c.z_dim = 512                   # mGANprior's multi-code path assumes 512
  c.fmaps_base = 256              # G channels min(256 // r, 64): 64, 32, 16, 8 at 4..32 px
  c.fmaps_max = 64
  c.d_channels = (8, 16, 32, 64)  # D widths at 32, 16, 8, 4 px
  c.batch_size = 32
  c.steps = 1200
  c.lr = 2e-3
  c.r1_gamma = 2.0
  c.r1_every = 16
  c.ema_beta = 0.995
  c.ema_start = 200
  c.log_every = 50
  c.n_samples = 64
  if arg == "tiny":
    c.steps, c.log_every, c.n_samples, c.ema_start = 4, 2, 8, 0
  c.lock()
  return c


def gan_config(c) -> gan.GANConfig:
  return gan.GANConfig(
      generator=pggan.PGGANConfig(resolution=c.resolution, z_dim=c.z_dim, image_channels=3,
                                  fused_scale=False, fmaps_base=c.fmaps_base,
                                  fmaps_max=c.fmaps_max),
      discriminator=gan.DiscriminatorConfig(resolution=c.resolution, image_channels=3,
                                            channels=tuple(c.d_channels)),
      batch_size=c.batch_size, steps=c.steps, lr=c.lr, r1_gamma=c.r1_gamma,
      r1_every=c.r1_every, ema_beta=c.ema_beta, ema_start=c.ema_start)


def train_and_save(c, out: str, log=print) -> dict:
  """Trains with config ``c`` and writes the asset folder ``out``; returns the manifest."""
  split = digits.load_split(c.split_seed, c.n_test)
  train_x = digits.to_images(split["x8"][split["train_idx"]], c.resolution)
  cfg = gan_config(c)
  t0 = time.time()
  state, losses = gan.train(cfg, train_x, jax.random.key(c.seed), chunk=c.log_every, log=log)
  train_s = time.time() - t0
  os.makedirs(out, exist_ok=True)
  g_ema = jax.tree_util.tree_map(np.asarray, state.g_ema)
  checkpoints.save_model(os.path.join(out, "generator"), "pggan", cfg.generator, g_ema,
                         extras={"demo": "digits"}, source="experiments/train_demo_prior.py",
                         overwrite=True)
  z = np.asarray(jax.random.normal(jax.random.key(c.seed + 1000), (c.n_samples, c.z_dim)))
  samples = np.asarray(pggan.PGGANGenerator(cfg.generator).apply({"params": g_ema}, z))
  image_io.save_png(os.path.join(out, "samples.png"), image_io.image_grid(samples, 8), scale=2)
  real = train_x[:c.n_samples]
  image_io.save_png(os.path.join(out, "real_samples.png"), image_io.image_grid(real, 8), scale=2)
  lines = ["step,d_loss,g_loss,r1"] + [f"{i},{a:.5f},{b:.5f},{r:.5f}"
                                       for i, (a, b, r) in enumerate(losses)]
  checkpoints.atomic_write_bytes(os.path.join(out, "losses.csv"), ("\n".join(lines) + "\n").encode())
  test = split["test_idx"]
  tmp = os.path.join(out, ".tmp-test_digits.npz")
  np.savez_compressed(tmp, x8=split["x8"][test], labels=split["labels"][test], index=test)
  os.replace(tmp, os.path.join(out, "test_digits.npz"))
  tail = losses[-c.log_every:]
  manifest = {
      "name": "demo-digits",
      "data": {"source": "sklearn.datasets.load_digits (1,797 real 8x8 scans, values 0..16)",
               "preprocess": "x/16*2-1, bicubic jax.image.resize to 32x32, clip [-1,1], gray "
                             "replicated to RGB",
               "split": f"test = first {c.n_test} of numpy RandomState({c.split_seed})"
                        f".permutation(1797), sorted; train = the rest",
               "n_train": int(len(split["train_idx"])), "n_test": int(len(test)),
               "test_index": test.tolist()},
      "objective": "non-saturating logistic GAN loss + lazy R1 on reals (see "
                   "jaxinv/training/gan.py); shipped weights = generator EMA",
      "train_config": c.to_dict(),
      "gan_config": dataclasses.asdict(cfg),
      "seed": c.seed,
      "train_seconds": round(train_s, 1),
      "steps": c.steps,
      "final_losses_mean_last_log": {"d": float(tail[:, 0].mean()), "g": float(tail[:, 1].mean())},
      "sample_grid": "samples.png (EMA generator, z = jax.random.normal(key(seed+1000)))",
      "machine": f"{os.cpu_count()} CPU cores (shared), jax {jax.__version__}",
      "files": ["generator/", "samples.png", "real_samples.png", "losses.csv", "test_digits.npz"],
  }
  checkpoints.atomic_write_json(os.path.join(out, "manifest.json"), manifest)
  log(f"trained {c.steps} steps in {train_s:.0f} s; wrote {out}")
  return manifest


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "jaxinv", "assets",
                                               "demo_digits"))
  p.add_argument("--config", default="", help="config variant ('' or 'tiny')")
  p.add_argument("--steps", type=int, default=None, help="override the step count")
  a = p.parse_args(argv)
  c = get_config(a.config)
  if a.steps is not None:
    with c.unlocked():
      c.steps = a.steps
  train_and_save(c, os.path.abspath(a.out), log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  sys.exit(main())
