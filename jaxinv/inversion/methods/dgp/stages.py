"""DGP's progressive stages for a batch of images, end to end, and DGP as a driver method."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.models import biggan
from jaxinv.inversion.methods.dgp.degradations import degradation, target_of
from jaxinv.inversion.methods.dgp.evaluation import metrics
from jaxinv.inversion.methods.dgp.manipulations import category_transfer, jitter, morph
from jaxinv.inversion.methods.dgp.objective import ftr_mask, make_optimizer, objective
from jaxinv.inversion.methods.dgp.schedule import Schedule
from jaxinv.inversion.methods.dgp.search import features_fn, draw_candidates, select_z

@dataclasses.dataclass
class DGPResult:
  """What :func:`run` returns (leading axis B = images)."""
  z: np.ndarray                 # [B, dim_z] final latents
  g_params: Any                 # fine-tuned G params, leading [B] axis
  in_params: Any                # IN affine values in use at the end (or None)
  x: np.ndarray                 # [B, H, W, 3] final images G(z, y, use_in[-1])
  records: dict                 # per step [S, B, ...]: ftr_loss, mse_loss, nll, l1_loss, loss,
                                # z (before the step)


def _stack(tree, b):
  return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(jnp.asarray(a), (b,) + np.shape(a)),
                                tree)


@functools.lru_cache(maxsize=None)
def _loss_fn(G, D, use_in, degrade):
  # One object per setting, so optimize() reuses its compiled chunk across stages and runs.
  def loss_fn(variables, data, shared):
    loss, aux = objective(variables, data, shared, G=G, D=D, use_in=use_in, degrade=degrade)
    return loss, dict(aux, z=variables["z"])
  return loss_fn


def run(G, g_params, D, d_params, target: np.ndarray, z0: np.ndarray, y: np.ndarray,
        schedule: Schedule, degrade: Callable | None = None, progress: bool | str = False,
        chunk: int | None = None, mesh=None, checkpoint=None) -> DGPResult:
  """DGP's progressive stages for B images at once (B generator copies in one program).

  Each stage is one :func:`jaxinv.inversion.optimize.optimize` call continuing the previous
  stage's state (variables and both Adam states); the stage's loss weights and feature mask
  are per-image data, its learning rates the optimiser's step-indexed tables, so stages of
  equal ``use_in`` share one compiled program (``chunk`` defaults to the gcd of the stage
  lengths, at most 100).

  Args:
    G, g_params: generator module and its params (the starting point of every copy).
    D, d_params: discriminator (frozen).
    target: ``[B, H, W, 3]`` degraded observations (:func:`target_of`).
    z0: ``[B, dim_z]`` initial latents (:func:`select_z`); y: ``[B]`` int classes.
    schedule: the stages (:func:`load_schedule`).
    degrade: generator-path degradation; default :func:`degradation` of the schedule's mode.
    progress: tqdm bar per stage (a string prefixes its description).
    chunk: steps per compiled scan call.
    mesh: shard the images — their z, generator copies and Adam states — over this mesh.
    checkpoint: a :class:`jaxinv.io.inflight.BatchCheckpoint`: the state (and the records so
      far) is saved after every chunk, and a saved state is continued from, at the same step of
      the same stage, so the result equals an uninterrupted run's.

  Returns:
    :class:`DGPResult`; ``records`` holds per-step ``ftr_loss, mse_loss, nll, l1_loss, loss``
    and ``z`` (before the step), ``[S, B, ...]``.
  """
  import sys
  from jaxinv.inversion.optimize import init_state, optimize

  b = z0.shape[0]
  degrade = degrade or degradation(schedule.dgp_mode, schedule.factor)
  optimizer = make_optimizer(schedule, g_params)
  variables = {"z": jnp.asarray(z0, jnp.float32), "G": _stack(g_params, b)}
  state = init_state(variables, optimizer)
  target = jnp.asarray(target, jnp.float32)
  target_feats = features_fn(D)(d_params, target)
  nfeat = len(target_feats)
  y = jnp.asarray(y, jnp.int32)
  shared = {"D": d_params}
  if chunk is None:
    chunk = min(100, functools.reduce(math.gcd, [s.iterations for s in schedule.stages
                                                 if s.iterations] or [1]))
  init_in = _init_in_fn(G, mesh)
  in_like = (jax.eval_shape(init_in, state.variables["G"], state.variables["z"], y)
             if any(st.use_in for st in schedule.stages) else {})
  in_params, prev_use_in, records, resume_at = None, False, [], 0
  if checkpoint is not None:
    like = {"state": state, "in_params": jax.tree_util.tree_map(
        lambda a: np.zeros(a.shape, a.dtype), in_like), "has_in": np.zeros((), np.int32)}
    restored = checkpoint.restore(like)
    if restored is not None:
      tree, resume_at, before = restored
      state = jax.tree_util.tree_map(jnp.asarray, tree["state"])
      in_params = jax.tree_util.tree_map(jnp.asarray, tree["in_params"]) if int(tree["has_in"]) else None
      records.append(before)
      print(f"resuming {checkpoint.batch_id} ({b} images) at step {resume_at}/"
            f"{schedule.total_steps}", file=sys.stderr)
  total, offset = schedule.total_steps, 0
  for si, st in enumerate(schedule.stages):
    stage_start, offset = offset, offset + st.iterations
    if resume_at >= offset and resume_at > 0:
      prev_use_in = st.use_in        # finished before the checkpoint: its records are restored
      continue
    within = max(0, resume_at - stage_start)
    if within == 0 and st.use_in and (in_params is None or not prev_use_in):
      # DGP sets the IN affine values at the first use_in forward after a use_in=False one.
      in_params = init_in(state.variables["G"], state.variables["z"], y)
    prev_use_in = st.use_in
    if st.iterations == 0:
      continue
    data = {"target": target, "target_feats": target_feats, "y": y,
            "weights": _rows([st.w_D_loss, st.w_mse, schedule.w_nll], b),
            "ftr_mask": _rows(ftr_mask(st.ftr_num, nfeat), b)}
    if st.use_in:
      data["in_params"] = in_params
    def save_chunk(stt, done, recs, _in=in_params, _start=stage_start):
      step = _start + done
      if step < total:
        saved_in = _in if _in is not None else jax.tree_util.tree_map(
            lambda a: np.zeros(a.shape, a.dtype), in_like)
        checkpoint.save({"state": stt, "in_params": saved_in, "has_in": np.int32(_in is not None)},
                        step, _join_records(records + [recs]))
    res = optimize(_loss_fn(G, D, st.use_in, degrade), None, data, optimizer,
                   st.iterations - within, shared=shared, chunk=chunk, state=state, mesh=mesh,
                   on_chunk=None if checkpoint is None else save_chunk,
                   progress=f"{progress} stage {si + 1}" if isinstance(progress, str)
                   else (f"DGP stage {si + 1}" if progress else False))
    state = res.state
    records.append(res.aux)
  last_in = schedule.stages[-1].use_in
  x = _render_fn(G, last_in, mesh)(state.variables["G"], state.variables["z"], y,
                             in_params if last_in else None)
  recs = _join_records(records)
  return DGPResult(np.asarray(state.variables["z"]), state.variables["G"], in_params,
                   np.asarray(x), recs)


def _join_records(records):
  records = [r for r in records if r]
  if not records:
    return {}
  return {k: np.concatenate([np.asarray(r[k]) for r in records]) for k in records[0]}


def _rows(v, b):
  return jnp.broadcast_to(jnp.asarray(v, jnp.float32), (b, len(v)))


@functools.lru_cache(maxsize=None)
def _init_in_fn(G, mesh=None):
  from jaxinv import sharding
  return sharding.map_images(lambda gp, z, y: biggan.init_in_params(
      G, gp, z[None], jnp.asarray(gp["shared"]["weight"])[y][None])[1], mesh)


@functools.lru_cache(maxsize=None)
def _render_fn(G, use_in, mesh=None):
  from jaxinv import sharding
  return sharding.map_images(lambda gp, z, y, ip: G.apply(
      {"params": gp}, z[None], jnp.asarray(gp["shared"]["weight"])[y][None], use_in, ip)[0], mesh)


def invert(G, g_params, D, d_params, origins: np.ndarray, classes: Sequence[int],
           schedule: Schedule, keys: jax.Array, progress: bool | str = False, mesh=None,
           checkpoint=None) -> dict:
  """DGP end to end for B images: degrade the observations, select z (and y), run the stages.

  Args:
    origins: ``[B, H, W, 3]`` ground-truth/observed images in [-1, 1] (:func:`load_image`).
    classes: B ints; negative = unknown (searched by :func:`select_z` over random classes).
    keys: ``[B, 2]`` one key per image, for its candidates (:func:`jaxinv.inversion.run.image_keys`).

  Returns:
    ``{"z", "y", "x", "target", "z0", "select_losses", "records", "g_params", "in_params"}``.
  """
  b = len(origins)
  target = target_of(origins, schedule.dgp_mode, schedule.factor)
  z0, y0, sel = [], [], []
  for i in range(b):
    cz, cy = draw_candidates(keys[i], schedule.select_num, G.config.dim_z,
                             schedule.sample_std, int(classes[i]), G.config.n_classes)
    best, losses = select_z(G, g_params, D, d_params, target[i], cz, cy, schedule.dgp_mode,
                            schedule.factor)
    z0.append(cz[best])
    y0.append(cy[best])
    sel.append(losses)
  z0, y0 = np.stack(z0), np.asarray(y0, np.int32)
  res = run(G, g_params, D, d_params, target, z0, y0, schedule, progress=progress, mesh=mesh,
            checkpoint=checkpoint)
  return {"z": res.z, "y": y0, "x": res.x, "target": target, "z0": z0,
          "select_losses": np.stack(sel), "records": res.records, "g_params": res.g_params,
          "in_params": res.in_params}


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """DGP as a driver method (:func:`jaxinv.inversion.run.run`): B images fine-tune B generator
  copies in one program, sharded with the images over ``ctx.mesh``; resumable mid-stage.

  Per-image data: ``origin [H, W, 3]`` (the input in [-1, 1], :func:`load_image`), ``class``
  (int; negative = unknown, searched) and, for jitter, ``jitter_key`` (the key of its samples).
  Outputs: ``z, y, z0, select_losses, metric_*`` per image, the per-step records, the result
  and ``target`` images, and the mode's manipulation: ``jitter`` / ``transfer`` grids per
  image, or (morphing, exactly 2 images in one batch) the ``morph`` strip of image 0.
  """
  G: Any
  g_params: Any
  D: Any
  d_params: Any
  schedule: Schedule
  jitter_samples: int = 30
  jitter_stds: tuple = (0.3, 0.5, 0.7)
  transfer_classes: tuple = ()
  name = "dgp"

  def settings(self) -> dict:
    return {"schedule": self.schedule.to_lists(), "jitter_samples": self.jitter_samples,
            "jitter_stds": list(self.jitter_stds), "transfer_classes": list(self.transfer_classes)}

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run as run_lib
    from jaxinv.io.images import labeled_grid
    mode = self.schedule.dgp_mode
    origins = np.asarray(data["origin"], np.float32)
    r = invert(self.G, self.g_params, self.D, self.d_params, origins, np.asarray(data["class"]),
               self.schedule, keys, progress=ctx.progress, mesh=ctx.mesh, checkpoint=ctx.checkpoint)
    mets = [metrics(x, o, mode) for x, o in zip(r["x"], origins)]
    arrays = {"z": r["z"], "y": r["y"], "z0": r["z0"], "select_losses": r["select_losses"],
              **{f"metric_{k}": np.asarray([m[k] for m in mets]) for k in mets[0]}}
    b = len(origins)
    stepwise = {k: v for k, v in r["records"].items() if k != "z"}
    if "loss" not in stepwise:
      stepwise["loss"] = np.zeros((0, b), np.float32)
    images = {"": r["x"], "target": r["target"]}
    copy = lambda i: jax.tree_util.tree_map(lambda a: a[i], r["g_params"])
    if mode == "jitter":
      grids = []
      for i in range(b):
        noise = np.asarray(jax.random.normal(jnp.asarray(data["jitter_key"][i]),
                                             (self.jitter_samples, self.G.config.dim_z)))
        xs = jitter(self.G, copy(i), r["z"][i:i + 1], r["y"][i:i + 1], noise, self.jitter_stds)
        n = len(noise)
        grids.append(labeled_grid([list(xs[k * n:(k + 1) * n]) for k in range(len(self.jitter_stds))],
                                  [f"z + {s:g}·noise" for s in self.jitter_stds],
                                  [f"sample {j + 1}" for j in range(n)])[0])
      images["jitter"] = np.stack(grids)
    elif mode == "category_transfer":
      images["transfer"] = np.stack([
          labeled_grid([list(category_transfer(self.G, copy(i), r["z"][i:i + 1], self.transfer_classes))],
                       ["class"], [str(c) for c in self.transfer_classes])[0]
          for i in range(b)])
    elif mode == "morphing":
      if ctx.real != 2:
        raise ValueError(f"morphing interpolates between exactly 2 images in one batch; got {ctx.real}")
      alphas = [i / 10 for i in range(11)]
      xs = morph(self.G, copy(0), copy(1), r["z"][0:1], r["z"][1:2], r["y"][0:1], r["y"][1:2],
                 alphas)
      strip = labeled_grid([list(xs[::-1])], ["weight of image 1"],
                           [f"{a:.1f}" for a in alphas[::-1]])[0]
      images["morph"] = np.stack([strip] * b)
    return run_lib.BatchOutput(arrays, stepwise, images)
