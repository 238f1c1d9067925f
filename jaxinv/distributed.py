"""Multi-process start-up: ``jax.distributed`` from the usual environment, and per-process outputs.

Call :func:`initialize` once, before any JAX computation. It reads, in order:

* ``JAX_COORDINATOR_ADDRESS`` (``host:port``), ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``
  — explicit, works anywhere (two local CPU processes in the tests);
* a cluster JAX detects itself (SLURM ``SLURM_JOB_ID`` with several tasks, Open MPI
  ``OMPI_COMM_WORLD_SIZE``, a Cloud TPU pod ``TPU_WORKER_HOSTNAMES`` / ``MEGASCALE_*``):
  ``jax.distributed.initialize()`` without arguments;
* nothing: a single process (no-op).

Work is split with :func:`jaxinv.sharding.process_shard` (each process loads only its
own images). Every process writes its own files — :func:`process_suffix` names them —
so no two processes ever write the same path; readers merge them.
"""

from __future__ import annotations

import dataclasses
import os

__all__ = ["ProcessInfo", "initialize", "process_suffix", "ENV_ADDRESS", "ENV_COUNT", "ENV_INDEX"]

ENV_ADDRESS = "JAX_COORDINATOR_ADDRESS"
ENV_COUNT = "JAX_NUM_PROCESSES"
ENV_INDEX = "JAX_PROCESS_ID"

_AUTO_MARKERS = ("OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS")


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
  index: int          # this process, 0-based
  count: int          # number of processes
  initialized: bool   # whether jax.distributed was started (False: single process)


_STATE: ProcessInfo | None = None


def _auto_cluster(env) -> bool:
  if any(k in env for k in _AUTO_MARKERS):
    return True
  return "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1


# A process whose batches are done waits at jax's shutdown barrier while the others finish theirs
# (the first one also collects every batch, waiting up to the driver's wait_s): jax's 5-minute
# default kills a run whose processes' last batches end more than 5 minutes apart.
SHUTDOWN_TIMEOUT_S = 24 * 3600


def initialize(env=None) -> ProcessInfo:
  """Starts ``jax.distributed`` if the environment asks for several processes (idempotent).

  Raises:
    ValueError: the explicit variables are incomplete or inconsistent.
  """
  global _STATE
  if _STATE is not None:
    return _STATE
  import jax
  env = os.environ if env is None else env
  if ENV_ADDRESS in env:
    missing = [k for k in (ENV_COUNT, ENV_INDEX) if k not in env]
    if missing:
      raise ValueError(f"{ENV_ADDRESS} is set but {', '.join(missing)} is not: set all three "
                       f"({ENV_ADDRESS}=host:port {ENV_COUNT}=P {ENV_INDEX}=i)")
    count, index = int(env[ENV_COUNT]), int(env[ENV_INDEX])
    if not 0 <= index < count:
      raise ValueError(f"{ENV_INDEX}={index} outside [0, {ENV_COUNT}={count})")
    jax.distributed.initialize(env[ENV_ADDRESS], num_processes=count, process_id=index,
                               shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    _STATE = ProcessInfo(jax.process_index(), jax.process_count(), True)
  elif _auto_cluster(env):
    jax.distributed.initialize(shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    _STATE = ProcessInfo(jax.process_index(), jax.process_count(), True)
  else:
    _STATE = ProcessInfo(0, 1, False)
  return _STATE


def process_info() -> ProcessInfo:
  """The :class:`ProcessInfo` (initialising on first use)."""
  return initialize()


def process_suffix(info: ProcessInfo | None = None) -> str:
  """``""`` for a single process, else ``".process-i-of-P"`` (for per-process file names)."""
  info = process_info() if info is None else info
  return "" if info.count == 1 else f".process-{info.index}-of-{info.count}"
