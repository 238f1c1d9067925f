"""The driver every method runs through, and each image's randomness from its identity.

An image's key is derived from the run's seed and the image's *name* (its file stem, or the dataset
example id), never from its position in the list, the batch it falls in or the number of devices,
so adding a file to a folder, reordering it or changing ``--batch`` leaves every other image's
numbers unchanged.

A *method* is a frozen spec with a ``name``, ``settings()`` (its resolved settings, JSON-able)
and ``run_batch(data, keys, ctx) -> BatchOutput`` that inverts one padded batch. The driver
(:func:`run`) owns the rest:

* **keys**: image *i*'s key is :func:`image_key` of the seed and its name;
* **batches**: fixed-size batches of this process's images, the last one padded (repeating its
  last image) and trimmed, the size a multiple of the local device count;
* **devices**: ``ctx.mesh`` shards the image axis (and anything per image: generator copies)
  over this process's devices; with several processes (:mod:`jaxinv.distributed`) each takes
  every P-th batch, so all devices of all processes work;
* **resume**: with a ``work_dir``, a finished batch is stored (``done/<id>.npz``) before the next
  starts and an unfinished one checkpoints its state after every chunk
  (``ctx.checkpoint``, :mod:`jaxinv.io.inflight`); rerunning skips the finished batches and
  continues the unfinished one, with the same batches, programs and chunk boundaries, so the
  result equals an uninterrupted run's;
* **results**: one :class:`Result` for all images, in the order given, that :func:`write_result`
  turns into ``result.npz``, PNGs and ``config.json``.
"""

import dataclasses
import hashlib
import json
import os
import sys
import time
import zlib
from typing import Any, Callable, Sequence

import numpy as np


def identity_of(name: str) -> np.uint32:
  """A stable 32-bit identity of an image name (CRC-32 of its UTF-8 bytes)."""
  return np.uint32(zlib.crc32(str(name).encode("utf-8")))


def image_key(seed: int, name: str, stream: int = 0):
  """The raw (``PRNGKey``-style) key of one image: ``fold_in(fold_in(PRNGKey(seed), stream), id)``.

  ``stream`` separates independent uses of randomness (initial codes, observation noise, …).
  """
  import jax
  key = jax.random.PRNGKey(seed)
  if stream:
    key = jax.random.fold_in(key, stream)
  return jax.random.fold_in(key, identity_of(name))


def image_keys(seed: int, names: Sequence[str], stream: int = 0):
  """``[B, 2]`` raw keys, one per name (see :func:`image_key`)."""
  import jax.numpy as jnp
  return jnp.stack([image_key(seed, n, stream) for n in names])


def describe(seed: int, stream: int = 0) -> str:
  """How a run's per-image keys are made, for ``config.json``."""
  base = f"PRNGKey({seed})" if not stream else f"fold_in(PRNGKey({seed}), {stream})"
  return f"fold_in({base}, crc32(image name))"


# ----------------------------------------------------------------------------- the driver


@dataclasses.dataclass
class BatchContext:
  """What a method's ``run_batch`` gets besides its data and keys."""
  mesh: Any                    # jax.sharding.Mesh over this process's devices, or None
  real: int                    # images of the batch that are not padding
  progress: bool | str         # tqdm description, or False
  checkpoint: Any = None       # jaxinv.io.inflight.BatchCheckpoint, or None (no resume)
  chunk: int | None = None     # steps between host reads / checkpoints


@dataclasses.dataclass
class BatchOutput:
  """One batch's outputs (leading image axis ``b``; per-step arrays ``[S, b, ...]``)."""
  arrays: dict                  # {name: [b, ...]}: final variables, codes, metrics
  stepwise: dict = dataclasses.field(default_factory=dict)   # {name: [S, b, ...]}: loss, loss terms
  images: dict = dataclasses.field(default_factory=dict)     # {suffix: [b, H, W, C]}: "" = the result

  def trimmed(self, real: int) -> "BatchOutput":
    """The first ``real`` images' outputs (the batch without its padding), as NumPy arrays."""
    return BatchOutput({k: np.asarray(v)[:real] for k, v in self.arrays.items()},
                       {k: np.asarray(v)[:, :real] for k, v in self.stepwise.items()},
                       {k: np.asarray(v)[:real] for k, v in self.images.items()})


