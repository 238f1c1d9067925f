"""Runs small sweeps in subprocesses for the sweep / distributed / sharding tests."""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent

# One compiled program: 1 (N, ℓ) point × 2 seeds × 2 images = 4 results in 2 batches of 2.
TEST_CONFIG = '''
from jaxinv.experiments.configs import tiny


def get_config(arg=""):
  c = tiny.get_config("test")
  c.unlock()
  c.batch = 2
  c.model_cache = {cache!r}
  c.generator = {generator!r}
  c.lock()
  return c


def sweep(add):
  for seed in (0, 1):
    add(seed=seed)
'''


def golden_generator() -> str:
  """The mganprior case's PGGAN checkpoint, under ``$JAXINV_GOLDEN`` (its expected.json names it)."""
  from tests.conftest import golden_file
  return str(golden_file("mganprior", "pggan", "checkpoint"))


def write_config(tmp_path, cache_dir) -> str:
  """:data:`TEST_CONFIG` with the golden generator, caching converted models in ``cache_dir``."""
  path = pathlib.Path(tmp_path) / "test_sweep_config.py"
  path.write_text(TEST_CONFIG.format(cache=str(cache_dir), generator=golden_generator()))
  return str(path)


def env(**extra) -> dict:
  e = dict(os.environ)
  e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
  e["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
  e["JAX_PLATFORMS"] = "cpu"
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    e.pop(k, None)
  extra = {k: str(v) for k, v in extra.items()}
  if "XLA_FLAGS" in extra and e.get("XLA_FLAGS"):   # keep the caller's (e.g. an ISA cap)
    extra["XLA_FLAGS"] = f"{e['XLA_FLAGS']} {extra['XLA_FLAGS']}"
  e.update(extra)
  return e


def sweep_cmd(config, out):
  return [sys.executable, "-m", "jaxinv.experiments.sweep", "--config", config, "--out", str(out),
          "--no-progress"]


def run_sweep(config, out, timeout=300, **extra_env):
  p = subprocess.run(sweep_cmd(config, out), cwd=REPO, env=env(**extra_env), capture_output=True,
                     text=True, timeout=timeout)
  assert p.returncode == 0, f"sweep failed ({p.returncode}):\n{p.stderr[-4000:]}"
  return p


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def table(out):
  from jaxinv.experiments import runlog
  return runlog.read_results(str(out))


def raw_lines(out):
  lines = []
  for p in sorted(pathlib.Path(out).glob("results*.jsonl")):
    lines += [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
  return lines


def raw_lines_of(path):
  return [json.loads(l) for l in pathlib.Path(path).read_text().splitlines() if l.strip()]


def _kill_all_when(procs, log, kill_point, timeout):
  """``kill -9``s every one of ``procs`` as soon as ``kill_point()`` returns something truthy
  (polled every 50 ms, while all run); returns that value. Fails with the tail of ``log`` (their
  shared output file) if it never comes."""
  import signal
  import time
  hit, deadline = None, time.time() + timeout
  try:
    while time.time() < deadline and all(p.poll() is None for p in procs):
      hit = kill_point()
      if hit:
        break
      time.sleep(0.05)
  finally:
    for p in procs:
      if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
      p.wait()
  log.seek(0)
  assert hit, "never reached the kill point:\n" + log.read().decode()[-3000:]
  return hit


def kill_when(cmd, kill_point, env_extra=None, timeout=400):
  """Starts ``cmd`` and kills it once ``kill_point()`` is truthy (:func:`_kill_all_when`)."""
  import tempfile
  with tempfile.TemporaryFile() as log:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(**(env_extra or {})), stdout=log, stderr=log)
    return _kill_all_when([proc], log, kill_point, timeout)


def kill_processes_when(cmd, kill_point, count: int = 2, timeout: int = 400, **extra_env):
  """:func:`kill_when` for ``count`` processes of one ``jax.distributed`` job: all are killed."""
  import tempfile
  with tempfile.TemporaryFile() as log:
    procs = _start_processes(cmd, count, extra_env, stdout=log, stderr=log)
    return _kill_all_when(procs, log, kill_point, timeout)


def sweep_checkpoints(out, finished: int | None = None):
  """In-flight checkpoints (``step_N.npz`` files) of a sweep's unfinished batches, once
  ``finished`` records are on disk (None: any number)."""
  out = pathlib.Path(out)
  lines = raw_lines(out) if (out / "results.jsonl").exists() else []
  if not (out / "inflight").exists() or (finished is not None and len(lines) != finished):
    return []
  done = {(r["config_hash"], r["image"]) for r in lines}
  return [p for p in (out / "inflight").glob("*/step_*") if re.fullmatch(r"step_\d+\.npz", p.name)
          and not {tuple(k) for k in json.loads((p.parent / "meta.json").read_text())["items"]} & done]


def driver_checkpoints(out):
  """In-flight checkpoints of ``OUT/.jaxinv-work`` batches not yet finished, once one batch is
  (a finished batch's checkpoint is deleted just after its ``done/`` file appears)."""
  work = pathlib.Path(out) / ".jaxinv-work"
  done = {p.stem for p in (work / "done").glob("*.npz")} if (work / "done").exists() else set()
  return [p for p in (work / "inflight").glob("*/step_*")
          if re.fullmatch(r"step_\d+\.npz", p.name) and p.parent.name not in done] if done else []


def _start_processes(cmd, count, extra_env, **popen):
  port = free_port()
  return [subprocess.Popen(cmd, cwd=REPO, env=env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                                  JAX_NUM_PROCESSES=count, JAX_PROCESS_ID=i,
                                                  **extra_env), **popen)
          for i in range(count)]


def run_processes(cmd, count: int = 2, timeout: int = 400, **extra_env):
  """Runs ``cmd`` as ``count`` processes of one ``jax.distributed`` job on this machine; returns
  their ``(stdout, stderr)``, failing with a process's stderr if any exits non-zero."""
  procs = _start_processes(cmd, count, extra_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
  outs = [p.communicate(timeout=timeout) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  return outs
