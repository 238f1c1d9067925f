"""Benchmark of the multi-code inversion step: ``python -m jaxinv.experiments.bench.bench_invert [--quick|--tiny]``.

Setting: PGGAN-64 (fmaps_base 16384, fmaps_max 512, random weights), N = 20
codes, composing layer ℓ = 6, loss L2 + VGG16 features[:16] (random weights, mGANprior's
resize to 256), plain SGD, batches 1 / 4 / 8, float32 and the opt-in bf16 compute mode
(``MultiCode(compute_dtype="bfloat16")`` + ``VGGLossConfig(compute_dtype="bfloat16")``).

Prints, per (dtype, batch): image-steps/s and process CPU seconds per image-step of
:func:`jaxinv.inversion.optimize.optimize` as users run it (its default loop structure for the
backend, compile excluded, best of ``--repeats``), achieved FLOP/s (XLA cost analysis of the
single-step program × steps / wall time), the fraction of this process's measured dense matmul
and 3×3-conv peaks, and compiled memory (total and per image); then how far bf16 moves the loss
trajectory from float32 (same init, same target). It never passes or fails: it reports figures
and ratios. The load average is printed first: the CPU machine is shared, so quote CPU seconds.

``--quick``: batches 1 and 8, fewer steps. ``--tiny``: a 32 px, narrow model for a CPU smoke run.
``--conv-impls direct,fast`` times the PGGAN convolution implementations
(:mod:`jaxinv.ops.conv3x3`) side by side in one run and compares their loss trajectories.
``--profile DIR`` writes a ``jax.profiler`` trace of one timed run per setting and prints where
its wall time went, by layer, direction and kind of op (:mod:`.step_profile`).
``--official-src DIR``: side by side with the official loop (see :func:`official_figures`);
without it the figures are printed alone.

Then a waste audit: XLA compilations during a warm rerun (must be 0: no retracing); CPU and wall
time, best of interleaved repeats, of the loop against the bare jitted step called from a Python
loop (the loop's overhead) and against the ``lax.scan`` structure; the largest loss difference
between the two structures; and the transpose / copy ops left in the optimised step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.inversion import objectives, optimize as opt_lib, spaces
from jaxinv.inversion.methods import mganprior
from jaxinv.models import pggan, vgg as vgg_lib
from jaxinv.ops import conv3x3
from jaxinv.experiments.bench import step_profile

DTYPES = ("float32", "bfloat16")


def _params(module, *example):
  return module.init(jax.random.PRNGKey(0), *example)["params"]   # eager: jit(init) compiles for minutes


def build(cfg: dict, compute_dtype: str):
  """(loss_fn, optimizer, shared, space, batch_data) for the benchmark setting; ``batch_data(B)``
  is the loop's data for B copies of one target, made as ``mganprior.invert`` makes it."""
  gcfg = pggan.PGGANConfig(resolution=cfg["resolution"], fmaps_base=cfg["fmaps_base"],
                           fmaps_max=cfg["fmaps_max"], conv_impl=cfg.get("conv_impl", "auto"))
  gen = pggan.PGGANGenerator(gcfg)
  gparams = _params(gen, jnp.zeros((1, gcfg.z_dim)))
  vgg = vgg_lib.VGG16Features(cfg["vgg_layer"])
  vparams = _params(vgg, jnp.zeros((1, 32, 32, 3)))
  space = spaces.MultiCode(gen, cfg["layer"], cfg["codes"], compute_dtype=compute_dtype)
  loss_cfg = objectives.LossConfig(
      loss="combine", l2_lambda=1.0, vgg_lambda=1.0,
      vgg=objectives.VGGLossConfig(num_modules=cfg["vgg_layer"], size=cfg["vgg_size"],
                                   compute_dtype=compute_dtype))
  loss_fn = mganprior.make_loss_fn(space, loss_cfg)
  optimizer = mganprior._optimizer("sgd", cfg["lr"])
  target = jnp.tanh(gen.apply({"params": gparams}, jax.random.normal(jax.random.PRNGKey(1),
                                                                      (1, gcfg.z_dim))))[0]
  batch_data = lambda b: mganprior.make_data(jnp.broadcast_to(target, (b,) + target.shape),
                                             loss_cfg, vparams)
  # As mganprior runs it: the frozen generator's kernels transformed once (space.prepare), not at
  # every step.
  return loss_fn, optimizer, {"generator": space.prepare(gparams), "vgg": vparams}, space, batch_data


