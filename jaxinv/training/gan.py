"""A small GAN trainer: a PGGAN generator against a residual-free conv discriminator.

Objective: the non-saturating logistic loss (Goodfellow et al., 2014) with a
lazy R1 gradient penalty on real images (Mescheder et al., 2018), the
StyleGAN/StyleGAN2 recipe. It is chosen because at this size (≈1k parameters
per pixel, a few thousand steps, batch 32) it trains without tuning: R1 keeps
the discriminator's gradients bounded near the data, so the generator neither
collapses nor oscillates, and unlike WGAN-GP it needs one discriminator step
per generator step and no interpolated batch. Both networks use the equalized
learning rate of the PGGAN generator (weights stored N(0, 1), scaled at run
time), so one Adam learning rate fits every layer.

Everything is a pure function of an explicit ``jax.random`` key; a run of
``train`` is a loop of jitted steps, with batches drawn on device from the
in-memory data set, so a seed fixes the whole run.

Layouts: images NHWC in [-1, 1]; kernels HWIO.

References:
  Karras et al., Progressive Growing of GANs, https://arxiv.org/abs/1710.10196
  Mescheder et al., Which Training Methods for GANs do actually Converge?,
  https://arxiv.org/abs/1801.04406
  Karras et al., Analyzing and Improving the Image Quality of StyleGAN,
  https://arxiv.org/abs/1912.04958
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv.models import layers as L
from jaxinv.models import pggan
from jaxinv.ops.minibatch import minibatch_stddev
from jaxinv.ops.r1 import squared_grad_norms

__all__ = ["DiscriminatorConfig", "Discriminator", "GANConfig", "TrainState", "init_state",
           "make_train_step", "train"]


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """A PGGAN-style discriminator: fromRGB, then (conv, conv, 2×2 average pool) per resolution."""
  resolution: int = 32            # input size, a power of two ≥ 8
  image_channels: int = 3         # input channels
  channels: tuple = (16, 32, 64, 64)  # widths at resolution, resolution/2, ..., 4 (len = log2(res)-1)
  mbstd: bool = True              # append the minibatch-stddev feature at 4×4 (against mode collapse)


class _EqConv(nn.Module):
  """``conv(x, W · gain/sqrt(fan_in)) + b`` with W ~ N(0, 1) (equalized learning rate)."""
  features: int
  kernel: int = 3

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    w = self.param("weight", nn.initializers.normal(1.0),
                   (self.kernel, self.kernel, cin, self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    return L.conv2d(x, w * L.he_scale(self.kernel * self.kernel * cin),
                    padding=self.kernel // 2) + b


class _EqDense(nn.Module):
  features: int
  gain: float = float(np.sqrt(2.0))

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (x.shape[-1], self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    return x @ (w * L.he_scale(x.shape[-1], self.gain)) + b


class Discriminator(nn.Module):
  """``[B, R, R, C]`` images in [-1, 1] → ``[B]`` logits (real > 0)."""
  config: DiscriminatorConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    n_res = int(np.log2(cfg.resolution)) - 1
    if len(cfg.channels) != n_res:
      raise ValueError(f"DiscriminatorConfig.channels needs {n_res} widths, got {cfg.channels}")
    x = L.lrelu(_EqConv(cfg.channels[0], 1, name="fromrgb")(x))
    for i in range(n_res - 1):
      res = cfg.resolution // 2 ** i
      x = L.lrelu(_EqConv(cfg.channels[i], name=f"b{res}_conv0")(x))
      x = L.lrelu(_EqConv(cfg.channels[i + 1], name=f"b{res}_conv1")(x))
      b, h, w, c = x.shape
      x = x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    if cfg.mbstd:
      x = minibatch_stddev(x, group_size=x.shape[0])
    x = L.lrelu(_EqConv(cfg.channels[-1], name="b4_conv")(x))
    x = L.lrelu(_EqDense(cfg.channels[-1], name="b4_fc")(x.reshape(x.shape[0], -1)))
    return _EqDense(1, gain=1.0, name="out")(x)[:, 0]


@dataclasses.dataclass(frozen=True)
class GANConfig:
  """Training hyper-parameters (architecture configs included, so one object fixes a run)."""
  generator: pggan.PGGANConfig
  discriminator: DiscriminatorConfig
  batch_size: int = 32
  steps: int = 3000
  lr: float = 2e-3                # Adam, both networks
  beta1: float = 0.0
  beta2: float = 0.99
  r1_gamma: float = 2.0           # R1 weight: gamma/2 · E|∇D(x_real)|²
  r1_every: int = 16              # lazy R1: every k-th step, weighted by k
  ema_beta: float = 0.995         # generator EMA (the shipped weights)
  ema_start: int = 200            # EMA copies the weights exactly until this step


@dataclasses.dataclass
class TrainState:
  g: dict                         # generator params
  d: dict                         # discriminator params
  g_ema: dict
  g_opt: optax.OptState
  d_opt: optax.OptState
  step: jax.Array                 # int32 scalar


jax.tree_util.register_dataclass(TrainState, data_fields=["g", "d", "g_ema", "g_opt", "d_opt",
                                                          "step"], meta_fields=[])


def _optimizer(cfg: GANConfig):
  return optax.adam(cfg.lr, b1=cfg.beta1, b2=cfg.beta2, eps=1e-8)


def init_state(cfg: GANConfig, key: jax.Array) -> TrainState:
  """Initial parameters (generator: PGGAN N(0,1) weights, zero biases) and optimizer states."""
  kg, kd = jax.random.split(key)
  gen = pggan.PGGANGenerator(cfg.generator)
  dis = Discriminator(cfg.discriminator)
  r = cfg.generator.resolution
  g = gen.init(kg, jnp.zeros((1, cfg.generator.z_dim)))["params"]
  d = dis.init(kd, jnp.zeros((2, r, r, cfg.discriminator.image_channels)))["params"]
  opt = _optimizer(cfg)
  return TrainState(g=g, d=d, g_ema=jax.tree_util.tree_map(jnp.array, g), g_opt=opt.init(g),
                    d_opt=opt.init(d), step=jnp.zeros((), jnp.int32))


def make_train_step(cfg: GANConfig) -> Callable:
  """A jitted ``(state, data, key, do_r1) -> (state, losses [3])`` for one training step.

  ``data`` ``[N, R, R, C]`` in [-1, 1]; step ``t`` draws its batch and latents
  from ``fold_in(key, t)``; ``do_r1`` (static) adds the lazy R1 penalty.
  ``losses``: discriminator logistic loss, generator loss, R1 penalty (0 when
  not ``do_r1``). One jitted step per Python iteration is ~10× faster than a
  ``lax.scan`` of steps on XLA:CPU here (measured: 0.9 s vs 9.4 s per step).
  """
  gen = pggan.PGGANGenerator(cfg.generator)
  dis = Discriminator(cfg.discriminator)
  opt = _optimizer(cfg)
  B, zd = cfg.batch_size, cfg.generator.z_dim

  def d_loss_fn(d, g, reals, z, do_r1):
    fakes = gen.apply({"params": g}, z)
    real_logits = dis.apply({"params": d}, reals)
    fake_logits = dis.apply({"params": d}, fakes)
    loss = jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))

    if do_r1:
      penalty = jnp.mean(squared_grad_norms(lambda x: dis.apply({"params": d}, x), reals))
    else:
      penalty = jnp.zeros(())
    return loss + 0.5 * cfg.r1_gamma * cfg.r1_every * penalty, (loss, penalty)

  def g_loss_fn(g, d, z):
    fakes = gen.apply({"params": g}, z)
    return jnp.mean(jax.nn.softplus(-dis.apply({"params": d}, fakes)))

  @functools.partial(jax.jit, static_argnums=3, donate_argnums=0)
  def one_step(state: TrainState, data, key, do_r1: bool):
    k = jax.random.fold_in(key, state.step)
    k_idx, k_zd, k_zg = jax.random.split(k, 3)
    reals = data[jax.random.randint(k_idx, (B,), 0, data.shape[0])]
    (_, (d_loss, r1)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
        state.d, state.g, reals, jax.random.normal(k_zd, (B, zd)), do_r1)
    d_upd, d_opt = opt.update(d_grads, state.d_opt, state.d)
    d = optax.apply_updates(state.d, d_upd)
    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(state.g, d, jax.random.normal(k_zg, (B, zd)))
    g_upd, g_opt = opt.update(g_grads, state.g_opt, state.g)
    g = optax.apply_updates(state.g, g_upd)
    beta = jnp.where(state.step < cfg.ema_start, 0.0, cfg.ema_beta)
    g_ema = jax.tree_util.tree_map(lambda e, p: beta * e + (1 - beta) * p, state.g_ema, g)
    new = TrainState(g=g, d=d, g_ema=g_ema, g_opt=g_opt, d_opt=d_opt, step=state.step + 1)
    return new, jnp.stack([d_loss, g_loss, r1])

  return one_step


def train(cfg: GANConfig, data: np.ndarray, key: jax.Array, chunk: int = 100,
          log: Callable[[str], None] = print) -> tuple[TrainState, np.ndarray]:
  """Trains for ``cfg.steps`` steps; returns the final state and losses ``[steps, 3]``.

  Args:
    cfg: hyper-parameters; ``cfg.steps`` must be a multiple of ``chunk``.
    data: ``[N, R, R, C]`` float32 training images in [-1, 1].
    key: the run's only source of randomness (init uses ``fold_in(key, 0)``,
      steps use ``fold_in(key, 1)``).
    chunk: steps per jitted scan (and per log line).
  """
  if cfg.steps % chunk:
    raise ValueError(f"steps {cfg.steps} is not a multiple of chunk {chunk}")
  r, c = cfg.generator.resolution, cfg.discriminator.image_channels
  if data.shape[1:] != (r, r, c):
    raise ValueError(f"data is {data.shape}, expected [N, {r}, {r}, {c}]")
  state = init_state(cfg, jax.random.fold_in(key, 0))
  step_fn = make_train_step(cfg)
  data = jnp.asarray(data, jnp.float32)
  step_key = jax.random.fold_in(key, 1)
  losses = []
  t0 = time.time()
  for i in range(cfg.steps // chunk):
    l = []
    for t in range(i * chunk, (i + 1) * chunk):
      state, lt = step_fn(state, data, step_key, t % cfg.r1_every == 0)
      l.append(lt)
    l = np.asarray(jnp.stack(l))
    if not np.isfinite(l).all():
      raise FloatingPointError(f"non-finite GAN loss in steps [{i * chunk}, {(i + 1) * chunk})")
    losses.append(l)
    r1 = l[:, 2][l[:, 2] > 0].mean() if (l[:, 2] > 0).any() else 0.0
    log(f"step {(i + 1) * chunk:5d}  D {l[:, 0].mean():.4f}  G {l[:, 1].mean():.4f}  "
        f"R1 {r1:.4f}  ({time.time() - t0:.0f} s)")
  return state, np.concatenate(losses)
