"""Train a domain-guided (IDInvert) encoder for any generator jaxinv loads.

  PYTHONPATH=. python experiments/train_encoder.py --generator G_DIR --perceptual F_DIR \\
      --data IMAGE_FOLDER|tfds:NAME?split=train --out RUN_DIR [--iters 1000 --batch 16 --resume]

Thin entry point: parse → :func:`train` (:mod:`jaxinv.training.encoder`, orbax checkpoints,
sample grids, ``RUN_DIR/train_record.json``). Without ``--perceptual`` (or with
``--feat-weight 0``) the perceptual term is dropped. Batches are drawn from
``default_rng([seed, iteration])``, so a resumed run sees the batches an uninterrupted
one would. ``experiments/train_demo_encoder.py`` trains the encoder shipped with ``demo-digits``.
The data-parallel mesh spans the local devices (batch norm synchronised over it). The
encoder lands in ``RUN_DIR/encoder`` as a model directory ``jaxinv`` loads
(family ``idinvert-encoder``). D starts from the GAN's own discriminator when
``--discriminator`` gives one (a model directory of family ``gan-discriminator``, i.e.
:class:`jaxinv.training.gan.Discriminator`), else from scratch with widths ``--d-channels``.
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
  p.add_argument("--perceptual", default=None,
                 help="converted IDInvert vgg16 (keras-vgg16); omit to train without the perceptual term")
  p.add_argument("--data", required=True,
                 help="image folder, or a prepared TFDS split: tfds:NAME?split=train&data_dir=DIR")
  p.add_argument("--max-images", type=int, default=0, help="use the first N images (0 = all)")
  p.add_argument("--out", required=True)
  p.add_argument("--iters", type=int, default=1000)
  p.add_argument("--batch", type=int, default=16, help="global batch (split over local devices)")
  p.add_argument("--lr", type=float, default=1e-4)
  p.add_argument("--feat-weight", type=float, default=5e-5, help="perceptual weight (0: no term)")
  p.add_argument("--adv-weight", type=float, default=0.08)
  p.add_argument("--channels-base", type=int, default=64)
  p.add_argument("--channels-max", type=int, default=1024)
  p.add_argument("--d-channels", default=None,
                 help="comma-separated D widths from full resolution down to 4 px "
                      "(default min(32·2^i, 256))")
  p.add_argument("--discriminator", default=None,
                 help="the GAN's own discriminator (family gan-discriminator) to start D from")
  p.add_argument("--feat-size", type=int, default=256)
  p.add_argument("--checkpoint-every", type=int, default=500)
  p.add_argument("--sample-every", type=int, default=500)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--resume", action="store_true")
  return p.parse_args(argv)


def default_d_channels(resolution: int) -> tuple:
  return tuple(min(32 * 2 ** i, 256) for i in range(int(np.log2(resolution)) - 1))


def train(gen, data, out: str, cfg, *, perceptual=None, channels_base: int = 64,
          channels_max: int = 1024, d_channels=None, discriminator=None, seed: int = 0,
          data_source: str | None = None,
          checkpoint_every: int = 500,
          sample_every: int = 500, resume: bool = False, stop_after: int | None = None,
          progress: bool = True, source: str = "experiments/train_encoder.py") -> dict:
  """Trains an encoder for ``gen`` on ``data [N, R, R, 3]`` (NHWC, [-1, 1]) into ``out``.

  ``cfg`` is a :class:`jaxinv.training.encoder.EncoderTrainConfig`; its ``max_iters`` is
  the iteration count (and sets the lr decay). ``perceptual``: a loaded ``keras-vgg16``
  model or None. ``stop_after`` ends the run early at that iteration (an interruption;
  the schedule still follows ``max_iters``). ``discriminator``: a loaded
  ``gan-discriminator`` model D starts from (then ``d_channels`` is its own). Writes ``out/checkpoints`` (orbax),
  ``out/samples_*.png``, ``out/encoder`` (model dir) and ``out/train_record.json``;
  returns the record.
  """
  import jax
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  from tqdm.auto import tqdm
  from jaxinv import sharding
  from jaxinv.io import checkpoints, images
  from jaxinv.models import idinvert_encoder as E
  from jaxinv.training import encoder as T
  from jaxinv.training.gan import Discriminator, DiscriminatorConfig

  res = gen.config.resolution
  ndev = jax.local_device_count()
  if cfg.batch_size % ndev:
    raise ValueError(f"batch {cfg.batch_size} does not split over {ndev} devices")
  if perceptual is None and float(cfg.feat_weight) != 0.0:
    cfg = dataclasses.replace(cfg, feat_weight=0.0)
  mesh = sharding.local_mesh() if ndev > 1 else None
  ecfg = T.encoder_config_for(gen, channels_base, channels_max)
  emod = E.IDInvertEncoder(ecfg, axis_name=T.DATA_AXIS if mesh is not None else None)
  key = jax.random.key(seed)
  if discriminator is not None:
    dcfg = discriminator.config
    if dcfg.resolution != res or dcfg.image_channels != data.shape[-1]:
      raise ValueError(f"discriminator {discriminator.path} takes {dcfg.resolution} px, "
                       f"{dcfg.image_channels} channels; the data is {res} px, {data.shape[-1]}")
    d_init = f"the GAN's discriminator {discriminator.path}"
  else:
    d_channels = tuple(d_channels) if d_channels else default_d_channels(res)
    dcfg = DiscriminatorConfig(resolution=res, channels=d_channels)
    d_init = "from scratch (jaxinv.training.gan.Discriminator, key fold_in(seed, 1))"
  dmod = Discriminator(dcfg)
  ep = E.IDInvertEncoder(ecfg).init(key, data[:1])["params"]
  if discriminator is not None:
    dp = jax.tree_util.tree_map(jnp.asarray, discriminator.params)
  else:
    dp = jax.jit(dmod.init)(jax.random.fold_in(key, 1), data[:2])["params"]  # = eager, bitwise
  state = T.init_state(cfg, ep, dp)
  ckpt = ocp.CheckpointManager(os.path.abspath(os.path.join(out, "checkpoints")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2))
  if resume and ckpt.latest_step() is not None:
    state = ckpt.restore(ckpt.latest_step(), args=ocp.args.StandardRestore(state))
  nets = T.nets_for(gen, emod, dmod, None if perceptual is None else perceptual.module)
  step = T.make_step(nets, cfg, ep, mesh=mesh)
  shared = {"G": gen.params, "F": None if perceptual is None else perceptual.params}
  reconstruct = jax.jit(lambda ep, gp, x: nets.render(gp, nets.encode(ep, x, False)[0]))
  start = int(state.step)
  end = cfg.max_iters if stop_after is None else min(stop_after, cfg.max_iters)
  history = []
  t0 = time.time()
  bar = tqdm(range(start, end), initial=start, total=cfg.max_iters, unit="it", disable=not progress)
  for it in bar:
    idx = np.random.default_rng([seed, it]).integers(0, len(data), cfg.batch_size)
    x = data[idx]
    state, m = step(state, shared, x, jax.random.fold_in(key, it))
    history.append({k: float(v) for k, v in m.items()})
    if it % 10 == 0:
      bar.set_postfix({k: f"{v:.4g}" for k, v in history[-1].items()}, refresh=False)
    if (it + 1) % checkpoint_every == 0 or it + 1 == end:
      ckpt.save(it + 1, args=ocp.args.StandardSave(state))
    if (it + 1) % sample_every == 0 or it + 1 == end:
      rec = np.asarray(reconstruct(state.e_params, gen.params, x[:8]))
      images.save_png(os.path.join(out, f"samples_{it + 1:06d}.png"),
                      images.make_grid([list(x[:8]), list(rec)]))
  ckpt.wait_until_finished()
  seconds = time.time() - t0
  done = end - start
  os.makedirs(out, exist_ok=True)
  checkpoints.save_model(os.path.join(out, "encoder"), "idinvert-encoder", ecfg,
                         jax.device_get(state.e_params), extras={"trained_for": gen.path},
                         source=f"{source} ({end} iters)", overwrite=True)
  tail = history[-min(len(history), 50):]
  record = {
      "train_config": dataclasses.asdict(cfg),
      "encoder_config": dataclasses.asdict(ecfg),
      "discriminator_config": dataclasses.asdict(dcfg),
      "discriminator_init": d_init,
      "perceptual": None if perceptual is None else perceptual.path,
      "perceptual_term": "on" if T.uses_perceptual(nets, cfg) else "off (feat_weight 0, no VGG)",
      "generator": gen.path, "data": data_source, "images": int(len(data)), "seed": seed, "start_iteration": start, "iterations": end,
      "iterations_this_run": done, "seconds": round(seconds, 1),
      "images_per_second": round(done * cfg.batch_size / max(seconds, 1e-9), 2),
      "devices": ndev,
      "final_losses_mean_last": {"iterations": len(tail),
                                 **({k: float(np.mean([h[k] for h in tail])) for k in tail[0]}
                                    if tail else {})},
      "losses_every_10": [{"iteration": start + i + 1, **h} for i, h in enumerate(history)
                          if (start + i) % 10 == 0 or start + i + 1 == end],
  }
  checkpoints.atomic_write_json(os.path.join(out, "train_record.json"), record)
  return record


def main(argv=None):
  args = parse(argv)
  import jax
  from jaxinv.io import images
  from jaxinv.models import registry
  from jaxinv.training import encoder as T

  gen = registry.load_model(args.generator)
  vgg = None
  if args.perceptual is not None:
    vgg = registry.load_model(args.perceptual, expect_family="keras-vgg16")
  res = gen.config.resolution
  data = images.load_images(images.list_images([args.data], args.max_images or None), res,
                            loader="idinvert")
  cfg = T.EncoderTrainConfig(batch_size=args.batch, max_iters=args.iters, learning_rate=args.lr,
                             feat_size=args.feat_size, adv_weight=args.adv_weight,
                             feat_weight=args.feat_weight if vgg is not None else 0.0)
  d_channels = tuple(int(c) for c in args.d_channels.split(",")) if args.d_channels else None
  disc = None
  if args.discriminator is not None:
    disc = registry.load_model(args.discriminator, expect_family="gan-discriminator")
  rec = train(gen, data, args.out, cfg, perceptual=vgg, channels_base=args.channels_base,
              channels_max=args.channels_max, d_channels=d_channels, discriminator=disc,
              seed=args.seed, data_source=args.data,
              checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
              resume=args.resume)
  print(f"trained {rec['iterations_this_run']} iterations at {rec['images_per_second']:.1f} "
        f"images/s on {jax.local_device_count()} device(s); encoder in "
        f"{os.path.join(args.out, 'encoder')}")


if __name__ == "__main__":
  sys.exit(main())