def _chunk_fn(loss_fn, optimizer, length):
  # The loop's own compiled program (cached on the same objects optimize() uses): a lax.scan
  # chunk of ``length`` steps, or with length None the single step the "step" loop dispatches.
  return opt_lib._cached_chunk(loss_fn, optimizer, None, False, length)


def _inputs(space, optimizer, target, batch):
  init = space.init(jax.random.PRNGKey(2), batch)
  state = opt_lib.init_state(init, optimizer)
  data = target(batch)
  return state, data


_FLOPS_B1: dict = {}


def _flops_per_image_step(cfg, compute_dtype, loss_fn, optimizer, space, target, shared):
  # Cost analysis of the single-step program at batch 1, once per dtype; a step of batch B does
  # B times that work (vmap, no coupling).
  key = (compute_dtype, cfg.get("conv_impl", "auto"))
  if key not in _FLOPS_B1:
    state, data = _inputs(space, optimizer, target, 1)
    one = _chunk_fn(loss_fn, optimizer, None).lower(state, data, shared).compile()
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    _FLOPS_B1[key] = float(cost.get("flops", float("nan")))
  return _FLOPS_B1[key]


def _timed(fn, repeats):
  """Best (wall s, process CPU s) of ``repeats`` calls of ``fn`` (which blocks)."""
  ts = []
  for _ in range(repeats):
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    ts.append((time.perf_counter() - t0, time.process_time() - c0))
  return min(t[0] for t in ts), min(t[1] for t in ts)


def measure(cfg, compute_dtype, batch, steps, repeats, profile_dir=None):
  """The loop as users run it (optimize(), default structure for this backend), compile excluded."""
  loss_fn, optimizer, shared, space, target = build(cfg, compute_dtype)
  flops_step = batch * _flops_per_image_step(cfg, compute_dtype, loss_fn, optimizer, space, target,
                                             shared)
  state, data = _inputs(space, optimizer, target, batch)
  loop = opt_lib.default_loop(loss_fn)
  prog = _chunk_fn(loss_fn, optimizer, None if loop == "step" else steps)
  compiled = prog.lower(state, data, shared).compile()
  mem = compiled.memory_analysis()
  mem_total = None
  if mem is not None:
    mem_total = int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
                    - getattr(mem, "alias_size_in_bytes", 0))
  run = lambda: opt_lib.optimize(loss_fn, state.variables, data, optimizer, steps, shared=shared,
                                 progress=False, chunk=steps)
  t0 = time.perf_counter()
  res = run()                                        # compiles
  compile_s = time.perf_counter() - t0
  profile = None
  if profile_dir:
    jax.profiler.start_trace(profile_dir)
    run()
    jax.profiler.stop_trace()
    profile = step_profile.summarize(profile_dir, compiled.as_text(), steps)
  wall, cpu = _timed(run, repeats)
  return {"dtype": compute_dtype, "batch": batch, "conv_impl": cfg.get("conv_impl", "auto"),
          "steps": steps, "loop": loop, "seconds": wall,
          "cpu_seconds": cpu, "cpu_s_per_image_step": cpu / (batch * steps),
          "compile_s": compile_s, "image_steps_per_s": batch * steps / wall,
          "flops_per_step": flops_step, "flops_per_s": flops_step * steps / wall,
          "mem_total_bytes": mem_total, "final_loss": float(res.loss[-1].mean()), "profile": profile}


