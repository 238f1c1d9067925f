"""PTI (Pivotal Tuning Inversion): project to a pivot w, then tune the generator around it.

Phase 1 (:func:`project_w`, PTI's ``w_projector.project``, NVIDIA's projector with
lr 0.01): ``w_avg``/``w_std`` from ``w_avg_samples`` mapped z (``w_std`` = sqrt of the summed
squared deviations over all entries divided by the sample count); the optimised variables are
``w [1, D]`` and every synthesis noise map; per step ``t = i / steps``:
``lr = 0.01 · cos-ramp-down · ramp-up`` (0 at step 0; Adam still counts the step),
``w_noise = ε · w_std · 0.05 · max(0, 1 - t/0.75)²``, ``img = (G.synthesis(w + w_noise) + 1)·127.5``
with the maps as noise, ``loss = Σ (φ(target) - φ(img))² + 1e5 · noise_regularize(maps)``; one
Adam step; each map renormalised to zero mean and unit *population* second moment. The maps
are discarded afterwards; the pivot is ``w`` on all rows.

Phase 2 (:func:`tune`, ``SingleIDCoach.train``): Adam (lr 3e-4) on the synthesis parameters
(not the stored noise maps) with ``loss = λ_l2 · MSE(G(w_p), x) + λ_lp · LPIPS(G(w_p), x)
[+ locality regulariser]``, rendering with the stored noise; the step stops (before its update)
once LPIPS <= ``lpips_value_threshold``. The locality regulariser: ``w_s = original
G.mapping(z)`` truncated at ψ = 0.5, ``w_m = w_p + α (w_s - w_p) / ||w_s - w_p||`` (one norm over
all rows), ``λ · MSE(old, new) + λ' · mean LPIPS(old, new)`` between the original and the tuned
generator at ``w_m`` without noise.

Each image has its own pivot and its own generator copy: both phases are written for one
image and ``vmap``-ed, so B images tune B parameter copies in one program. Random draws (the
projector's noise init and ε, the regulariser's z) are inputs, so a run can replay recorded
ones; :func:`draws` makes fresh ones from a key.

Adam is PyTorch's (``m ← lerp(m, g, 1-β1)``, ``v ← β2 v + (1-β2) g²``,
``p ← p - lr/(1-β1^k) · m / (√v/√(1-β2^k) + ε)``), with the step size formed in float64 on the
host from the schedule, as PyTorch forms it from a Python float.

References:
  Roich et al., Pivotal Tuning for Latent-based Editing of Real Images, https://arxiv.org/abs/2106.05744
  Karras et al., Training Generative Adversarial Networks with Limited Data (projector),
  https://arxiv.org/abs/2006.06676
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.inversion.methods.projector import noise_regularize

__all__ = ["PTIConfig", "Method", "image_draws", "projector_schedule", "w_stats", "project_w", "tune", "draws",
           "noise_shapes", "apply_delta", "trainable"]


@dataclasses.dataclass(frozen=True)
class PTIConfig:
  """PTI's ``configs/hyperparameters.py`` and ``w_projector.project`` defaults."""
  first_inv_steps: int = 450              # projector steps
  w_avg_samples: int = 600                # as BaseCoach.calc_inversions passes it
  initial_learning_rate: float = 0.01
  initial_noise_factor: float = 0.05
  lr_rampdown_length: float = 0.25
  lr_rampup_length: float = 0.05
  noise_ramp_length: float = 0.75
  regularize_noise_weight: float = 1e5
  max_pti_steps: int = 350
  pti_learning_rate: float = 3e-4
  lpips_value_threshold: float = 0.06
  pt_l2_lambda: float = 1.0
  pt_lpips_lambda: float = 1.0
  use_locality_regularization: bool = False
  regulizer_l2_lambda: float = 0.1
  regulizer_lpips_lambda: float = 0.1
  regulizer_alpha: float = 30.0
  regulizer_truncation_psi: float = 0.5   # hard-coded in PTI's Space_Regulizer
  betas: tuple = (0.9, 0.999)
  adam_eps: float = 1e-8
  w_samples_seed: int = 123               # np.random.RandomState(123) for the z samples