@dataclasses.dataclass
class Result:
  """Every image's outputs, in the order of ``names``."""
  method: str
  names: list
  arrays: dict
  stepwise: dict
  images: dict
  settings: dict

  def image(self, name: str, suffix: str = ""):
    return self.images[suffix][self.names.index(name)]


def optimize_batch(ctx: BatchContext, loss_fn, variables, data, optimizer, steps: int, *,
                   shared=None, post_update=None):
  """:func:`jaxinv.inversion.optimize.optimize` for one driver batch, resumable.

  Restores ``ctx.checkpoint`` (state and the records before it) when there is one, and saves
  the state and records after every chunk but the last. Returns the same
  :class:`~jaxinv.inversion.optimize.OptimizeResult` as an uninterrupted call.
  """
  import jax
  import jax.numpy as jnp
  from jaxinv.inversion import optimize as opt_lib
  state = opt_lib.init_state(variables, optimizer)
  start, before = 0, {}
  if ctx.checkpoint is not None:
    restored = ctx.checkpoint.restore(state)
    if restored is not None:
      state, start, before = restored
      state = jax.tree_util.tree_map(jnp.asarray, state)
      print(f"resuming {ctx.checkpoint.batch_id} ({ctx.real} images) at step {start}/{steps}",
            file=sys.stderr)

  def joined(records):
    if not before:
      return records
    return {k: np.concatenate([before[k], v], axis=0) for k, v in records.items()}

  def on_chunk(st, done, records):
    if done < steps:
      ctx.checkpoint.save(st, done, joined(records))

  res = opt_lib.optimize(loss_fn, None, data, optimizer, steps - start, shared=shared,
                         post_update=post_update, chunk=ctx.chunk, progress=ctx.progress,
                         mesh=ctx.mesh, state=state,
                         on_chunk=on_chunk if ctx.checkpoint is not None else None)
  if before:
    res.loss = np.concatenate([before["loss"], res.loss], axis=0)
    res.aux = {k: np.concatenate([before[k], np.asarray(v)], axis=0) if k in before else v
               for k, v in res.aux.items()}
  return res


def _batch_id(method, names, size, suffix=""):
  blob = json.dumps({"method": method.name, "settings": method.settings(), "names": list(names),
                      "size": size}, sort_keys=True, default=str)
  return f"batch-{hashlib.sha256(blob.encode()).hexdigest()[:16]}{suffix}"


def plan(num_images: int, batch: int, process_index: int = 0, process_count: int = 1,
         devices=None):
  """``(mesh, size, batches)``: this process's batches as lists of image indices.

  Batches are cut from the whole list (every ``process_count``-th batch is this process's), so
  which images share a batch does not depend on the number of processes.
  """
  from jaxinv import sharding
  mesh, size = sharding.batch_plan(batch, num_images, devices)
  all_batches = [list(range(s, min(s + size, num_images))) for s in range(0, num_images, size)]
  return mesh, size, all_batches[process_index::process_count], all_batches


def _save_done(path, names, out: BatchOutput):
  import io
  from jaxinv.io.checkpoints import atomic_write_bytes
  arrays = {"names": np.asarray(names)}
  for prefix, group in (("a", out.arrays), ("s", out.stepwise), ("i", out.images)):
    for k, v in group.items():
      arrays[f"{prefix}/{k}"] = np.asarray(v)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  atomic_write_bytes(path, buf.getvalue())


def _load_done(path) -> BatchOutput:
  groups = {"a": {}, "s": {}, "i": {}}
  with np.load(path, allow_pickle=False) as f:
    for k in f.files:
      if "/" in k:
        prefix, name = k.split("/", 1)
        groups[prefix][name] = f[k]
  return BatchOutput(groups["a"], groups["s"], groups["i"])