def _hlo_op_counts(compiled) -> dict:
  text = compiled.as_text()
  return {op: len(re.findall(rf"= \S+ {op}\(", text)) for op in ("transpose", "copy", "convolution",
                                                               "dot", "fusion")}


def waste_audit(cfg, compute_dtype, batch, steps, chunk, repeats=3) -> dict:
  """The loop against the bare step and the scan structure.

  Compiles during warm reruns; best-of-``repeats`` wall and process CPU time, interleaved, of
  (a) optimize() as users run it (default structure, chunked, checkpoint-free), (b) the bare
  jitted step called from a Python loop with no host reads, (c) optimize(loop="scan"); the
  largest loss difference between the structures; layout ops in the optimised step.
  """
  loss_fn, optimizer, shared, space, target = build(cfg, compute_dtype)
  state, data = _inputs(space, optimizer, target, batch)
  compiles = []
  listener = lambda name, secs, **kw: compiles.append(name) if "backend_compile" in name else None
  runs = {}
  for loop in ("step", "scan"):
    runs[loop] = lambda loop=loop: opt_lib.optimize(
        loss_fn, state.variables, data, optimizer, steps, shared=shared, progress=False,
        chunk=chunk, loop=loop)
  default = opt_lib.default_loop(loss_fn)
  step_fn = _chunk_fn(loss_fn, optimizer, None)

  def bare():
    st = opt_lib.init_state(state.variables, optimizer)
    for _ in range(steps):
      st, loss, _, _ = step_fn(st, data, shared)
    jax.block_until_ready(loss)

  losses = {loop: run().loss for loop, run in runs.items()}   # compiles
  bare()
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    runs[default]()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  fns = {"loop": runs[default], "bare_step": bare, "scan": runs["scan"]}
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      times[name].append(_timed(fn, 1))          # optimize() returns host arrays: it has waited
  best = {k: (min(t[0] for t in v), min(t[1] for t in v)) for k, v in times.items()}
  compiled = step_fn.lower(state, data, shared).compile()
  diff = np.abs(losses["step"] - losses["scan"]) / np.abs(losses["scan"])
  return {"dtype": compute_dtype, "batch": batch, "steps": steps, "chunk": chunk, "loop": default,
          "repeats": repeats, "warm_compiles": len(compiles),
          **{f"{k}_wall_s": v[0] for k, v in best.items()},
          **{f"{k}_cpu_s": v[1] for k, v in best.items()},
          "loop_overhead_cpu": best["loop"][1] / best["bare_step"][1] - 1.0,
          "loop_overhead_wall": best["loop"][0] / best["bare_step"][0] - 1.0,
          "scan_over_step_cpu": best["scan"][1] / best["bare_step"][1],
          "step_vs_scan_max_rel_loss_diff": float(diff.max()),
          "hlo_ops": _hlo_op_counts(compiled)}


def _time(f, *args, repeats=5):
  jax.block_until_ready(f(*args))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    ts.append(time.perf_counter() - t0)
  return float(np.min(ts))


def peaks(dtype: str, small: bool) -> dict:
  """Measured dense matmul and 3×3 conv throughput (FLOP/s) in ``dtype``."""
  dt = jnp.dtype(dtype)
  n = 1024 if small else 8192
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dt)
  mm = jax.jit(lambda x, y: x @ y)
  t_mm = _time(mm, a, a)
  b, hw, c = (2, 16, 128) if small else (64, 32, 512)
  x = jax.random.normal(jax.random.PRNGKey(1), (b, hw, hw, c), dt)
  k = jax.random.normal(jax.random.PRNGKey(2), (3, 3, c, c), dt)
  conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
  t_conv = _time(conv, x, k)
  return {"matmul": 2 * n ** 3 / t_mm, "conv": 2 * b * hw * hw * c * c * 9 / t_conv}