def projector_schedule(cfg: PTIConfig):
  """Per phase-1 step, float64: ``(lr, w-noise factor without w_std)``."""
  lr, nf = [], []
  for i in range(cfg.first_inv_steps):
    t = i / cfg.first_inv_steps
    nf.append(cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2)
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / cfg.lr_rampup_length)
    lr.append(cfg.initial_learning_rate * ramp)
  return np.asarray(lr, np.float64), np.asarray(nf, np.float64)


def _adam_step_sizes(lrs, cfg: PTIConfig):
  """``(lr/(1-β1^k), sqrt(1-β2^k))`` per step k = 1.. (float64 → float32)."""
  b1, b2 = cfg.betas
  k = np.arange(1, len(lrs) + 1, dtype=np.float64)
  return (np.asarray(lrs / (1 - b1 ** k), np.float32),
          np.asarray(np.sqrt(1 - b2 ** k), np.float32))


def _adam(p, g, m, v, step_size, bc2_sqrt, cfg: PTIConfig):
  b1, b2 = cfg.betas
  m = jax.tree.map(lambda m_, g_: m_ + (g_ - m_) * (1 - b1), m, g)
  v = jax.tree.map(lambda v_, g_: v_ * b2 + (1 - b2) * g_ * g_, v, g)
  p = jax.tree.map(lambda p_, m_, v_: p_ - step_size * (m_ / (jnp.sqrt(v_) / bc2_sqrt
                                                              + cfg.adam_eps)), p, m, v)
  return p, m, v


