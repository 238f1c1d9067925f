"""Runs small sweeps in subprocesses for the sweep / distributed / sharding tests."""

import json
import os
import pathlib
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
  c.lock()
  return c


def sweep(add):
  for seed in (0, 1):
    add(seed=seed)
'''


def write_config(tmp_path, cache_dir) -> str:
  path = pathlib.Path(tmp_path) / "test_sweep_config.py"
  path.write_text(TEST_CONFIG.format(cache=str(cache_dir)))
  return str(path)


def env(**extra) -> dict:
  e = dict(os.environ)
  e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
  e["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
  e["JAX_PLATFORMS"] = "cpu"
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    e.pop(k, None)
  e.update({k: str(v) for k, v in extra.items()})
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
