"""jaxinv.distributed: two local processes (jax.distributed over CPU) give the single-process table."""

import pytest

from jaxinv.experiments import sweep
from jaxinv import distributed
from tests import sweep_helpers as H

FLOAT_FIELDS = ("loss", "psnr", "ssim", "lpips")


def test_single_process_without_env():
  info = distributed.initialize(env={})
  assert (info.index, info.count) == (0, 1)
  assert distributed.process_suffix(info) == ""
  assert distributed.process_suffix(distributed.ProcessInfo(1, 2, True)) == ".process-1-of-2"


def test_incomplete_env_is_refused(monkeypatch):
  monkeypatch.setattr(distributed, "_STATE", None)
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
    distributed.initialize(env={"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"})


# Each process pads its share to the same batch shape and seeds every image by its name, so it runs
# the one-process programs on the same numbers: measured bit-equal (0) here, under AVX2 and AVX-512.
TWO_PROCESS_ATOL = 0.0


def compare_tables(a, b, atol=TWO_PROCESS_ATOL):
  assert [(r["config_hash"], r["image"]) for r in a] == [(r["config_hash"], r["image"]) for r in b]
  worst = 0.0
  for ra, rb in zip(a, b):
    assert {k: v for k, v in ra.items() if k not in FLOAT_FIELDS} == \
           {k: v for k, v in rb.items() if k not in FLOAT_FIELDS}
    for k in FLOAT_FIELDS:
      if k in ra:
        worst = max(worst, abs(ra[k] - rb[k]))
  assert worst <= atol, f"two-process vs one-process table: max abs difference {worst:.3g}"
  return worst


def test_two_processes_same_table(tmp_path):
  cache = tmp_path / "models"
  config = H.write_config(tmp_path, cache)
  _, points = sweep.load_config(config)
  sweep.load_model_cached(points[0].generator, str(cache))
  single = tmp_path / "single"
  sweep.run_sweep(points, str(single), progress=False)

  multi = tmp_path / "multi"
  outs = H.run_processes(H.sweep_cmd(config, multi))
  assert "process 0/2" in outs[0][0] and "process 1/2" in outs[1][0]
  files = sorted(f.name for f in multi.glob("results*.jsonl"))
  assert files == ["results.process-0-of-2.jsonl", "results.process-1-of-2.jsonl"]
  # Each process ran only its own images.
  images = [{r["image"] for r in H.raw_lines_of(multi / f)} for f in files]
  assert not images[0] & images[1]
  worst = compare_tables(H.table(multi), H.table(single))
  print(f"two-process vs one-process max abs difference: {worst:.3g}")


def test_two_processes_resume_each_others_kill(tmp_path):
  """Both processes killed while their batches are in flight, rerun: each resumes its own batch
  from its own checkpoint, and the table is the one-process table. The generator is a checkpoint
  file and the model cache starts empty, so the second process's model comes from its own
  in-memory conversion or the first's cache, whichever exists when it looks."""
  import numpy as np
  config = H.write_config(tmp_path, tmp_path / "models")
  _, points = sweep.load_config(config)
  single = tmp_path / "single"
  sweep.run_sweep(points, str(single), progress=False)

  multi = tmp_path / "multi"
  second = "*.process-1-of-2/step_*.npz"
  hit = H.kill_processes_when(H.sweep_cmd(config, multi),
                              lambda: sorted((multi / "inflight").glob(second)),
                              JAXINV_PAUSE_AFTER_CHECKPOINT=2)
  assert not list(multi.glob("results*.jsonl")) or not H.raw_lines(multi)
  with np.load(hit[-1]) as f:
    leaves = [f[k] for k in f.files if k.startswith("leaf_")]
  assert leaves and all(a.size for a in leaves), f"{hit[-1]} holds no state"

  outs = H.run_processes(H.sweep_cmd(config, multi))
  assert "resuming" in outs[1][1], outs[1][1][-2000:]
  lines = H.raw_lines(multi)
  assert len(lines) == len({(r["config_hash"], r["image"]) for r in lines}) == len(H.table(single))
  worst = compare_tables(H.table(multi), H.table(single))
  print(f"killed and resumed two-process vs one-process max abs difference: {worst:.3g}")
