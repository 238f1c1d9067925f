"""Encoder-training and in-domain-inversion throughput: ``python -m jaxinv.experiments.bench.bench_encoder``.

Setting: the bundled ``demo-digits`` PGGAN (32 px, z 512) with the shipped encoder's
architecture (``experiments/train_demo_encoder.py``: channels 16..64, D widths 8..64, no
perceptual term).

* Encoder training: images/s of the jitted E+D step (``jaxinv.training.encoder.make_step``)
  at one global batch on 1 device and on 8 forced CPU devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=8``, data-parallel mesh, synchronised
  batch norm); each device count runs in its own subprocess (the flag must precede JAX).
* In-domain inversion (``jaxinv.inversion.methods.idinvert``, pixel MSE + the in-domain
  regulariser, Adam): image-steps/s at batch 1 and 8 on one device.

Compilation is excluded (one warm-up call first). Prints figures and ratios; never passes
or fails. ``--quick`` runs fewer steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train_child(batch: int, iters: int) -> dict:
  import jax
  import numpy as np
  from jaxinv import sharding
  from jaxinv.models import idinvert_encoder as E
  from jaxinv.models.registry import load_model
  from jaxinv.training import encoder as T
  from jaxinv.training.gan import Discriminator, DiscriminatorConfig
  sys.path.insert(0, REPO)
  from jaxinv.experiments.train_demo_encoder import get_config

  c = get_config()
  gen = load_model("demo-digits", expect_family="pggan")
  ndev = jax.local_device_count()
  mesh = sharding.local_mesh() if ndev > 1 else None
  ecfg = T.encoder_config_for(gen, c.channels_base, c.channels_max)
  emod = E.IDInvertEncoder(ecfg, axis_name=T.DATA_AXIS if mesh is not None else None)
  dmod = Discriminator(DiscriminatorConfig(resolution=32, channels=tuple(c.d_channels)))
  x = np.asarray(jax.random.uniform(jax.random.key(0), (batch, 32, 32, 3), minval=-1, maxval=1))
  ep = E.IDInvertEncoder(ecfg).init(jax.random.key(1), x[:1])["params"]
  dp = dmod.init(jax.random.key(2), x[:2])["params"]
  cfg = T.EncoderTrainConfig(batch_size=batch, max_iters=1000, learning_rate=c.learning_rate,
                             feat_weight=0.0, mirror=False)
  state = T.init_state(cfg, ep, dp)
  step = T.make_step(T.nets_for(gen, emod, dmod), cfg, ep, mesh=mesh)
  shared = {"G": gen.params, "F": None}
  key = jax.random.key(3)
  t0 = time.perf_counter()
  state, m = step(state, shared, x, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(iters):
    state, m = step(state, shared, x, jax.random.fold_in(key, i))
  jax.block_until_ready((state, m))
  dt = time.perf_counter() - t0
  return {"devices": ndev, "batch": batch, "iters": iters, "seconds": dt,
          "images_per_s": batch * iters / dt, "first_call_s": compile_s}


def bench_training(batch: int, iters: int, devices: int) -> dict:
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
  if devices > 1:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env["XLA_FLAGS"] = " ".join(flags)
  out = subprocess.run([sys.executable, "-m", "jaxinv.experiments.bench.bench_encoder", "--child-train",
                        str(batch), str(iters)], env=env, cwd=REPO, capture_output=True,
                       text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def bench_inversion(batches, steps: int) -> list:
  import jax
  import jax.numpy as jnp
  from jaxinv import demo
  from jaxinv.inversion import optimize as opt_lib
  from jaxinv.inversion.methods import idinvert
  from jaxinv.models.registry import load_model
  gen = load_model("demo-digits", expect_family="pggan")
  enc = load_model("demo-digits-encoder", expect_family="idinvert-encoder")
  models = idinvert.models_from(gen, enc)
  loss_fn = idinvert.indomain_loss(models, 1.0, 0.0, demo.REG_WEIGHT)
  opt = idinvert.adam_torch(demo.DemoConfig().lr)
  digits = demo.load_test_digits(32)["images"]
  out = []
  for b in batches:
    x = jnp.asarray(digits[:b])
    wp0 = idinvert.encode(models, x)
    run = lambda: opt_lib.optimize(loss_fn, {"wp": wp0}, {"x": x}, opt, steps,  # noqa: E731
                                   shared=models.params, chunk=steps, progress=False)
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run()
    jax.block_until_ready(res.variables)
    dt = time.perf_counter() - t0
    out.append({"batch": b, "steps": steps, "seconds": dt, "image_steps_per_s": b * steps / dt,
                "first_call_s": first})
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true", help="fewer iterations")
  p.add_argument("--batch", type=int, default=32, help="global training batch")
  p.add_argument("--child-train", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  if a.child_train is not None:
    print(json.dumps(_train_child(*a.child_train)))
    return 0
  iters = 10 if a.quick else 40
  steps = 50 if a.quick else 200
  print(f"machine: {os.cpu_count()} CPU cores; encoder training, global batch {a.batch}, "
        f"{iters} timed iterations (compile excluded)")
  tr = {d: bench_training(a.batch, iters, d) for d in (1, 8)}
  for d, r in tr.items():
    print(f"  {d} device(s): {r['images_per_s']:8.1f} images/s  "
          f"({r['seconds'] / iters * 1e3:.1f} ms/step; first call {r['first_call_s']:.1f} s)")
  print(f"  8 devices / 1 device: {tr[8]['images_per_s'] / tr[1]['images_per_s']:.2f}x "
        "(forced host devices share the same cores)")
  print(f"in-domain inversion (pixel MSE + in-domain regulariser), {steps} Adam steps, 1 device")
  inv = bench_inversion((1, 8), steps)
  for r in inv:
    print(f"  batch {r['batch']}: {r['image_steps_per_s']:8.1f} image-steps/s  "
          f"({r['seconds'] / steps * 1e3:.2f} ms/step; first call {r['first_call_s']:.1f} s)")
  print(f"  batch 8 / batch 1: {inv[1]['image_steps_per_s'] / inv[0]['image_steps_per_s']:.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
