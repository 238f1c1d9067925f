"""Trains the domain-guided encoder shipped with the ``demo-digits`` prior.

    PYTHONPATH=. python experiments/train_demo_encoder.py [--out jaxinv/assets/demo_digits] [--iters N]

The encoder maps a 32 px digit to the prior's z ``[1, 512]`` (PGGAN: inversion space z).
It trains on the prior's own training split (:func:`jaxinv.training.digits.load_split`
with the prior's ``split_seed`` / ``n_test`` from its manifest: the held-out test digits
the demo inverts are never seen), through :func:`experiments.train_encoder.train`: pixel
MSE + 0.08 · adversarial, D logistic + R1 (γ 10), Adam(0.9, 0.99). The demo ships no VGG
weights, so the perceptual term is off (``feat_weight = 0``). Mirror augmentation is off:
a mirrored digit is not a digit. Writes ``OUT/encoder`` (family ``idinvert-encoder``,
loadable as ``demo-digits-encoder``), ``OUT/encoder_record.json`` (config, seed,
iterations, losses, seconds) and ``OUT/encoder_samples.png`` (training digits / G(E(x))).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import ml_collections

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jaxinv", "assets",
                      "demo_digits")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """The shipped encoder's settings; ``arg="tiny"`` shrinks it to a few steps (tests)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.iters = 2000
  c.batch_size = 32
  c.learning_rate = 1e-3       # the release's 1e-4 is for 100k iterations; decays 0.8 per quarter
  c.adv_weight = 0.08
  c.r1_gamma = 10.0
  c.channels_base = 16         # encoder widths 16, 32, 64, 64 at 32..4 px, FC 1024 -> 512
  c.channels_max = 64
  c.d_channels = (8, 16, 32, 64)   # the prior's D widths (its weights are not shipped)
  if arg == "tiny":
    c.iters = 4
  c.lock()
  return c


def train_demo_encoder(c, out: str, progress: bool = True) -> dict:
  from jaxinv.experiments.train_encoder import train
  from jaxinv.models.registry import load_model
  from jaxinv.training import digits, encoder as T

  gen = load_model("demo-digits", expect_family="pggan")
  with open(os.path.join(os.path.dirname(gen.path), "manifest.json")) as f:
    prior = json.load(f)["train_config"]
  split = digits.load_split(prior["split_seed"], prior["n_test"])
  train_x = digits.to_images(split["x8"][split["train_idx"]], gen.config.resolution)
  cfg = T.EncoderTrainConfig(batch_size=c.batch_size, max_iters=c.iters,
                             learning_rate=c.learning_rate, feat_weight=0.0,
                             adv_weight=c.adv_weight, r1_gamma=c.r1_gamma, mirror=False)
  run_dir = tempfile.mkdtemp(prefix="demo-encoder-")
  try:
    record = train(gen, train_x, run_dir, cfg, channels_base=c.channels_base,
                   channels_max=c.channels_max, d_channels=c.d_channels, seed=c.seed,
                   checkpoint_every=c.iters, sample_every=c.iters, progress=progress,
                   source="experiments/train_demo_encoder.py")
    os.makedirs(out, exist_ok=True)
    dest = os.path.join(out, "encoder")
    if os.path.exists(dest):
      shutil.rmtree(dest)
    shutil.copytree(os.path.join(run_dir, "encoder"), dest)
    shutil.copyfile(os.path.join(run_dir, f"samples_{c.iters:06d}.png"),
                    os.path.join(out, "encoder_samples.png"))
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  record.update({
      "name": "demo-digits-encoder",
      "command": "PYTHONPATH=. python experiments/train_demo_encoder.py",
      "demo_config": c.to_dict(),
      "data": f"jaxinv.training.digits.load_split({prior['split_seed']}, {prior['n_test']}) "
              f"train_idx ({len(split['train_idx'])} digits); the {prior['n_test']} test digits "
              "are never seen",
      "generator": "demo-digits",
      "samples": "encoder_samples.png (top: training digits of the last batch; bottom: G(E(x)))",
  })
  from jaxinv.io import checkpoints
  checkpoints.atomic_write_json(os.path.join(out, "encoder_record.json"), record)
  return record


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default=ASSETS)
  p.add_argument("--config", default="", help="config variant ('' or 'tiny')")
  p.add_argument("--iters", type=int, default=None, help="override the iteration count")
  a = p.parse_args(argv)
  c = get_config(a.config)
  if a.iters is not None:
    with c.unlocked():
      c.iters = a.iters
  rec = train_demo_encoder(c, os.path.abspath(a.out))
  print(f"trained {rec['iterations']} iterations in {rec['seconds']:.0f} s "
        f"({rec['images_per_second']:.0f} images/s); final {rec['final_losses_mean_last']}; "
        f"wrote {a.out}")


if __name__ == "__main__":
  sys.exit(main())