def noise_shapes(gcfg) -> list[int]:
  """Side of each synthesis conv layer's noise map, in layer order."""
  return [4 * 2 ** ((i + 1) // 2) for i in range(gcfg.num_convs)]


def w_stats(module, params, z_samples):
  """``(w_avg [1, D], w_std)`` of ``mapping(z_samples)`` as the projector computes them."""
  w = module.apply({"params": params}, jnp.asarray(z_samples, jnp.float32), method=module.mapping)
  w_avg = jnp.mean(w, axis=0, keepdims=True)
  w_std = jnp.sqrt(jnp.sum(jnp.square(w - w_avg)) / w.shape[0])
  return w_avg, w_std


def draws(key, gcfg, cfg: PTIConfig, batch: int) -> dict:
  """Fresh random draws for ``batch`` images: ``noise_init`` (per layer ``[B, r, r]``),
  ``eps [T1, B, D]`` (the projector's w noise), ``reg_z [T2, B, z_dim]``."""
  k1, k2, k3 = jax.random.split(key, 3)
  sizes = noise_shapes(gcfg)
  nk = jax.random.split(k1, len(sizes))
  return {"noise_init": [jax.random.normal(k, (batch, r, r)) for k, r in zip(nk, sizes)],
          "eps": jax.random.normal(k2, (cfg.first_inv_steps, batch, gcfg.w_dim)),
          "reg_z": jax.random.normal(k3, (cfg.max_pti_steps, batch, gcfg.z_dim))}


def project_w(module, params, targets, features: Callable, cfg: PTIConfig, noise_init, eps,
              z_samples=None) -> dict:
  """Phase 1 for ``targets [B, R, R, 3]`` in [0, 255].

  Args:
    module, params: a StyleGAN2 generator (``mapping``, ``synthesis`` with explicit noise).
    features: ``img [B, R, R, 3] in [0, 255] -> [B, F]`` (NVIDIA's ``vgg16(..., return_lpips=True)``:
      ``Σ (φ(a) - φ(b))²`` is the perceptual distance).
    noise_init: per layer ``[B, r, r]`` (the maps' ``randn_like`` init).
    eps: ``[T1, B, D]`` (the w noise's randn per step).
    z_samples: ``[N, z_dim]``; default ``RandomState(w_samples_seed).randn(w_avg_samples, z_dim)``.

  Returns ``{"w_pivot" [B, L, D], "loss", "dist", "reg" [T1, B], "w" [T1, B, D] (after each
  step), "noise" (per layer [T1, B, r, r] after each renormalisation), "w_avg", "w_std"}``.
  """
  gcfg = module.config
  if z_samples is None:
    z_samples = _z_samples(gcfg, cfg)
  w_avg, w_std = w_stats(module, params, z_samples)
  lrs, nf = projector_schedule(cfg)
  step_size, bc2 = _adam_step_sizes(lrs, cfg)
  target_feats = features(jnp.asarray(targets))
  L = gcfg.num_ws
  step = _projector_step(module, params, features, cfg)

  def one(tf, noise0, eps_i):
    var, zeros = _projector_start(w_avg, noise0)
    scales = (w_std * jnp.asarray(nf, jnp.float32))
    (var, _, _), hist = jax.lax.scan(functools.partial(step, tf), (var, zeros, zeros),
                                     (eps_i, scales, jnp.asarray(step_size), jnp.asarray(bc2)))
    return var["w"][0], hist

  w, (loss, dist, reg, w_hist, noise_hist) = jax.vmap(one, in_axes=(0, 0, 1), out_axes=(0, 1))(
      target_feats, [jnp.asarray(n) for n in noise_init], jnp.asarray(eps))
  return {"w_pivot": jnp.broadcast_to(w[:, None], (w.shape[0], L, w.shape[-1])),
          "loss": loss, "dist": dist, "reg": reg, "w": w_hist, "noise": noise_hist,
          "w_avg": w_avg, "w_std": w_std}


def _z_samples(gcfg, cfg: PTIConfig):
  return np.random.RandomState(cfg.w_samples_seed).randn(cfg.w_avg_samples, gcfg.z_dim)


def _projector_start(w_avg, noise0):
  """One image's phase-1 variables (``w [1, D]``, the maps) and zero Adam moments."""
  var = {"w": w_avg, "noise": list(noise0)}
  return var, jax.tree.map(jnp.zeros_like, var)


def _projector_step(module, params, features, cfg: PTIConfig):
  """One image's phase-1 step ``step(target_features, (var, m, v), (ε, noise scale, Adam step
  size, sqrt(1-β2^k))) -> ((var, m, v), (loss, dist, reg, w, maps))``."""
  L = module.config.num_ws

  def loss_fn(var, tf, e, scale):
    w = var["w"] + e[None] * scale
    ws = jnp.broadcast_to(w[:, None], (1, L, w.shape[-1]))
    img = module.apply({"params": params}, None, ws, noise=[n[None] for n in var["noise"]],
                       method=module.synthesis)
    img = (img + 1) * (255 / 2)
    dist = jnp.sum(jnp.square(tf[None] - features(img)))
    reg = noise_regularize([n[None] for n in var["noise"]])
    return dist + cfg.regularize_noise_weight * reg, (dist, reg)

  def step(tf, carry, xs):
    var, m, v = carry
    e, scale, ss, b2 = xs
    (loss, (dist, reg)), g = jax.value_and_grad(loss_fn, has_aux=True)(var, tf, e, scale)
    var, m, v = _adam(var, g, m, v, ss, b2, cfg)
    noise = []
    for n in var["noise"]:
      n = n - jnp.mean(n)
      noise.append(n * jax.lax.rsqrt(jnp.mean(jnp.square(n))))
    var = {"w": var["w"], "noise": noise}
    return (var, m, v), (loss, dist, reg, var["w"][0], noise)
  return step


def trainable(params):
  """The phase-2 parameters: the synthesis tree without the stored noise maps (buffers)."""
  return {k: {n: a for n, a in v.items() if n != "noise"} if isinstance(v, dict) else v
          for k, v in params["synthesis"].items()}


def apply_delta(params, delta):
  """``params`` with ``delta`` (a :func:`tune` delta of one image) added to the synthesis."""
  syn = jax.tree.map(lambda p: p, params["synthesis"])
  for k, sub in delta.items():
    if isinstance(sub, dict):
      syn[k] = {**syn[k], **{n: syn[k][n] + d for n, d in sub.items()}}
    else:
      syn[k] = syn[k] + sub
  return {**params, "synthesis": syn}


def tune(module, params, w_pivot, real, lpips_fn: Callable, cfg: PTIConfig, reg_z=None,
         lpips_threshold=None) -> dict:
  """Phase 2 for B images at once, one generator copy per image.

  Args:
    w_pivot: ``[B, L, D]``; real: ``[B, R, R, 3]`` in [-1, 1].
    lpips_fn: ``(x, y) -> [B]`` LPIPS of NHWC images in [-1, 1].
    reg_z: ``[T2, B, z_dim]`` the regulariser's z per step (needed when it is on).
    lpips_threshold: ``[B]`` per-image early-stop thresholds (default
      ``cfg.lpips_value_threshold`` for all; an array keeps it out of the compiled constants).

  Returns ``{"delta": tuned - original (synthesis tree, leading axis B), "loss", "l2", "lpips",
  "reg" [T2, B] (per loss evaluation; after an image stops, its entries repeat nothing and
  are masked by ``evaluated``), "evaluated" [T2, B] bool, "steps" [B] (optimizer steps taken),
  "final_image" [B, R, R, 3]}``.
  """
  T = cfg.max_pti_steps
  step_size, bc2 = _tune_schedule(cfg)
  theta0 = trainable(params)
  if cfg.use_locality_regularization and reg_z is None:
    raise ValueError("the locality regulariser needs reg_z [T2, B, z_dim]")
  if reg_z is None:
    reg_z = jnp.zeros((T, w_pivot.shape[0], module.config.z_dim))
  step, render = _tune_step(module, params, lpips_fn, cfg)

  def one(wp, x, zs, threshold):
    (theta, _, _, _, n), hist = jax.lax.scan(
        functools.partial(step, wp, x, threshold), _tune_start(theta0),
        (zs, jnp.asarray(step_size), jnp.asarray(bc2)))
    delta = jax.tree.map(lambda a, b: a - b, theta, theta0)
    return delta, n, render(theta, wp[None], "const")[0], hist

  if lpips_threshold is None:
    lpips_threshold = jnp.full((w_pivot.shape[0],), cfg.lpips_value_threshold, jnp.float32)
  delta, n, img, (loss, l2, lp, reg, ev) = jax.vmap(one, in_axes=(0, 0, 1, 0),
                                                     out_axes=(0, 0, 0, 1))(
      jnp.asarray(w_pivot), jnp.asarray(real), jnp.asarray(reg_z, jnp.float32),
      jnp.asarray(lpips_threshold, jnp.float32))
  return {"delta": delta, "steps": n, "final_image": img, "loss": loss, "l2": l2, "lpips": lp,
          "reg": reg, "evaluated": ev}


def _tune_schedule(cfg: PTIConfig):
  """Phase 2's Adam step sizes and ``sqrt(1-β2^k)`` per step (float32)."""
  return _adam_step_sizes(np.full((cfg.max_pti_steps,), cfg.pti_learning_rate, np.float64), cfg)


def _tune_start(theta0):
  """One image's phase-2 carry: parameters, zero Adam moments, not stopped, 0 steps taken."""
  zeros = jax.tree.map(jnp.zeros_like, theta0)
  return theta0, zeros, zeros, jnp.zeros((), bool), jnp.zeros((), jnp.int32)


def _tune_step(module, params, lpips_fn: Callable, cfg: PTIConfig):
  """``(step, render)``: one image's phase-2 step ``step(w_pivot [L, D], x [R, R, 3], threshold,
  carry, (z, Adam step size, sqrt(1-β2^k))) -> (carry, (loss, l2, lpips, reg, evaluated))`` with
  carry ``(theta, m, v, stopped, steps taken)``, and ``render(theta, ws, noise)``."""
  theta0 = trainable(params)
  use_reg = cfg.use_locality_regularization

  def render(theta, ws, noise):
    p = {**params, "synthesis": {**params["synthesis"],
                                 **{k: ({**params["synthesis"][k], **v} if isinstance(v, dict)
                                        else v) for k, v in theta.items()}}}
    return module.apply({"params": p}, None, ws, noise=noise, method=module.synthesis)

  def loss_fn(theta, z, wp, x):
    gen = render(theta, wp, "const")
    l2 = jnp.mean(jnp.square(gen - x))
    lp = lpips_fn(gen, x)[0]
    loss = cfg.pt_l2_lambda * l2 + cfg.pt_lpips_lambda * lp
    reg = jnp.zeros((), loss.dtype)
    if use_reg:
      w_s = module.apply({"params": params}, module.apply({"params": params}, z[None],
                                                          method=module.mapping),
                         cfg.regulizer_truncation_psi, method=module.truncate)
      d = w_s - wp
      w_m = wp + cfg.regulizer_alpha * d / jnp.sqrt(jnp.sum(jnp.square(d)))
      new = render(theta, w_m, "zero")
      old = jax.lax.stop_gradient(render(theta0, w_m, "zero"))
      reg = (cfg.regulizer_l2_lambda * jnp.mean(jnp.square(old - new))
             + cfg.regulizer_lpips_lambda * jnp.mean(lpips_fn(old, new)))
      loss = loss + reg
    return loss, (l2, lp, reg)

  def step(wp, x, threshold, carry, xs):
    theta, m, v, done, n = carry
    z, ss, b2 = xs
    (loss, (l2, lp, reg)), g = jax.value_and_grad(loss_fn, has_aux=True)(theta, z, wp[None],
                                                                          x[None])
    evaluated = ~done
    done = done | (lp <= threshold)
    take = ~done
    t2, m2, v2 = _adam(theta, g, m, v, ss, b2, cfg)
    sel = lambda a, b: jax.tree.map(lambda u, w: jnp.where(take, u, w), a, b)
    return ((sel(t2, theta), sel(m2, m), sel(v2, v), done, n + take.astype(jnp.int32)),
            (loss, l2, lp, reg, evaluated))
  return step, render


def lpips_features(lpips_module, lpips_params, max_size: int = 256):
  """NVIDIA ``vgg16(img, resize_images=False, return_lpips=True)`` from an LPIPS model: per tap
  the unit-normalised features times ``sqrt(lin / (h·w))``, flattened, so that the squared
  distance of two vectors is their LPIPS distance. ``img`` NHWC in [0, 255]; images larger
  than ``max_size`` are area-downsampled to it first, as the projector does."""
  from jaxinv.models.lpips import _unit_normalize

  def features(img):
    if img.shape[1] > max_size:
      f = img.shape[1] // max_size
      b, h, w, c = img.shape
      img = img.reshape(b, h // f, f, w // f, f, c).mean(axis=(2, 4))
    x = img / 127.5 - 1
    taps = lpips_module.apply({"params": lpips_params}, x, method=lpips_module.features)
    out = []
    for k, t in enumerate(taps):
      lin = lpips_params[f"lin{k}"]["weight"]
      n = _unit_normalize(t) * jnp.sqrt(lin / (t.shape[1] * t.shape[2]))
      out.append(n.reshape(n.shape[0], -1))
    return jnp.concatenate(out, axis=1)
  return features


class _Programs:
  """The compiled pieces of a chunked PTI batch, each ``shard_map``-ed over ``mesh`` (each device
  vmaps over its own images' generator copies; letting the SPMD partitioner split the vmapped
  per-copy convolutions fails on grouped convs): phase 1's start and chunk of steps, phase 2's
  start and chunk, and the final delta / render. A chunk's length is its inputs' (one program
  per distinct length)."""

  def __init__(self, module, params, cfg: PTIConfig, features, lpips_fn, mesh):
    from jax.sharding import PartitionSpec as P
    from jaxinv import sharding
    self.mesh, self.cfg = mesh, cfg
    self.first, self.second, rep = P(sharding.DATA_AXIS), P(None, sharding.DATA_AXIS), P()
    first, second = self.first, self.second
    z_samples = _z_samples(module.config, cfg)
    L = module.config.num_ws
    p_step = _projector_step(module, params, features, cfg)
    t_step, render = _tune_step(module, params, lpips_fn, cfg)
    theta0 = trainable(params)

    def start1(x, noise_init):
      w_avg, w_std = w_stats(module, params, z_samples)
      var, zeros = jax.vmap(lambda n: _projector_start(w_avg, n))(noise_init)
      return features((x + 1) / 2 * 255), w_std, (var, zeros, zeros)

    def chunk1(tf, carry, eps, w_std, nf, ss, b2):
      scales = w_std * nf
      return jax.vmap(lambda t, c, e: jax.lax.scan(functools.partial(p_step, t), c,
                                                   (e, scales, ss, b2))[0],
                      in_axes=(0, 0, 1))(tf, carry, eps)

    def pivot(carry1):
      w = carry1[0]["w"][:, 0]
      return jnp.broadcast_to(w[:, None], (w.shape[0], L, w.shape[-1]))

    def start2(wp):
      return jax.vmap(lambda _: _tune_start(theta0))(wp)

    def chunk2(wp, x, threshold, carry, zs, ss, b2):
      carry, hist = jax.vmap(lambda w, xi, t, c, z: jax.lax.scan(
          functools.partial(t_step, w, xi, t), c, (z, ss, b2)),
                             in_axes=(0, 0, 0, 0, 1), out_axes=(0, 1))(wp, x, threshold, carry, zs)
      return carry, hist[0]

    def finish(wp, carry):
      theta, n = carry[0], carry[4]
      delta = jax.tree.map(lambda a, b: a - b, theta, theta0)
      img = jax.vmap(lambda t, w: render(t, w[None], "const")[0])(theta, wp)
      return delta, n, img

    self.start1 = self._compile(start1, (first, first), (first, rep, first))
    self.chunk1 = self._compile(chunk1, (first, first, second, rep, rep, rep, rep), first)
    self.pivot = self._compile(pivot, (first,), first)
    self.start2 = self._compile(start2, (first,), first)
    self.chunk2 = self._compile(chunk2, (first, first, first, first, second, rep, rep),
                                (first, second))
    self.finish = self._compile(finish, (first, first), (first, first, first))

  def _compile(self, fn, in_specs, out_specs):
    if self.mesh is None:
      return jax.jit(fn)
    return jax.jit(jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs,
                                 check_vma=False))

  def put(self, tree, spec):
    """``tree`` on the devices, its image axis (``spec``) split over the mesh."""
    if self.mesh is None:
      return jax.tree.map(jnp.asarray, tree)
    from jax.sharding import NamedSharding
    return jax.device_put(tree, NamedSharding(self.mesh, spec))

  def run(self, x, d, wp, chunk: int | None = None, checkpoint=None, progress=False) -> dict:
    """Both phases for one batch (``x [B, R, R, 3]`` in [-1, 1], :func:`draws` ``d``, pivots
    ``wp [B, L, D]`` or None for the projector) in chunks of ``chunk`` steps (default: each
    phase in one), continuing ``checkpoint``'s saved state and saving after every chunk.

    Steps are counted over both phases (phase 2's step k is step ``T1 + k``, ``T1 = 0`` with
    given pivots), so a saved step tells its phase. Returns ``{"w_pivot", "delta", "steps",
    "final_image", "loss" [T2, B]}``.
    """
    import sys
    cfg, first, second = self.cfg, self.first, self.second
    t1 = 0 if wp is not None else cfg.first_inv_steps
    t2 = cfg.max_pti_steps
    total = t1 + t2
    lrs, nf = projector_schedule(cfg)
    ss1, b21 = _adam_step_sizes(lrs, cfg)
    nf = np.asarray(nf, np.float32)
    ss2, b22 = _tune_schedule(cfg)
    b = x.shape[0]
    x = self.put(jnp.asarray(x, jnp.float32), first)
    threshold = self.put(jnp.full((b,), cfg.lpips_value_threshold, jnp.float32), first)
    step, losses, carry1, carry2 = 0, [], None, None
    if t1:
      tf, w_std, carry1 = self.start1(x, self.put(list(d["noise_init"]), first))
    else:
      wp = self.put(jnp.asarray(wp, jnp.float32), first)
      carry2 = self.start2(wp)
    if checkpoint is not None:
      saved = checkpoint.latest_step()
      if saved is not None:
        phase1 = saved <= t1
        if phase1:
          like = {"carry": carry1}
        elif t1:
          wp_like = jax.eval_shape(self.pivot, carry1)
          like = {"w_pivot": wp_like, "carry": jax.eval_shape(self.start2, wp_like)}
        else:
          like = {"w_pivot": wp, "carry": carry2}
        like = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), like)
        tree, step, records = checkpoint.restore(like)
        if phase1:
          carry1 = self.put(tree["carry"], first)
        else:
          wp, carry2 = self.put(tree["w_pivot"], first), self.put(tree["carry"], first)
          losses = [records["loss"]] if step > t1 else []
        print(f"resuming {checkpoint.batch_id} ({b} images) at step {step}/{total}",
              file=sys.stderr)
    bar = None
    if progress:
      from jaxinv.progress import ChunkedProgress
      bar = ChunkedProgress(total - step, progress if isinstance(progress, str) else "pti")
    try:
      while step < t1:
        n = min(chunk or t1, t1 - step)
        k = slice(step, step + n)
        carry1 = self.chunk1(tf, carry1, self.put(d["eps"][k], second), w_std, nf[k], ss1[k],
                             b21[k])
        step += n
        if checkpoint is not None and step < total:
          checkpoint.save({"carry": carry1}, step)
        if bar is not None:
          bar.update(n)
      if carry2 is None:
        wp = self.pivot(carry1)
        carry2 = self.start2(wp)
      while step < total:
        n = min(chunk or t2, total - step)
        k = slice(step - t1, step - t1 + n)
        carry2, loss = self.chunk2(wp, x, threshold, carry2, self.put(d["reg_z"][k], second),
                                   ss2[k], b22[k])
        losses.append(np.asarray(loss))
        step += n
        if checkpoint is not None and step < total:
          checkpoint.save({"w_pivot": wp, "carry": carry2}, step,
                          {"loss": np.concatenate(losses)})
        if bar is not None:
          bar.update(n)
    finally:
      if bar is not None:
        bar.close()
    delta, n, img = self.finish(wp, carry2)
    return {"w_pivot": wp, "delta": delta, "steps": n, "final_image": img,
            "loss": np.concatenate(losses)}


