"""Train a domain-guided (IDInvert) encoder for any generator jaxinv loads.

  PYTHONPATH=. python experiments/train_encoder.py --generator G_DIR --perceptual F_DIR \\
      --data IMAGE_FOLDER --out RUN_DIR [--iters 1000 --batch 16 --resume]

Thin entry point: parse → :mod:`jaxinv.training.encoder` → orbax checkpoints, sample grids.
The data-parallel mesh spans the local devices (batch norm synchronised over it). The
encoder lands in ``RUN_DIR/encoder`` as a model directory ``jaxinv`` loads
(family ``idinvert-encoder``). D starts from ``--discriminator`` when given (a converted
``jaxinv.training.gan`` discriminator), else from scratch.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np


def parse(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--generator", required=True)
  p.add_argument("--perceptual", required=True, help="converted IDInvert vgg16 (keras-vgg16)")
  p.add_argument("--data", required=True, help="image folder")
  p.add_argument("--out", required=True)
  p.add_argument("--iters", type=int, default=1000)
  p.add_argument("--batch", type=int, default=16, help="global batch (split over local devices)")
  p.add_argument("--lr", type=float, default=1e-4)
  p.add_argument("--channels-base", type=int, default=64)
  p.add_argument("--channels-max", type=int, default=1024)
  p.add_argument("--feat-size", type=int, default=256)
  p.add_argument("--checkpoint-every", type=int, default=500)
  p.add_argument("--sample-every", type=int, default=500)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--resume", action="store_true")
  return p.parse_args(argv)


def main(argv=None):
  args = parse(argv)
  import jax
  import orbax.checkpoint as ocp
  from tqdm.auto import tqdm
  from jaxinv import sharding
  from jaxinv.io import checkpoints, images
  from jaxinv.models import idinvert_encoder as E, registry
  from jaxinv.training import encoder as T
  from jaxinv.training.gan import Discriminator, DiscriminatorConfig

  gen = registry.load_model(args.generator)
  vgg = registry.load_model(args.perceptual, expect_family="keras-vgg16")
  res = gen.config.resolution
  data = images.load_images(images.list_images([args.data]), res, loader="idinvert")
  cfg = T.EncoderTrainConfig(batch_size=args.batch, max_iters=args.iters, learning_rate=args.lr,
                             feat_size=args.feat_size)
  mesh = sharding.local_mesh() if jax.local_device_count() > 1 else None
  ecfg = T.encoder_config_for(gen, args.channels_base, args.channels_max)
  emod = E.IDInvertEncoder(ecfg, axis_name=T.DATA_AXIS if mesh is not None else None)
  chans = tuple(min(32 * 2 ** i, 256) for i in range(int(np.log2(res)) - 1))
  dmod = Discriminator(DiscriminatorConfig(resolution=res, channels=chans))
  key = jax.random.key(args.seed)
  ep = E.IDInvertEncoder(ecfg).init(key, data[:1])["params"]
  dp = dmod.init(jax.random.fold_in(key, 1), data[:2])["params"]
  state = T.init_state(cfg, ep, dp)
  ckpt = ocp.CheckpointManager(os.path.abspath(os.path.join(args.out, "checkpoints")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2))
  if args.resume and ckpt.latest_step() is not None:
    state = ckpt.restore(ckpt.latest_step(), args=ocp.args.StandardRestore(state))
  nets = T.nets_for(gen, emod, dmod, vgg.module)
  step = T.make_step(nets, cfg, ep, mesh=mesh)
  shared = {"G": gen.params, "F": vgg.params}
  rng = np.random.default_rng(args.seed)
  start = int(state.step)
  t0, seen = time.time(), 0
  bar = tqdm(range(start, args.iters), initial=start, total=args.iters, unit="it")
  for it in bar:
    x = data[rng.integers(0, len(data), args.batch)]
    state, m = step(state, shared, x, jax.random.fold_in(key, it))
    seen += args.batch
    if it % 10 == 0:
      bar.set_postfix({k: f"{float(v):.4g}" for k, v in m.items()},
                      refresh=False)
    if (it + 1) % args.checkpoint_every == 0 or it + 1 == args.iters:
      ckpt.save(it + 1, args=ocp.args.StandardSave(state))
    if (it + 1) % args.sample_every == 0 or it + 1 == args.iters:
      code, _ = nets.encode(state.e_params, x[:8], False)
      rec = np.asarray(nets.render(gen.params, code))
      images.save_png(os.path.join(args.out, f"samples_{it + 1:06d}.png"),
                      images.make_grid([list(x[:8]), list(rec)]))
  ckpt.wait_until_finished()
  ips = seen / max(time.time() - t0, 1e-9)
  checkpoints.save_model(os.path.join(args.out, "encoder"), "idinvert-encoder", ecfg,
                         jax.device_get(state.e_params), extras={"trained_for": args.generator},
                         source=f"experiments/train_encoder.py ({args.iters} iters)", overwrite=True)
  print(f"trained {args.iters - start} iterations at {ips:.1f} images/s on "
        f"{jax.local_device_count()} device(s); encoder in {os.path.join(args.out, 'encoder')}")


if __name__ == "__main__":
  sys.exit(main())