def run(method, names: Sequence[str], load: Callable[[list], dict] | dict, *, seed: int, batch: int,
        work_dir: str | None = None, progress: bool = True, chunk: int | None = None,
        devices=None, wait_s: float = 3600.0) -> Result | None:
  """Runs ``method`` on every named image; returns the :class:`Result` (``None`` on processes
  other than the first of a multi-process run, whose batches the first one collects).

  Args:
    method: a method spec (``name``, ``settings()``, ``run_batch(data, keys, ctx)``).
    names: the images' identities (file stems, dataset ids), unique.
    load: ``load(indices) -> {name: [len(indices), ...]}``, the per-image data of those images
      (only this process's images are loaded), or that data for every image at once
      (``{name: [len(names), ...]}``).
    seed: the run's seed; image *i*'s key is ``image_key(seed, names[i])``.
    batch: images per compiled batch (rounded up to a multiple of the local device count).
    work_dir: where finished batches and in-flight checkpoints live (``None``: no resume).
    chunk: steps between host reads / checkpoints (the method's loop may ignore it).
    wait_s: multi-process: how long the first process waits for the others' batches.
  """
  from jaxinv import distributed, sharding
  from jaxinv.io.inflight import BatchCheckpoint, InflightStore
  names = [str(n) for n in names]
  if isinstance(load, dict):
    arrays = load
    load = lambda indices: {k: np.asarray(v)[indices] for k, v in arrays.items()}
  if len(set(names)) != len(names):
    dup = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"image names must be unique (their keys and outputs are named by them); "
                     f"repeated: {', '.join(dup[:5])}")
  info = distributed.process_info()
  mesh, size, mine, every = plan(len(names), batch, info.index, info.count, devices)
  store = None
  if work_dir is not None:
    os.makedirs(os.path.join(work_dir, "done"), exist_ok=True)
    store = InflightStore(work_dir)
  outputs = {}
  for indices in mine:
    batch_names = [names[i] for i in indices]
    bid = _batch_id(method, batch_names, size)
    done_path = None if work_dir is None else os.path.join(work_dir, "done", f"{bid}.npz")
    if done_path is not None and os.path.exists(done_path):
      outputs[bid] = _load_done(done_path)
      continue
    data, real = sharding.pad_to_multiple(load(indices), size)
    keys, _ = sharding.pad_to_multiple(np.asarray(image_keys(seed, batch_names)), size)
    label = f"{method.name} {indices[0] + 1}-{indices[-1] + 1}/{len(names)}" if progress else False
    ctx = BatchContext(mesh, real, label, chunk=chunk,
                       checkpoint=None if store is None else BatchCheckpoint(store, bid, batch_names))
    out = method.run_batch(data, keys, ctx).trimmed(real)
    if done_path is not None:
      _save_done(done_path, batch_names, out)
      store.remove(bid)
    outputs[bid] = out
  if info.index != 0:
    return None
  if info.count > 1:
    if work_dir is None:
      raise ValueError("a multi-process run needs a work_dir to collect the other processes' batches")
    outputs = _collect(method, names, size, every, work_dir, outputs, wait_s)
  ordered = [outputs[_batch_id(method, [names[i] for i in idx], size)] for idx in every]
  cat = lambda key, axis: {k: np.concatenate([getattr(o, key)[k] for o in ordered], axis=axis)
                           for k in getattr(ordered[0], key)}
  return Result(method.name, names, cat("arrays", 0), cat("stepwise", 1), cat("images", 0),
                dict(method.settings(), image_keys=describe(seed), seed=seed))


def _collect(method, names, size, every, work_dir, outputs, wait_s):
  deadline = time.time() + wait_s
  for idx in every:
    bid = _batch_id(method, [names[i] for i in idx], size)
    if bid in outputs:
      continue
    path = os.path.join(work_dir, "done", f"{bid}.npz")
    while not os.path.exists(path):
      if time.time() > deadline:
        raise TimeoutError(f"waited {wait_s:.0f}s for another process's batch {bid}; rerun the "
                           "same command on every process to resume")
      time.sleep(0.5)
    outputs[bid] = _load_done(path)
  return outputs


def write_result(out_dir: str, result: Result, settings: dict | None = None):
  """``result.npz`` (per-image arrays, per-step arrays ``[S, B, …]``, ``names``), one PNG per
  image and suffix (``<name>.png``, ``<name>_<suffix>.png``) and ``config.json`` (the method's
  resolved settings, the key rule, ``settings``)."""
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config, write_npz
  os.makedirs(out_dir, exist_ok=True)
  for suffix, imgs in result.images.items():
    for name, img in zip(result.names, imgs):
      image_io.save_png(os.path.join(out_dir, f"{name}{'_' + suffix if suffix else ''}.png"), img)
  write_npz(os.path.join(out_dir, "result.npz"), names=np.asarray(result.names),
            **result.arrays, **result.stepwise)
  write_config(out_dir, {"method": result.method, "method_settings": result.settings,
                         **(settings or {})})