def image_draws(keys, gcfg, cfg: PTIConfig) -> dict:
  """:func:`draws` of each image from its own key (``keys [B, 2]``), stacked as one batch's."""
  per = [draws(jnp.asarray(k), gcfg, cfg, 1) for k in np.asarray(keys)]
  return {"noise_init": [jnp.concatenate([p["noise_init"][i] for p in per])
                         for i in range(len(per[0]["noise_init"]))],
          "eps": jnp.concatenate([p["eps"] for p in per], axis=1),
          "reg_z": jnp.concatenate([p["reg_z"] for p in per], axis=1)}


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """PTI as a driver method: B images tune B generator copies in one program, sharded over
  ``ctx.mesh``; each image's draws (noise maps, projector noise, locality-regulariser z) come
  from its own key. Both phases run in chunks of ``ctx.chunk`` steps, each followed by an
  in-flight checkpoint, so an interrupted batch resumes mid-phase to the uninterrupted result.

  Per-image data: ``image [R, R, 3]`` in [-1, 1] and optionally ``pivot [L, D]`` (an encoder's
  w+, skipping the projector). Outputs: ``w_pivot``, ``steps``, the delta leaves as
  ``delta/<path>`` (:func:`jaxinv.io.deltas.nest` rebuilds the tree), ``loss [T2, B]`` and the
  tuned generators' renders of their pivots.
  """
  module: Any
  params: Any
  cfg: PTIConfig
  features: Callable | None
  lpips_fn: Callable
  name = "pti"

  def settings(self) -> dict:
    return {"pti": dataclasses.asdict(self.cfg)}

  @functools.lru_cache(maxsize=4)
  def programs(self, mesh) -> _Programs:
    return _Programs(self.module, self.params, self.cfg, self.features, self.lpips_fn, mesh)

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run as run_lib
    from jaxinv.io.deltas import flatten
    x = np.asarray(data["image"], np.float32)
    wp = None if "pivot" not in data else np.asarray(data["pivot"], np.float32)
    p2 = self.programs(ctx.mesh).run(x, image_draws(keys, self.module.config, self.cfg), wp,
                                     chunk=ctx.chunk, checkpoint=ctx.checkpoint,
                                     progress=ctx.progress)
    arrays = {"w_pivot": np.asarray(p2["w_pivot"]), "steps": np.asarray(p2["steps"]),
              **{f"delta/{k}": v for k, v in flatten(jax.device_get(p2["delta"])).items()}}
    return run_lib.BatchOutput(arrays, {"loss": np.asarray(p2["loss"])},
                               {"": np.asarray(p2["final_image"])})


