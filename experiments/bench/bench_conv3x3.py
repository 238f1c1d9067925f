"""Layer-level comparison of the 3×3 convolution implementations of :mod:`jaxinv.ops.conv3x3`.

``python -m experiments.bench.bench_conv3x3 [--batches 1,8] [--repeats 5] [--only NAME]``

For each layer shape of the mGANprior benchmark step (PGGAN-64 fmaps 16384/512 with N = 20 codes
before layer 6, VGG16[:16] at 256 px), the forward + input gradient (``jax.vjp`` of the layer,
weights fixed, each kernel prepared beforehand as a frozen generator's is) of the direct convolution
and of the fast rewrites: process CPU seconds (median of
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


def variants(up: bool, spatial) -> dict:
  """name → ``prepare(w)``-like function (the kernel's form, made before timing) for each form
  of this layer, ``fast`` last (what the models run on CPU)."""
  def form(impl):
    return lambda w: C.prepare(w, impl, spatial, upsample=up)
  if up:
    return {"direct": form("direct"), "polyphase": lambda w: C.prepare(w, "polyphase", spatial, True),
            "phase-winograd": form("winograd"), "fast": form("fast")}

  def winograd(m):
    return lambda w: dict(zip(("winograd", "winograd_flip"), C.winograd_kernels(w, m)))
  return {"direct": form("direct"), "winograd2": winograd(2), "winograd4": winograd(4),
          "fast": form("fast")}


def _fwd_bwd(up):
  def run(x, prepared, g):
    y, vjp = jax.vjp(lambda x: C.apply_prepared(x, prepared, upsample=up), x)
    return y, vjp(g)[0]
  return jax.jit(run)


def _cpu(fn, args, n):
  c0 = time.process_time()
  for _ in range(n):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.process_time() - c0) / n


def _form_name(prepared) -> str:
  if "winograd" in prepared:
    return f"winograd{ {16: 2, 36: 4}[prepared['winograd'].shape[0]] }"
  return {"phases_winograd": "phase-winograd", "phases": "polyphase"}.get(next(iter(prepared)), "direct")


def measure(name, b, h, w, cin, cout, up, repeats):
  rng = np.random.default_rng(0)
  x64 = rng.standard_normal((b, h, w, cin))
  k64 = rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)
  ho, wo = (2 * h, 2 * w) if up else (h, w)
  g64 = rng.standard_normal((b, ho, wo, cout))
  forms = variants(up, (h, w))
  fn = _fwd_bwd(up)
  ref_y, ref_dx = (np.asarray(a) for a in fn(x64, forms["direct"](k64), g64))
  x, k, g = (jnp.asarray(a, jnp.float32) for a in (x64, k64, g64))
  prepared = {n: jax.jit(f)(k) for n, f in forms.items()}
  err = {}
  for n, p in prepared.items():
    y, dx = (np.asarray(a, np.float64) for a in fn(x, p, g))
    err[n] = max(np.abs(y - ref_y).max() / np.abs(ref_y).max(),
                 np.abs(dx - ref_dx).max() / np.abs(ref_dx).max())
  t1 = _cpu(fn, (x, prepared["direct"], g), 1)
  n = max(1, int(0.4 / max(t1, 1e-4)))
  times = {k: [] for k in prepared}
  for _ in range(repeats):
    for k, p in prepared.items():
      times[k].append(_cpu(fn, (x, p, g), n))
  flops = 2 * 2 * b * ho * wo * 9 * cin * cout        # forward + input gradient, direct count
  med = {k: float(np.median(v)) for k, v in times.items()}
  print(f"{name:12s} B={b:<3d} {h}x{w}x{cin}->{cout}{' up' if up else '   '} "
        f"direct {med['direct'] * 1e3:7.2f} ms ({flops / med['direct'] / 1e9:4.0f} GF/cpu-s) | "
        + " | ".join(f"{k} {med[k] * 1e3:7.2f} ms {med['direct'] / med[k]:4.2f}x err {err[k]:.1e}"
                     for k in prepared if k not in ("direct", "fast"))
        + f" | fast = {_form_name(prepared['fast'])}"
        + (" (conv3x3's rule; the VGG model runs direct)" if name.startswith("vgg.") else ""),
        flush=True)
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
        "forward + input gradient with the kernel prepared beforehand (jaxinv.ops.conv3x3.prepare), "
        "median of interleaved repeats; speedup vs direct; err = max relative error of output and "
        "input gradient vs float64 direct; fast = the form the models take on CPU")
  for bs in (int(v) for v in a.batches.split(",")):
    layers = list(PGGAN_PREFIX) if bs == 1 else []
    layers += [(n, bs, h, w, ci, co, up) for n, _, h, w, ci, co, up in SUFFIX]
    for spec in layers:
      if a.only is None or a.only in spec[0]:
        measure(*spec, a.repeats)


if __name__ == "__main__":
  main()