def bf16_effect(cfg, steps) -> dict:
  """Loss trajectories of float32 vs bf16 from the same init (batch 1)."""
  out = {}
  for dt in DTYPES:
    loss_fn, optimizer, shared, space, target = build(cfg, dt)
    state, data = _inputs(space, optimizer, target, 1)
    res = opt_lib.optimize(loss_fn, state.variables, data, optimizer, steps, shared=shared,
                           progress=False, chunk=steps)
    out[dt] = res.loss[:, 0].astype(np.float64)
  rel = np.abs(out["bfloat16"] - out["float32"]) / np.abs(out["float32"])
  return {"steps": steps, "loss_f32": out["float32"].tolist(), "loss_bf16": out["bfloat16"].tolist(),
          "max_rel_diff": float(rel.max()), "final_rel_diff": float(rel[-1]),
          "f32_decrease": float(out["float32"][0] - out["float32"][-1]),
          "bf16_decrease": float(out["bfloat16"][0] - out["bfloat16"][-1])}


def trajectory(cfg, conv_impl, steps) -> np.ndarray:
  """The float32 batch-1 loss trajectory from the benchmark's init (what the official runner
  reports for the same setting)."""
  loss_fn, optimizer, shared, space, target = build(dict(cfg, conv_impl=conv_impl), "float32")
  state, data = _inputs(space, optimizer, target, 1)
  res = opt_lib.optimize(loss_fn, state.variables, data, optimizer, steps, shared=shared,
                         progress=False, chunk=steps)
  return res.loss[:, 0].astype(np.float64)


def conv_impl_effect(cfg, impls, steps) -> dict:
  """Loss trajectories (float32, batch 1, same init) of each PGGAN convolution implementation
  against the first."""
  out = {ci: trajectory(cfg, ci, steps) for ci in impls}
  ref = out[impls[0]]
  return {"steps": steps, "loss": {k: v.tolist() for k, v in out.items()},
          "first_step_rel_diff": {k: float(abs(v[0] - ref[0]) / abs(ref[0])) for k, v in out.items()},
          "max_rel_diff": {k: float((np.abs(v - ref) / np.abs(ref)).max()) for k, v in out.items()}}


OFFICIAL_RUNNER = "jaxinv_bench_step.py"


def official_figures(src: str | None, python: str | None, cfg: dict, steps: int,
                     repeats: int = 1) -> dict | None:
  """Figures of the official loop on the same setting, or None when unavailable.

  The official code is not vendored here. ``DIR`` must hold ``jaxinv_bench_step.py``, a runner
  written against that checkout which takes ``--resolution --fmaps-base --fmaps-max --codes
  --layer --vgg-layer --vgg-size --lr --steps`` and prints one JSON line with ``cpu_s_per_step``,
  ``wall_s_per_step`` and ``loss`` (the per-step trajectory). Run ``repeats`` times; the best
  wall and CPU figures are kept (all runs under ``runs``).
  """
  if not src:
    return None
  runner = os.path.abspath(os.path.join(src, OFFICIAL_RUNNER))   # run with cwd=src
  if not os.path.isfile(runner):
    print(f"official loop: not run ({runner} not found); figures below are jaxinv's alone")
    return None
  import subprocess
  import sys
  cmd = [python or sys.executable, runner, "--steps", str(steps)]
  for k in ("resolution", "fmaps_base", "fmaps_max", "codes", "layer", "vgg_layer", "vgg_size", "lr"):
    cmd += [f"--{k.replace('_', '-')}", str(cfg[k])]
  runs = []
  for _ in range(max(1, repeats)):
    out = subprocess.run(cmd, cwd=src, capture_output=True, text=True, check=True)
    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
  # The best run, as jaxinv's figures are the best of its repeats.
  best = dict(min(runs, key=lambda r: r["wall_s_per_step"]))
  best["cpu_s_per_step"] = min(r["cpu_s_per_step"] for r in runs)
  best["runs"] = [{k: r[k] for k in ("cpu_s_per_step", "wall_s_per_step")} for r in runs]
  return best


