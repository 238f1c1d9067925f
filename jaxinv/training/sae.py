"""Training the Swapping Autoencoder: the official losses, optimizers and alternating steps.

Images are NHWC in [-1, 1]. The parameter tree is the converter's
``{"E", "G", "D", "Dpatch"}``; E+G share one Adam, D+Dpatch another with the
lazy-regularisation correction (lr * c, betas ** c, c = k / (k + 1), k =
``R1_once_every``). One *iteration* is the official pair of ``train_one_step`` calls:
a D step (plus the R1 step every k-th D step) then a G step.

Every stochastic input is explicit: the crop draws (:func:`~jaxinv.models.swapping_autoencoder.crop_draws`)
of each crop call and the generator noise; :func:`draw_inputs` makes them from a key.

References:
  Park et al., Swapping Autoencoder for Deep Image Manipulation, https://arxiv.org/abs/2007.00653
  Mescheder et al., Which Training Methods for GANs do actually Converge? (R1), https://arxiv.org/abs/1801.04406
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Mapping

import numpy as np

import jax
import jax.numpy as jnp
import optax

from jaxinv.models import swapping_autoencoder as sae
from jaxinv.ops.r1 import squared_grad_norms

__all__ = ["LossOptions", "gan_loss", "generator_losses", "discriminator_losses", "r1_loss",
           "make_optimizers", "TrainState", "init_state", "d_step", "r1_step", "g_step",
           "draw_inputs", "train"]


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """The official loss, crop and optimizer options (official names and defaults)."""
  lambda_L1: float = 1.0
  lambda_GAN: float = 1.0
  lambda_PatchGAN: float = 1.0
  lambda_R1: float = 10.0
  lambda_patch_R1: float = 1.0
  patch_min_scale: float = 1 / 8
  patch_max_scale: float = 1 / 4
  patch_num_crops: int = 8
  patch_use_aggregation: bool = True
  lr: float = 0.002
  beta1: float = 0.0
  beta2: float = 0.99
  R1_once_every: int = 16

  @classmethod
  def from_options(cls, opts: Mapping) -> "LossOptions":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in opts.items() if k in names})


def gan_loss(pred: jax.Array, real: bool) -> jax.Array:
  """Non-saturating loss per sample: ``softplus(-pred)`` (real) or ``softplus(pred)``, mean over non-batch axes."""
  v = jax.nn.softplus(-pred if real else pred)
  return jnp.mean(v.reshape(v.shape[0], -1), axis=1)


class _Nets:
  """Apply functions of the four networks on their own param subtrees."""

  def __init__(self, config: sae.SAEConfig):
    self.config = config
    self._E, self._G = sae.Encoder(config), sae.Generator(config)
    self._D, self._P = sae.Discriminator(config), sae.PatchDiscriminator(config)

  def E(self, p, x):
    return self._E.apply({"params": p}, x)

  def G(self, p, sp, gl, noise):
    return self._G.apply({"params": p}, sp, gl, noise)

  def D(self, p, x):
    return self._D.apply({"params": p}, x)

  def feat(self, p, crops, aggregate=False):
    return self._P.apply({"params": p}, crops, aggregate, method="extract_features")

  def pair(self, p, f1, f2):
    return self._P.apply({"params": p}, f1, f2, method="discriminate_features")


@functools.lru_cache(maxsize=None)
def _nets(config):
  return _Nets(config)


def _crops(x, draws, config, opts: LossOptions):
  return sae.random_crops(x, draws, config.patch_size, (opts.patch_min_scale, opts.patch_max_scale),
                          opts.patch_num_crops)


def generator_losses(params, x, draws: Mapping, noise: Mapping, config: sae.SAEConfig,
                     opts: LossOptions):
  """The official ``compute_generator_losses`` on a batch ``x [B, H, W, 3]`` (B even).

  Args:
    params: ``{"E", "G", "D", "Dpatch"}``.
    draws: ``{"crop0": ..., "crop1": ...}`` crop draws (real crops, mix crops).
    noise: ``{"rec": noise dict for G(sp[:B/2]), "mix": for G(swap(sp))}`` (None = no noise).

  Returns:
    ``(total, aux)``: total = sum of the term means; aux holds the per-sample terms
    ``G_L1`` (scalar), ``G_GAN_rec [B/2]``, ``G_GAN_mix [B]``, ``G_mix [B*n]`` and the logits.
  """
  n = _nets(config)
  b = x.shape[0]
  sp, gl = n.E(params["E"], x)
  rec = n.G(params["G"], sp[:b // 2], gl[:b // 2], noise.get("rec"))
  aux = {"G_L1": jnp.mean(jnp.abs(rec - x[:b // 2])) * opts.lambda_L1}
  mix = n.G(params["G"], sae.swap_pairs(sp), gl, noise.get("mix"))
  d_rec, d_mix = n.D(params["D"], rec), n.D(params["D"], mix)
  aux["G_GAN_rec"] = opts.lambda_GAN * 0.5 * gan_loss(d_rec, True)
  aux["G_GAN_mix"] = opts.lambda_GAN * gan_loss(d_mix, True)
  real_feat = jax.lax.stop_gradient(
      n.feat(params["Dpatch"], _crops(x, draws["crop0"], config, opts), opts.patch_use_aggregation))
  mix_feat = n.feat(params["Dpatch"], _crops(mix, draws["crop1"], config, opts))
  logits = n.pair(params["Dpatch"], real_feat, mix_feat)
  aux["G_mix"] = opts.lambda_PatchGAN * gan_loss(logits, True)
  total = sum(jnp.mean(aux[k]) for k in ("G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix"))
  aux.update(d_logits0=d_rec, d_logits1=d_mix, dpatch_feat0_agg=real_feat, dpatch_feat1=mix_feat,
             dpatch_logits0=logits, L1_dist=jnp.mean(jnp.abs(rec - x[:b // 2])), rec=rec, mix=mix)
  return total, aux


def discriminator_losses(params, x, draws: Mapping, noise: Mapping, config: sae.SAEConfig,
                         opts: LossOptions):
  """The official ``compute_discriminator_losses`` (E and G frozen).

  ``draws``: ``crop0`` (aggregated real reference), ``crop1`` (real query), ``crop2`` (mix query).
  Returns ``(total, aux)`` with ``D_real [B]``, ``D_rec [B/2]``, ``D_mix [B]``,
  ``PatchD_real [B*n]``, ``PatchD_mix [B*n]`` and the logits.
  """
  n = _nets(config)
  b = x.shape[0]
  sp, gl = jax.lax.stop_gradient(n.E(params["E"], x))
  rec = jax.lax.stop_gradient(n.G(params["G"], sp[:b // 2], gl[:b // 2], noise.get("rec")))
  mix = jax.lax.stop_gradient(n.G(params["G"], sae.swap_pairs(sp), gl, noise.get("mix")))
  d_real, d_rec, d_mix = (n.D(params["D"], v) for v in (x, rec, mix))
  aux = {"D_real": opts.lambda_GAN * gan_loss(d_real, True),
         "D_rec": opts.lambda_GAN * 0.5 * gan_loss(d_rec, False),
         "D_mix": opts.lambda_GAN * 0.5 * gan_loss(d_mix, False)}
  pp = params["Dpatch"]
  f0 = n.feat(pp, _crops(x, draws["crop0"], config, opts), opts.patch_use_aggregation)
  f1 = n.feat(pp, _crops(x, draws["crop1"], config, opts))
  f2 = n.feat(pp, _crops(mix, draws["crop2"], config, opts))
  l_real, l_mix = n.pair(pp, f0, f1), n.pair(pp, f0, f2)
  aux["PatchD_real"] = opts.lambda_PatchGAN * gan_loss(l_real, True)
  aux["PatchD_mix"] = opts.lambda_PatchGAN * gan_loss(l_mix, False)
  total = sum(jnp.mean(v) for v in aux.values())
  aux.update(d_logits0=d_real, d_logits1=d_rec, d_logits2=d_mix, dpatch_feat0_agg=f0,
             dpatch_feat1=f1, dpatch_feat2=f2, dpatch_logits0=l_real, dpatch_logits1=l_mix)
  return total, aux


def r1_loss(params, x, draws: Mapping, config: sae.SAEConfig, opts: LossOptions):
  """The official ``compute_R1_loss``: per-image ``D_R1 [B]`` (image part + patch part).

  Image part ``lambda_R1/2 * |d sum D(x) / dx|^2``; patch part
  ``lambda_patch_R1/4 * (|dQ/dc1|^2 + |dQ/dc2|^2)`` with ``c1, c2`` the crops
  (``draws["crop0"]``, ``draws["crop1"]``) as independent inputs and
  ``Q = sum pair(feat(c1, aggregate), feat(c2))``. Returns ``(D_R1, aux)``.
  """
  n = _nets(config)
  def d_logits(v):
    logits = n.D(params["D"], v)
    return logits, logits
  img_norms, logits = squared_grad_norms(d_logits, x, has_aux=True)
  img_part = opts.lambda_R1 * 0.5 * img_norms
  aux = {"d_logits0": logits, "D_R1_image_part": img_part}
  total = img_part
  if opts.lambda_patch_R1 > 0:
    pp = params["Dpatch"]
    c1 = _crops(x, draws["crop0"], config, opts)
    c2 = _crops(x, draws["crop1"], config, opts)
    def q(c1, c2):
      f1 = n.feat(pp, c1, opts.patch_use_aggregation)
      f2 = n.feat(pp, c2)
      lg = n.pair(pp, f1, f2)
      return lg, (f1, f2, lg)
    patch, (f1, f2, lg) = squared_grad_norms(q, c1, c2, has_aux=True)
    total = total + opts.lambda_patch_R1 * 0.5 * 0.5 * patch
    aux.update(dpatch_feat0_agg=f1, dpatch_feat1=f2, dpatch_logits0=lg)
  aux["D_R1"] = total
  return total, aux


# --------------------------------------------------------------------------- optimizers and steps

def make_optimizers(opts: LossOptions):
  """``(opt_G, opt_D)``: Adam(lr, (beta1, beta2), eps 1e-8) for E+G; the lazy-R1-corrected Adam for D+Dpatch."""
  c = opts.R1_once_every / (opts.R1_once_every + 1.0)
  opt_g = optax.adam(opts.lr, b1=opts.beta1, b2=opts.beta2, eps=1e-8)
  opt_d = optax.adam(opts.lr * c, b1=opts.beta1 ** c, b2=opts.beta2 ** c, eps=1e-8)
  return opt_g, opt_d


def _split(params):
  return {"E": params["E"], "G": params["G"]}, {"D": params["D"], "Dpatch": params["Dpatch"]}


TrainState = dict   # {"params", "opt_g", "opt_d", "step": int32 (iterations), "d_iters": int32}


def init_state(params, opts: LossOptions) -> TrainState:
  """The training state from a parameter tree (e.g. converted or :func:`sae.init_params`)."""
  opt_g, opt_d = make_optimizers(opts)
  g, d = _split(params)
  return {"params": params, "opt_g": opt_g.init(g), "opt_d": opt_d.init(d),
          "step": jnp.zeros((), jnp.int32), "d_iters": jnp.zeros((), jnp.int32)}


@functools.partial(jax.jit, static_argnames=("config", "opts"))
def d_step(state, x, draws, noise, config: sae.SAEConfig, opts: LossOptions):
  """One official ``train_discriminator_one_step`` without R1: D+Dpatch Adam on ``discriminator_losses``.

  Returns ``(state, metrics)``; metrics hold the loss terms, logits and ``grads``.
  """
  _, opt_d = make_optimizers(opts)
  g, d = _split(state["params"])
  def f(d):
    return discriminator_losses({**g, **d}, x, draws, noise, config, opts)
  (total, aux), grads = jax.value_and_grad(f, has_aux=True)(d)
  updates, opt_state = opt_d.update(grads, state["opt_d"], d)
  d = optax.apply_updates(d, updates)
  new = {**state, "params": {**g, **d}, "opt_d": opt_state, "d_iters": state["d_iters"] + 1}
  return new, {"D_total": total, **aux, "grads": grads}


@functools.partial(jax.jit, static_argnames=("config", "opts"))
def r1_step(state, x, draws, config: sae.SAEConfig, opts: LossOptions):
  """The lazy R1 step: D+Dpatch Adam on ``R1_once_every * mean(D_R1)``."""
  _, opt_d = make_optimizers(opts)
  g, d = _split(state["params"])
  def f(d):
    r1, aux = r1_loss({**g, **d}, x, draws, config, opts)
    return jnp.mean(r1) * opts.R1_once_every, aux
  (total, aux), grads = jax.value_and_grad(f, has_aux=True)(d)
  updates, opt_state = opt_d.update(grads, state["opt_d"], d)
  d = optax.apply_updates(d, updates)
  return {**state, "params": {**g, **d}, "opt_d": opt_state}, {
      "R1_total": total, "D_R1": aux["D_R1"]}


@functools.partial(jax.jit, static_argnames=("config", "opts"))
def g_step(state, x, draws, noise, config: sae.SAEConfig, opts: LossOptions):
  """One official ``train_generator_one_step``: E+G Adam on ``generator_losses``."""
  opt_g, _ = make_optimizers(opts)
  g, d = _split(state["params"])
  def f(g):
    return generator_losses({**g, **d}, x, draws, noise, config, opts)
  (total, aux), grads = jax.value_and_grad(f, has_aux=True)(g)
  updates, opt_state = opt_g.update(grads, state["opt_g"], g)
  g = optax.apply_updates(g, updates)
  new = {**state, "params": {**g, **d}, "opt_g": opt_state, "step": state["step"] + 1}
  return new, {"G_total": total, **aux, "grads": grads}


def draw_inputs(key, config: sae.SAEConfig, opts: LossOptions, batch: int, code_hw,
                calls=("crop0", "crop1", "crop2"), noise_mode: str = "random") -> tuple[dict, dict]:
  """Crop draws ``{call: draws}`` and per-image generator noise ``{"rec", "mix"}`` from one key.

  The official training draws fresh per-sample noise at every G call.
  """
  keys = jax.random.split(key, len(calls) + 2)
  draws = {c: sae.crop_draws(k, batch, opts.patch_num_crops) for c, k in zip(calls, keys)}
  if noise_mode == "random":
    noise = {"rec": sae.make_noise(config, code_hw, "random", keys[-2], batch // 2),
             "mix": sae.make_noise(config, code_hw, "random", keys[-1], batch)}
  else:
    noise = {"rec": None, "mix": None}
  return draws, noise


# --------------------------------------------------------------------------- the training loop

def load_training_images(source: str, size: int, limit: int | None = None) -> np.ndarray:
  """``[N, size, size, 3]`` uint8 from a folder (searched recursively), a file, or a TFDS split
  (``tfds:NAME?split=train``), bicubic-resized as the official loader when the size differs."""
  from jaxinv.io import images as image_io
  paths = image_io.list_images([source], limit, recursive=True)
  return np.stack([image_io.load_resized_uint8(p, size) for p in paths])


class _Batches:
  """Random batches with the official training flip (horizontal, p = 0.5), as [-1, 1] float32.

  Iteration ``it`` draws its batches from its own generator ``(seed, it)``, so a resumed run
  sees the same data as an uninterrupted one.
  """

  def __init__(self, images_u8: np.ndarray, batch: int, seed: int, flip: bool = True):
    self.images, self.batch, self.seed, self.flip = images_u8, batch, seed, flip

  def _draw(self, rng) -> np.ndarray:
    idx = rng.integers(0, len(self.images), self.batch)
    x = self.images[idx]
    if self.flip:
      f = rng.random(self.batch) < 0.5
      x = np.where(f[:, None, None, None], x[:, :, ::-1], x)
    return x.astype(np.float32) / 127.5 - 1.0

  def at(self, iteration: int) -> tuple[np.ndarray, np.ndarray]:
    """The (D step, G step) batches of ``iteration``."""
    rng = np.random.default_rng([self.seed, iteration])
    return self._draw(rng), self._draw(rng)


@functools.partial(jax.jit, static_argnames=("config",))
def _sample_images(config, params, x, noise):
  """Reconstructions and swaps (structure i, texture of its pair partner) of ``x``."""
  n = _nets(config)
  sp, gl = n.E(params["E"], x)
  return n.G(params["G"], sp, gl, noise), n.G(params["G"], sp, sae.swap_pairs(gl), noise)


def _sample_grid(config, params, x, noise):
  """uint8 grid: rows real, reconstruction, swap (structure i, texture of its pair partner)."""
  from jaxinv.io.images import make_grid
  from jaxinv.swapping import to_uint8
  rec, swp = _sample_images(config, params, x, noise)
  return make_grid([list(to_uint8(v)) for v in (x, rec, swp)])


class _Throughput:
  """Images/s over the timed stretches of a run; compiling iterations, sampling and checkpointing
  are left out by stopping the meter around them (each stop waits for the device)."""

  def __init__(self):
    self.seconds, self.images, self._t0 = 0.0, 0, None

  def start(self):
    self._t0 = time.perf_counter()

  def stop(self, tree):
    if self._t0 is not None:
      jax.block_until_ready(tree)
      self.seconds += time.perf_counter() - self._t0
      self._t0 = None

  def add(self, images: int):
    if self._t0 is not None:
      self.images += images

  @property
  def rate(self) -> float:
    return self.images / self.seconds if self.images and self.seconds > 0 else float("nan")


def train(config, workdir: str) -> dict:
  """Trains (or resumes) a Swapping Autoencoder; see ``experiments/train_sae.py`` for the config.

  Writes ``workdir/checkpoints`` (orbax, resumable), ``workdir/samples/iter_*.png``,
  ``workdir/metrics.jsonl`` and ``workdir/summary.json``. Returns the summary.
  """
  import json
  import orbax.checkpoint as ocp
  from jaxinv import sharding
  from jaxinv.io.checkpoints import atomic_write_json

  os.makedirs(workdir, exist_ok=True)
  opts_all = dict(config.options)
  if config.init_from:
    from jaxinv.models.registry import load_model
    m = load_model(config.init_from, expect_family="swapping_autoencoder")
    mcfg, params = m.config, jax.tree_util.tree_map(jnp.asarray, m.params)
    opts_all = {**m.extras.get("options", {}), **opts_all}
  else:
    mcfg = sae.from_options(opts_all)
    params = sae.init_params(mcfg, jax.random.key(config.seed))
  opts = LossOptions.from_options(opts_all)
  size = mcfg.crop_size
  data = load_training_images(config.data.images, size, config.data.limit or None)
  mesh = sharding.make_mesh()
  b = config.batch_size
  if b % 2 or b % mesh.devices.size:
    raise ValueError(f"batch_size {b} must be even and divide over {mesh.devices.size} devices")
  batches = _Batches(data, b, config.seed, flip=not opts_all.get("no_flip", False))
  state = init_state(params, opts)
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
  start = 0
  if mngr.latest_step() is not None:
    start = mngr.latest_step()
    state = mngr.restore(start, args=ocp.args.StandardRestore(state))
  state = sharding.place_batch(mesh, {}, state)[1]
  d_iters = int(state["d_iters"])     # host copy: the R1 schedule needs no device read per iteration
  code_hw = (size // mcfg.code_stride,) * 2
  key = jax.random.key(config.seed)
  n_sample = max(2, min(b, 8) // 2 * 2)
  sample_x = jnp.asarray(data[np.arange(n_sample) % len(data)].astype(np.float32) / 127.5 - 1.0)
  sample_noise = sae.make_noise(mcfg, code_hw, "random", jax.random.key(config.seed + 1), batch=1)
  log_path = os.path.join(workdir, "metrics.jsonl")
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  meter, r1_compiled, r1_total, last = _Throughput(), False, None, {}
  for it in range(start, config.iterations):
    with_r1 = (d_iters + 1) % opts.R1_once_every == 0
    compiles = it == start or (with_r1 and not r1_compiled)
    if compiles:
      meter.stop(state)
    k = jax.random.fold_in(key, it)
    xd, xg = sharding.place_batch(mesh, batches.at(it))[0]
    draws_d, noise_d = draw_inputs(jax.random.fold_in(k, 0), mcfg, opts, b, code_hw)
    state, md = d_step(state, xd, draws_d, noise_d, mcfg, opts)
    d_iters += 1
    if with_r1:
      draws_r, _ = draw_inputs(jax.random.fold_in(k, 1), mcfg, opts, b, code_hw, ("crop0", "crop1"),
                               noise_mode="zero")
      state, mr = r1_step(state, xd, draws_r, mcfg, opts)
    draws_g, noise_g = draw_inputs(jax.random.fold_in(k, 2), mcfg, opts, b, code_hw, ("crop0", "crop1"))
    state, mg = g_step(state, xg, draws_g, noise_g, mcfg, opts)
    if compiles:
      jax.block_until_ready(state)
      meter.start()
      r1_compiled = r1_compiled or with_r1
    else:
      meter.add(2 * b)
    if with_r1:
      r1_total = mr["R1_total"]     # read at the next log, not here (no device wait per R1 step)
    if (it + 1) % config.log_every == 0 or it + 1 == config.iterations:
      meter.stop(state)
      if r1_total is not None:
        last["R1_total"] = float(r1_total)
      last.update({k2: float(jnp.mean(v)) for k2, v in {**md, **mg}.items()
                   if k2 in ("D_total", "G_total", "G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix",
                             "D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix")})
      bad = [k2 for k2, v in last.items() if not np.isfinite(v)]
      if bad:
        raise FloatingPointError(f"non-finite {bad} at iteration {it + 1} (since {it + 1 - config.log_every})")
      rec = {"iteration": it + 1, **last, "images_per_s": meter.rate}
      with open(log_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
      print(" ".join(f"{k2} {v:.4g}" if isinstance(v, float) else f"{k2} {v}" for k2, v in rec.items()),
            flush=True)
      meter.start()
    if config.sample_every and ((it + 1) % config.sample_every == 0 or it + 1 == config.iterations):
      from jaxinv.io.images import save_png
      meter.stop(state)
      save_png(os.path.join(workdir, "samples", f"iter_{it + 1:06d}.png"),
               _sample_grid(mcfg, state["params"], sample_x, sample_noise))
      meter.start()
    if (it + 1) % config.checkpoint_every == 0 or it + 1 == config.iterations:
      meter.stop(state)
      mngr.save(it + 1, args=ocp.args.StandardSave(state))
      meter.start()
  mngr.wait_until_finished()
  meter.stop(state)
  summary = {"iterations": config.iterations, "resumed_from": start, "batch_size": b,
             "devices": int(mesh.devices.size), "images": len(data),
             "images_per_s": meter.rate if meter.images else None,
             "timed_iterations": meter.images // (2 * b), "timed_seconds": meter.seconds,
             "last": last, "model_config": dataclasses.asdict(mcfg)}
  atomic_write_json(os.path.join(workdir, "summary.json"), summary)
  return summary