def invert(module, params, images, cfg: PTIConfig, features: Callable | None, lpips_fn: Callable,
           key, batch: int = 4, devices=None, pivots=None) -> dict:
  """PTI for ``images [N, R, R, 3]`` in [-1, 1], ``batch`` images (and generator copies) per
  program, sharded over ``devices`` (default: every local device; the batch is rounded up to
  a multiple of their count), fresh draws per batch from ``fold_in(key, first image index)``
  (the CLI runs :class:`Method` through the driver instead: draws per image name).

  Returns ``{"w_pivot" [N, L, D], "delta" (synthesis tree, leading axis N), "steps" [N],
  "images" [N, R, R, 3] (the tuned generators' renders of their pivots), "loss" [T2, N]}``.
  """
  from jaxinv import sharding
  n = len(images)
  mesh, batch = sharding.batch_plan(batch, n, devices=devices)
  programs = _Programs(module, params, cfg, features, lpips_fn, mesh)
  gcfg = module.config
  out = []
  for start in range(0, n, batch):
    x, real = sharding.pad_to_multiple(np.asarray(images[start:start + batch]), batch)
    wp = None
    if pivots is not None:
      wp, _ = sharding.pad_to_multiple(np.asarray(pivots[start:start + batch], np.float32), batch)
    p2 = programs.run(x, draws(jax.random.fold_in(key, start), gcfg, cfg, batch), wp)
    out.append(jax.tree.map(lambda a: np.asarray(a)[:real], (p2["w_pivot"], p2["delta"], p2["steps"],
                                                           p2["final_image"])) +
               (np.asarray(p2["loss"])[:, :real],))
  w, delta, steps, imgs, loss = zip(*out)
  return {"w_pivot": np.concatenate(w),
          "delta": jax.tree.map(lambda *a: np.concatenate(a), *delta),
          "steps": np.concatenate(steps), "images": np.concatenate(imgs),
          "loss": np.concatenate(loss, axis=1)}