def _fmt(x, unit=""):
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "n/a"
  for s, p in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(x) >= p:
      return f"{x / p:.3g} {s}{unit}"
  return f"{x:.3g} {unit}"


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m jaxinv.experiments.bench.bench_invert",
                              description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true", help="batches 1 and 8, fewer steps")
  p.add_argument("--tiny", action="store_true", help="32 px narrow model (CPU smoke run)")
  p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,4,8)")
  p.add_argument("--steps", type=int, default=None, help="steps per timed chunk")
  p.add_argument("--repeats", type=int, default=None)
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--precision", default="default", choices=("default", "high", "highest"),
                 help="jax_default_matmul_precision for float32 (GPU: default may use TF32)")
  p.add_argument("--conv-impls", default="auto",
                 help="comma-separated PGGAN conv implementations to time side by side "
                      "(jaxinv.ops.conv3x3.CONV_IMPLS; 'fast' is the measured CPU choice)")
  p.add_argument("--vgg-size", type=int, default=None,
                 help="size VGG sees (mGANprior's --image_size; default 256, the script's default)")
  p.add_argument("--profile", default=None, help="write a jax.profiler trace per setting here")
  p.add_argument("--json", default=None, help="also write every figure to this JSON file")
  p.add_argument("--official-src", default=None, metavar="DIR",
                 help="official mGANprior checkout to run side by side (see official_figures)")
  p.add_argument("--official-python", default=None,
                 help="the Python (torch venv) that runs the official code (default: this one)")
  args = p.parse_args(argv)
  cfg = {"resolution": 64, "fmaps_base": 16384, "fmaps_max": 512, "codes": 20, "layer": 6,
         "vgg_layer": 16, "vgg_size": 256, "lr": 1.0}
  batches, steps, repeats = (1, 4, 8), 20, 3
  if args.quick:
    batches, steps, repeats = (1, 8), 10, 2
  if args.tiny:
    cfg.update(resolution=32, fmaps_base=512, fmaps_max=32, codes=4, layer=4, vgg_size=64)
    batches, steps, repeats = (1, 4), 3, 2
  if args.vgg_size:
    cfg["vgg_size"] = args.vgg_size
  batches = tuple(int(b) for b in args.batches.split(",")) if args.batches else batches
  steps = args.steps or steps
  repeats = args.repeats or repeats
  dtypes = tuple(args.dtypes.split(","))
  impls = tuple(args.conv_impls.split(","))
  jax.config.update("jax_default_matmul_precision", args.precision)
  dev = jax.devices()[0]
  print(f"load average (1/5/15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
        f"{os.cpu_count()} CPUs; CPU-s are process CPU time (less sensitive to other load)")
  print(f"device: {dev.device_kind} ({dev.platform}) × {jax.device_count()}; jax {jax.__version__}; "
        f"matmul precision {args.precision}")
  print(f"setting: PGGAN-{cfg['resolution']} fmaps_base {cfg['fmaps_base']} fmaps_max {cfg['fmaps_max']} "
        f"(random), N={cfg['codes']}, ℓ={cfg['layer']}, L2 + VGG16[:{cfg['vgg_layer']}] @ "
        f"{cfg['vgg_size']} px, SGD; {steps} steps per timed chunk, best of {repeats}")
  small = args.tiny or dev.platform == "cpu"
  pk = {dt: peaks(dt, small) for dt in dtypes}
  for dt, v in pk.items():
    print(f"measured peak {dt}: matmul {_fmt(v['matmul'], 'FLOP/s')}, 3x3 conv {_fmt(v['conv'], 'FLOP/s')}")
  print("conv impl 'auto' here resolves to "
        f"{conv3x3.resolve('auto')!r} (jaxinv.ops.conv3x3.resolve)")
  rows = []
  for ci, dt, b in ((ci, dt, b) for ci in impls for dt in dtypes for b in batches):
    prof = os.path.join(args.profile, f"{ci}_{dt}_b{b}") if args.profile else None
    r = measure(dict(cfg, conv_impl=ci), dt, b, steps, repeats, prof)
    peak = max(pk[dt].values())
    r["frac_matmul_peak"] = r["flops_per_s"] / pk[dt]["matmul"]
    r["frac_conv_peak"] = r["flops_per_s"] / pk[dt]["conv"]
    r["frac_best_peak"] = r["flops_per_s"] / peak
    rows.append(r)
  base = {(r["conv_impl"], r["batch"]): r for r in rows if r["dtype"] == "float32"}
  print()
  print(f"{'conv':9} {'dtype':9} {'B':>3} {'img-steps/s':>12} {'CPU-s/img-step':>14} {'FLOP/step':>11} {'FLOP/s':>11} "
        f"{'%mm peak':>8} {'%conv pk':>8} {'mem total':>10} {'mem/img':>10} {'vs f32':>7} {'vs B=1':>7}")
  for r in rows:
    same = [q for q in rows if (q["dtype"], q["conv_impl"]) == (r["dtype"], r["conv_impl"])]
    b1 = min(same, key=lambda q: q["batch"])
    mem_img = r["mem_total_bytes"] / r["batch"] if r["mem_total_bytes"] else None
    f32 = base.get((r["conv_impl"], r["batch"]))
    print(f"{r['conv_impl']:9} {r['dtype']:9} {r['batch']:>3} {r['image_steps_per_s']:>12.4g} {r['cpu_s_per_image_step']:>14.4g} "
          f"{_fmt(r['flops_per_step']):>11} "
          f"{_fmt(r['flops_per_s']):>11} {100 * r['frac_matmul_peak']:>7.1f}% {100 * r['frac_conv_peak']:>7.1f}% "
          f"{_fmt(r['mem_total_bytes'], 'B'):>10} {_fmt(mem_img, 'B'):>10} "
          f"{r['image_steps_per_s'] / f32['image_steps_per_s'] if f32 else float('nan'):>6.2f}x "
          f"{r['image_steps_per_s'] / b1['image_steps_per_s']:>6.2f}x")
  for r in (r for r in rows if r["profile"]):
    where = os.path.join(args.profile, f"{r['conv_impl']}_{r['dtype']}_b{r['batch']}")
    print(f"\nprofile ({r['conv_impl']}, {r['dtype']}, B={r['batch']}; trace in {where}):")
    print(step_profile.format_summary(r["profile"]))
  first = {(r["dtype"], r["batch"]): r for r in reversed(rows)}
  for r in rows:
    if r["conv_impl"] != impls[0]:
      f = first[(r["dtype"], r["batch"])]
      print(f"conv {r['conv_impl']} vs {impls[0]} ({r['dtype']}, B={r['batch']}): CPU-s per image-step "
            f"{r['cpu_s_per_image_step']:.4g} vs {f['cpu_s_per_image_step']:.4g} "
            f"({f['cpu_s_per_image_step'] / r['cpu_s_per_image_step']:.2f}x faster), image-steps/s "
            f"{r['image_steps_per_s'] / f['image_steps_per_s']:.2f}x")
  conv_effect = None
  if len(impls) > 1:
    conv_effect = conv_impl_effect(cfg, impls, max(steps, 10))
    for ci in impls[1:]:
      print(f"conv {ci} vs {impls[0]} loss trajectory over {conv_effect['steps']} steps (float32, "
            f"B=1, same init): first step relative difference "
            f"{conv_effect['first_step_rel_diff'][ci]:.3g}, max {conv_effect['max_rel_diff'][ci]:.3g}")
  by_dt = {}
  for r in rows:
    by_dt.setdefault((r["dtype"], r["conv_impl"]), []).append(r)
  for (dt, ci), rs in by_dt.items():
    if len(rs) > 1 and all(q["mem_total_bytes"] for q in rs):
      lo, hi = min(rs, key=lambda q: q["batch"]), max(rs, key=lambda q: q["batch"])
      slope = (hi["mem_total_bytes"] - lo["mem_total_bytes"]) / (hi["batch"] - lo["batch"])
      print(f"{dt} ({ci}): marginal memory per extra image {_fmt(slope, 'B')} "
            f"(B={lo['batch']}→{hi['batch']}); compile {lo['compile_s']:.1f}s (B={lo['batch']})")
  effect = None
  if "bfloat16" in dtypes and "float32" in dtypes:
    effect = bf16_effect(cfg, max(steps, 10))
    print(f"bf16 vs float32 loss trajectory over {effect['steps']} steps (B=1, same init): "
          f"max relative difference {effect['max_rel_diff']:.3g}, at the last step "
          f"{effect['final_rel_diff']:.3g}; loss decrease f32 {effect['f32_decrease']:.4g}, "
          f"bf16 {effect['bf16_decrease']:.4g}")
  audit = waste_audit(cfg, dtypes[0], batches[0], 4 * max(1, steps // 4), max(1, steps // 4),
                      repeats=max(2, repeats))
  ops = ", ".join(f"{k} {v}" for k, v in audit["hlo_ops"].items())
  a = audit
  print(f"waste audit ({a['dtype']}, B={a['batch']}, {a['steps']} steps in chunks of {a['chunk']}, "
        f"best of {a['repeats']} interleaved): {a['warm_compiles']} compilations in a warm rerun; "
        f"CPU s / wall s: loop ({a['loop']}) {a['loop_cpu_s']:.3g} / {a['loop_wall_s']:.3g}, bare jitted "
        f"step {a['bare_step_cpu_s']:.3g} / {a['bare_step_wall_s']:.3g} (loop overhead CPU "
        f"{100 * a['loop_overhead_cpu']:+.1f}%, wall {100 * a['loop_overhead_wall']:+.1f}%), lax.scan chunks "
        f"{a['scan_cpu_s']:.3g} / {a['scan_wall_s']:.3g} ({a['scan_over_step_cpu']:.2f}x the bare step's CPU); "
        f"step vs scan loss max relative difference {a['step_vs_scan_max_rel_loss_diff']:.2g}; "
        f"optimised step HLO: {ops}")
  official = official_figures(args.official_src, args.official_python, cfg, steps, repeats)
  if official is not None:
    off = 1.0 / official["wall_s_per_step"]
    per_run = ", ".join(f"{r['cpu_s_per_step']:.3g}" for r in official["runs"])
    print(f"official runner: {official.get('what', 'the official loop')}, torch "
          f"{official.get('torch', '?')}, {official.get('threads', '?')} threads; best of "
          f"{len(official['runs'])} runs of {steps} steps (CPU-s per step: {per_run})")
    ref = np.asarray(official["loss"], np.float64)
    official["trajectory_rel_diff"] = {}
    for ci in impls:
      rel = np.abs(trajectory(cfg, ci, len(ref)) - ref) / np.abs(ref)
      official["trajectory_rel_diff"][ci] = rel.tolist()
      print(f"loss trajectory vs official ({len(ref)} steps, conv {ci}): first step relative "
            f"difference {rel[0]:.3g}, max {rel.max():.3g}")
    for r in (r for r in rows if r["dtype"] == "float32"):
      print(f"vs official (float32, conv {r['conv_impl']}, B={r['batch']}): image-steps/s {r['image_steps_per_s']:.4g} vs "
            f"{off:.4g} ({r['image_steps_per_s'] / off:.2f}x); CPU-s per image-step "
            f"{r['cpu_s_per_image_step']:.4g} vs {official['cpu_s_per_step']:.4g} "
            f"({official['cpu_s_per_step'] / r['cpu_s_per_image_step']:.2f}x)")
  elif not args.official_src:
    print("official loop: not run (no --official-src); figures above are jaxinv's alone")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"config": cfg, "peaks": pk, "rows": rows, "bf16_effect": effect, "waste_audit": audit,
                 "official": official, "conv_impl_effect": conv_effect, "loadavg": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
  main()
