"""Layer-level comparison of the 3×3 convolution implementations of :mod:`jaxinv.ops.conv3x3`.

``python -m experiments.bench.bench_conv3x3 [--batches 1,8] [--repeats 5] [--only NAME]``

For each layer shape of the mGANprior benchmark step (PGGAN-64 fmaps 16384/512 with N = 20 codes
before layer 6, VGG16[:16] at 256 px), the forward + input gradient (``jax.vjp`` of the layer,
weights fixed) of the direct convolution and of the fast rewrites: process CPU seconds (median of
interleaved repeats, so the machine's other load hits every variant alike) and the error of the
float32 result against a float64 evaluation of the direct path, as max |err| / max |ref| for
the output and the input gradient. It never passes or fails.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.models import layers as L
from jaxinv.ops import conv3x3 as C

# (name, batch, H, W, Cin, Cout, upsample before the conv)
PGGAN_PREFIX = [("g.conv4", 20, 4, 4, 512, 512, False), ("g.up8", 20, 4, 4, 512, 512, True),
                ("g.conv8", 20, 8, 8, 512, 512, False), ("g.up16", 20, 8, 8, 512, 512, True),
                ("g.conv16", 20, 16, 16, 512, 512, False)]
SUFFIX = [("g.up32", 1, 16, 16, 512, 512, True), ("g.conv32", 1, 32, 32, 512, 512, False),
          ("g.up64", 1, 32, 32, 512, 256, True), ("g.conv64", 1, 64, 64, 256, 256, False),
          ("vgg.conv1_2", 1, 256, 256, 64, 64, False), ("vgg.conv2_1", 1, 128, 128, 64, 128, False),
          ("vgg.conv2_2", 1, 128, 128, 128, 128, False),
          ("vgg.conv3_1", 1, 64, 64, 128, 256, False), ("vgg.conv3_2", 1, 64, 64, 256, 256, False)]


def variants(up: bool):
  if up:
    return {"direct": lambda x, w: L.conv2d(L.upsample_nearest(x, 2), w, padding=1),
            "polyphase": C.upsample_conv3x3}
  return {"direct": lambda x, w: C.conv3x3(x, w, "direct"),
          "winograd": lambda x, w: C.conv3x3(x, w, "winograd")}


def _fwd_bwd(f):
  def run(x, w, g):
    y, vjp = jax.vjp(lambda x: f(x, w), x)
    return y, vjp(g)[0]
  return jax.jit(run)


def _cpu(fn, args, n):
  c0 = time.process_time()
  for _ in range(n):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.process_time() - c0) / n


def measure(name, b, h, w, cin, cout, up, repeats):
  rng = np.random.default_rng(0)
  x64 = rng.standard_normal((b, h, w, cin))
  k64 = rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)
  ho, wo = (2 * h, 2 * w) if up else (h, w)
  g64 = rng.standard_normal((b, ho, wo, cout))
  vs = variants(up)
  ref_y, ref_dx = (np.asarray(a) for a in _fwd_bwd(vs["direct"])(x64, k64, g64))
  args = tuple(jnp.asarray(a, jnp.float32) for a in (x64, k64, g64))
  fns = {k: _fwd_bwd(f) for k, f in vs.items()}
  err = {}
  for k, fn in fns.items():
    y, dx = (np.asarray(a, np.float64) for a in fn(*args))
    err[k] = (np.abs(y - ref_y).max() / np.abs(ref_y).max(),
              np.abs(dx - ref_dx).max() / np.abs(ref_dx).max())
  t1 = _cpu(fns["direct"], args, 1)
  n = max(1, int(0.4 / max(t1, 1e-4)))
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      times[k].append(_cpu(fn, args, n))
  flops = 2 * 2 * b * ho * wo * 9 * cin * cout        # forward + input gradient, direct count
  med = {k: float(np.median(v)) for k, v in times.items()}
  fast = [k for k in fns if k != "direct"][0]
  print(f"{name:12s} B={b:<3d} {h}x{w}x{cin}->{cout}{' up' if up else '   '}  "
        f"direct {med['direct'] * 1e3:8.2f} ms ({flops / med['direct'] / 1e9:5.0f} GF/cpu-s)  "
        f"{fast} {med[fast] * 1e3:8.2f} ms  speedup {med['direct'] / med[fast]:5.2f}x  "
        f"err y/dx direct {err['direct'][0]:.1e}/{err['direct'][1]:.1e} "
        f"{fast} {err[fast][0]:.1e}/{err[fast][1]:.1e}", flush=True)
  return med, err


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--batches", default="1,8")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--only", default=None, help="substring of the layer names to run")
  a = p.parse_args(argv)
  jax.config.update("jax_enable_x64", True)   # the float64 reference of the accuracy column
  print(f"# load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs;"
        f" jax {jax.__version__}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; CPU-s per "
        "forward + input gradient, median of interleaved repeats")
  for bs in (int(v) for v in a.batches.split(",")):
    layers = list(PGGAN_PREFIX) if bs == 1 else []
    layers += [(n, bs, h, w, ci, co, up) for n, _, h, w, ci, co, up in SUFFIX]
    for spec in layers:
      if a.only is None or a.only in spec[0]:
        measure(*spec, a.repeats)


if __name__ == "__main__":
  main()
