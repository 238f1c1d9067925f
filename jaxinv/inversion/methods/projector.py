"""The rosinality ``projector.py`` recipe on a StyleGAN2 generator, as a method of the shared loop.

Variables of one image: ``{"latent": [G, D] (w) or [G, L, D] (w+), "noises": ([G, r, r], …)
(one map per synthesis conv layer)}``. Per step i (t = i / steps; the loop hands the loss the
step, :func:`jaxinv.inversion.optimize.receives_step`), exactly in the script's order:

1. ``lr = lr0 · min(1, (1 - t)/rampdown)``-cosine ramp-down · ``min(1, t/rampup)`` ramp-up
   (so lr = 0 at step 0; Adam still updates its moments);
2. ``noise_strength = latent_std · noise · max(0, 1 - t/noise_ramp)²``;
3. ``latent_n = latent + ε · noise_strength`` with ε ~ N(0, 1) from ``fold_in(key, i)``
   (or the given ``data["eps"][i]``);
4. ``img = G.synthesis(latent_n, noise=noises)`` (average-pooled to 256 px when larger);
5. ``loss = image_loss(img, target) + noise_regularize · Σ_maps multiscale_autocorr(n)
   + mse · mse(img, target)``;
6. one Adam step on (latent, noises);
7. every noise map renormalised to zero mean, unit (unbiased) std (``post_update``).

``G`` groups images that share one problem, as the script couples its batch (the
noise regulariser and renormalisation run over the whole batch tensor, the image
loss is averaged): jaxinv's default is ``G = 1``, one independent problem per
image (vmapped by :func:`optimize`); ``G = B`` in a single problem reproduces the
script's coupled batch (that is how the golden trajectory is checked).

The image loss is LPIPS (VGG, summed over the group, as the script) or ``"mse"``
(mean, the fixture's replacement).

As a driver method (:class:`Method`, ``jaxinv invert --method projector``) every image is its
own problem (``G = 1``): its noise maps start from its own key and step i's ε from
``fold_in(key', i)``, ``key'`` derived from the same key, so its result does not depend on the
other images, the batch or the devices.

References:
  Karras et al., Analyzing and Improving the Image Quality of StyleGAN, Appendix D,
  https://arxiv.org/abs/1912.04958
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv.inversion import optimize as opt_lib

__all__ = ["ProjectorConfig", "lr_schedule", "noise_strength", "noise_regularize",
           "noise_normalize", "latent_stats", "init_variables", "make_loss_fn", "make_post_update",
           "make_optimizer", "project", "ProjectorOutput", "Method", "NvidiaMethod",
           "noise_buffer_sizes", "W_AVG_SEED"]


@dataclasses.dataclass(frozen=True)
class ProjectorConfig:
  """Settings of ``projector.py`` (its defaults)."""
  steps: int = 1000
  lr: float = 0.1
  lr_rampup: float = 0.05
  lr_rampdown: float = 0.25
  noise: float = 0.05             # latent noise strength, times latent_std
  noise_ramp: float = 0.75
  noise_regularize: float = 1e5
  mse: float = 0.0                # extra MSE weight
  w_plus: bool = False            # optimise w+ instead of one w
  n_mean_latent: int = 10000      # z samples for the mean / std of w
  image_loss: str = "lpips"       # "lpips" (VGG, summed over the group) | "mse" (mean) |
                                  # "features": Σ (features(target) − features(img))²
  lpips_net: str = "vgg"
  seed: int = 0
  noise_std_ddof: int = 1         # noise renormalisation std: 1 rosinality, 0 NVIDIA (population)
  features: Any = None            # image_loss "features": fn(params, img [G,R,R,C] in [-1,1]) → [G, F]

  @classmethod
  def nvidia(cls, steps: int = 1000, **kw):
    """NVIDIA stylegan2-ada-pytorch ``projector.py`` defaults: the same schedule, noise
    regulariser and Adam as rosinality's, feature-distance image loss, population-std
    renormalisation of the noise buffers."""
    kw.setdefault("image_loss", "features")
    return cls(steps=steps, noise_std_ddof=0, **kw)


def lr_schedule(t, lr: float, rampdown: float = 0.25, rampup: float = 0.05):
  """``get_lr`` of the script for ``t ∈ [0, 1)``."""
  ramp = jnp.minimum(1.0, (1.0 - t) / rampdown)
  ramp = 0.5 - 0.5 * jnp.cos(ramp * math.pi)
  ramp = ramp * jnp.minimum(1.0, t / rampup)
  return lr * ramp


def noise_strength(t, latent_std, noise: float, noise_ramp: float):
  return latent_std * noise * jnp.maximum(0.0, 1.0 - t / noise_ramp) ** 2


def noise_regularize(noises):
  """Σ over maps and scales of ``mean(n·roll_W(n))² + mean(n·roll_H(n))²``, halving by 2×2
  average pooling while the size is > 8. ``noises``: maps ``[G, r, r]``."""
  loss = 0.0
  for n in noises:
    size = n.shape[-1]
    while True:
      loss = loss + jnp.mean(n * jnp.roll(n, 1, axis=-1)) ** 2 \
          + jnp.mean(n * jnp.roll(n, 1, axis=-2)) ** 2
      if size <= 8:
        break
      n = n.reshape(n.shape[0], size // 2, 2, size // 2, 2).mean(axis=(2, 4))
      size //= 2
  return loss


def noise_normalize(noises, ddof: int = 1):
  """Each map → ``(n - mean) / std`` over the whole ``[G, r, r]`` tensor (std with ``ddof``)."""
  return tuple((n - jnp.mean(n)) / jnp.std(n, ddof=ddof) for n in noises)


def latent_stats(module, params, key, n: int, z=None):
  """Mean ``[D]`` and the script's std ``sqrt(Σ (w - mean)² / n)`` of ``mapping(z)``."""
  if z is None:
    z = jax.random.normal(key, (n, module.config.z_dim))
  w = module.apply({"params": params}, z, method=module.mapping)
  mean = jnp.mean(w, axis=0)
  std = jnp.sqrt(jnp.sum(jnp.square(w - mean)) / w.shape[0])
  return mean, std


def init_variables(module, cfg: ProjectorConfig, latent_mean, key, batch: int, group: int = 1,
                   noise_sizes=None):
  """``batch`` problems of ``group`` images: latent at the mean w, noises ~ N(0, 1) (one map
  per entry of ``noise_sizes``, default the StyleGAN2 synthesis conv layers')."""
  gcfg = module.config
  lat = jnp.broadcast_to(latent_mean, (batch, group, gcfg.w_dim))
  if cfg.w_plus:
    lat = jnp.broadcast_to(lat[:, :, None], (batch, group, gcfg.num_ws, gcfg.w_dim))
  sizes = _noise_sizes(gcfg) if noise_sizes is None else list(noise_sizes)
  keys = jax.random.split(key, len(sizes))
  noises = tuple(jax.random.normal(keys[i], (batch, group, r, r)) for i, r in enumerate(sizes))
  return {"latent": jnp.asarray(lat), "noises": noises}


def _noise_sizes(gcfg):
  return [4 * 2 ** ((i + 1) // 2) for i in range(gcfg.num_convs)]


def noise_buffer_sizes(params) -> tuple:
  """Sizes of a generator's synthesis noise buffers, read from its parameters (StyleGAN2
  ``layer{i}/noise``; none for StyleGAN3): the maps NVIDIA's script optimises."""
  synth = params["synthesis"]
  sizes, i = [], 0
  while f"layer{i}" in synth and "noise" in synth[f"layer{i}"]:
    sizes.append(int(synth[f"layer{i}"]["noise"].shape[-1]))
    i += 1
  return tuple(sizes)


def _downsample_256(img):
  h = img.shape[1]
  if h <= 256:
    return img
  f = h // 256
  g, _, w, c = img.shape
  return img.reshape(g, h // f, f, w // f, f, c).mean(axis=(2, 4))


@functools.lru_cache(maxsize=16)
def make_loss_fn(module, cfg: ProjectorConfig, trace: bool = True):
  """Per-problem ``loss_fn(variables, data, shared, step=0, key=None)`` (marked
  :func:`~jaxinv.inversion.optimize.receives_step`: the loop passes the step and its key).

  ``data = {"target": [G, R, R, C], "key": PRNG key data [2] uint32 | "eps": [S, G, …]}``
  (step i's ε is ``data["eps"][i]``, else a normal draw from ``fold_in(data["key"], i)``);
  ``shared = {"generator": params, "latent_std": [], "lpips": params | None}``.
  aux: ``mse_loss``, ``n_loss``, ``p_loss``, ``noise_strength`` and, with ``trace``, the
  step's ``latent_n`` and ``img_gen``.
  """
  gcfg = module.config

  @opt_lib.receives_step
  def loss_fn(variables, data, shared, step=0, key=None):
    step = jnp.asarray(step, jnp.int32)
    t = step / cfg.steps
    ns = noise_strength(t, shared["latent_std"], cfg.noise, cfg.noise_ramp)
    latent = variables["latent"]
    if "eps" in data:
      eps = jnp.asarray(data["eps"])[step]
    else:
      key = jax.random.fold_in(data["key"], step) if key is None else key
      eps = jax.random.normal(key, latent.shape)
    latent_n = latent + eps * ns
    wp = latent_n if latent_n.ndim == 3 else jnp.broadcast_to(
        latent_n[:, None], (latent_n.shape[0], gcfg.num_ws, gcfg.w_dim))
    img = module.apply({"params": shared["generator"]}, None, wp, 0, None,
                       list(variables["noises"]), method=module.synthesis)
    img_small = _downsample_256(img)
    target = data["target"]
    mse = jnp.mean(jnp.square(img_small - target))
    if cfg.image_loss == "mse":
      p_loss = mse
    elif cfg.image_loss == "features":
      diff = cfg.features(shared["lpips"], target) - cfg.features(shared["lpips"], img_small)
      p_loss = jnp.sum(jnp.square(diff))
    else:
      from jaxinv.models import lpips
      p_loss = jnp.sum(lpips.lpips_distance(shared["lpips"], img_small, target, net=cfg.lpips_net))
    n_loss = noise_regularize(variables["noises"])
    loss = p_loss + cfg.noise_regularize * n_loss + cfg.mse * mse
    aux = {"mse_loss": mse, "n_loss": n_loss, "p_loss": p_loss, "noise_strength": ns}
    if trace:
      aux.update(latent_n=latent_n, img_gen=img)
    return loss, aux
  return loss_fn


@functools.lru_cache(maxsize=16)
def make_post_update(cfg: ProjectorConfig):
  def post_update(variables, step):
    return {"latent": variables["latent"],
            "noises": noise_normalize(variables["noises"], cfg.noise_std_ddof)}
  return post_update


@functools.lru_cache(maxsize=16)
def make_optimizer(cfg: ProjectorConfig) -> optax.GradientTransformation:
  """Adam (β 0.9/0.999, ε 1e-8) with the script's lr ramp as an Optax schedule (count = step)."""
  sched = lambda count: lr_schedule(count / cfg.steps, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup)
  return optax.adam(sched, b1=0.9, b2=0.999, eps=1e-8)


@dataclasses.dataclass
class ProjectorOutput:
  variables: dict            # final {"latent", "noises"}
  images: np.ndarray         # [B, G, R, R, C] rendered from the final latent and noises
  loss: np.ndarray           # [S, B]
  aux: dict                  # {name: [S, B, ...]}
  history: Any = None


def project(module, params, targets, cfg: ProjectorConfig, *, lpips_params=None, key=None,
            init: dict | None = None, eps=None, latent_mean=None, latent_std=None,
            record_variables: bool = False, progress: bool | str = True, chunk=None
            ) -> ProjectorOutput:
  """Projects targets ``[B, G, R', R', C]`` (R' = min(R, 256); [-1, 1], NHWC).

  ``G`` images per problem (1: independent images, jaxinv's default; pass
  ``targets[None]`` for the script's coupled batch). ``init`` / ``eps`` /
  ``latent_mean`` / ``latent_std`` override the random draws (for parity checks).
  """
  targets = jnp.asarray(targets, jnp.float32)
  if targets.ndim == 4:
    targets = targets[:, None]
  b, g = targets.shape[:2]
  if cfg.image_loss == "lpips" and lpips_params is None:
    raise ValueError("the projector's image loss is LPIPS: pass lpips_params (or image_loss='mse')")
  if cfg.image_loss == "features" and cfg.features is None:
    raise ValueError("image_loss='features' needs cfg.features (and its params as lpips_params)")
  key = jax.random.key(cfg.seed) if key is None else key
  k_mean, k_init, k_eps = jax.random.split(key, 3)
  if latent_mean is None or latent_std is None:
    latent_mean, latent_std = latent_stats(module, params, k_mean, cfg.n_mean_latent)
  if init is None:
    init = init_variables(module, cfg, latent_mean, k_init, b, g)
  else:   # a step counter "t" of older callers is not a variable any more
    init = {"latent": init["latent"], "noises": tuple(init["noises"])}
  data = {"target": targets}
  if eps is not None:
    data["eps"] = jnp.asarray(eps, jnp.float32)
  else:
    data["key"] = jax.random.key_data(jax.random.split(k_eps, b))
  shared = {"generator": params, "latent_std": jnp.asarray(latent_std, jnp.float32),
            "lpips": lpips_params}
  result = opt_lib.optimize(make_loss_fn(module, cfg), init, data, make_optimizer(cfg), cfg.steps,
                            shared=shared, post_update=make_post_update(cfg),
                            record_variables=record_variables, progress=progress, chunk=chunk)
  images = _render_fn(module)(params, result.variables)
  return ProjectorOutput(result.variables, np.asarray(images), result.loss, dict(result.aux),
                         result.history)


@functools.lru_cache(maxsize=16)
def _render_fn(module):
  gcfg = module.config

  def one(params, v):
    lat = v["latent"]
    wp = lat if lat.ndim == 3 else jnp.broadcast_to(lat[:, None], (lat.shape[0], gcfg.num_ws,
                                                                   gcfg.w_dim))
    return module.apply({"params": params}, None, wp, 0, None, list(v["noises"]),
                        method=module.synthesis)
  return jax.jit(jax.vmap(one, in_axes=(None, 0)))


@functools.lru_cache(maxsize=16)
def _per_image_init(module, cfg: ProjectorConfig, noise_sizes: tuple):
  """``(keys [B, 2], latent_mean) -> (variables, step keys)``: each image's noise maps from its
  own key, and the key its per-step ε are folded from."""
  def one(key, latent_mean):
    k_init, k_steps = jax.random.split(key)
    v = init_variables(module, cfg, latent_mean, k_init, 1, 1, noise_sizes)
    return jax.tree_util.tree_map(lambda x: x[0], v), k_steps
  return jax.jit(jax.vmap(one, in_axes=(0, None)))


def _settings_dict(cfg: ProjectorConfig) -> dict:
  out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "features"}
  if cfg.features is not None:
    out["features"] = getattr(cfg.features, "__qualname__", repr(cfg.features))
  return out


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """The projector as a driver method (:func:`jaxinv.inversion.run.run`): one independent
  problem per image (``G = 1``).

  Per-image data: ``target [R', R', C]`` (R' = min(R, 256), [-1, 1]). The mean and std of w are
  the run's (:meth:`create` draws them once from the seed), the noise maps and every step's ε
  come from the image's key. Outputs: ``latent`` (``[B, D]`` w, or ``[B, L, D]`` w+),
  ``noise{i} [B, r, r]``, per-step ``loss`` and its terms, and the rendering.
  """
  module: Any
  params: Any
  cfg: ProjectorConfig
  latent_mean: Any
  latent_std: Any
  lpips_params: Any = None
  name = "projector"

  @classmethod
  def create(cls, module, params, cfg: ProjectorConfig, lpips_params=None, z=None):
    """The method with w's statistics from ``n_mean_latent`` z drawn from ``cfg.seed`` (as
    :func:`project`), or from the given ``z``."""
    if cfg.image_loss == "lpips" and lpips_params is None:
      raise ValueError("the projector's image loss is LPIPS: pass lpips_params (or image_loss='mse')")
    if cfg.image_loss == "features" and cfg.features is None:
      raise ValueError("image_loss='features' needs cfg.features (and its params as lpips_params)")
    k_mean = jax.random.split(jax.random.key(cfg.seed), 3)[0]
    mean, std = latent_stats(module, params, k_mean, cfg.n_mean_latent, z=z)
    return cls(module, params, cfg, np.asarray(mean), np.asarray(std), lpips_params)

  def settings(self) -> dict:
    return {"projector": _settings_dict(self.cfg), "latent_std": float(self.latent_std)}

  def noise_sizes(self) -> tuple:
    return tuple(_noise_sizes(self.module.config))

  def optimize(self, data, keys, ctx):
    """One batch's optimisation: ``(OptimizeResult, renderings [b, R, R, C])``."""
    from jaxinv.inversion import run
    cfg = self.cfg
    init, step_keys = _per_image_init(self.module, cfg, self.noise_sizes())(
        jnp.asarray(keys), jnp.asarray(self.latent_mean))
    targets = jnp.asarray(data["target"], jnp.float32)[:, None]
    shared = {"generator": self.params, "latent_std": jnp.asarray(self.latent_std, jnp.float32),
              "lpips": self.lpips_params}
    res = run.optimize_batch(ctx, make_loss_fn(self.module, cfg, trace=False), init,
                             {"target": targets, "key": step_keys}, make_optimizer(cfg), cfg.steps,
                             shared=shared, post_update=make_post_update(cfg))
    images = np.asarray(_render_fn(self.module)(self.params, res.variables))[:, 0]
    return res, images

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run
    res, images = self.optimize(data, keys, ctx)
    arrays = {"latent": np.asarray(res.variables["latent"])[:, 0],
              **{f"noise{i}": np.asarray(n)[:, 0] for i, n in enumerate(res.variables["noises"])}}
    stepwise = {"loss": res.loss, **{k: np.asarray(v) for k, v in res.aux.items()}}
    return run.BatchOutput(arrays, stepwise, {"": images})


W_AVG_SEED = 123   # NVIDIA's projector.py: w_avg / w_std from np.random.RandomState(123) z


@dataclasses.dataclass(frozen=True, eq=False)
class NvidiaMethod(Method):
  """NVIDIA's ``projector.py`` (:meth:`ProjectorConfig.nvidia`) as a driver method, on StyleGAN2
  and StyleGAN3 (w space; every noise buffer the generator has).

  ``w_avg`` and ``w_std`` are the script's: from ``cfg.n_mean_latent`` z drawn by
  ``RandomState(123)`` (float64 cast to float32), once per method, whatever the batches. Each
  image's noise buffers and per-step w noise come from its own key (see :class:`Method`).
  Outputs: ``w [B, num_ws, w_dim]`` (the projected w repeated, as the script saves it),
  ``noise{i} [B, r, r]``, per-step ``loss`` and the rendering.
  """
  name = "nvidia-projector"

  @classmethod
  def create(cls, module, params, cfg: ProjectorConfig, lpips_params=None, z=None):
    if cfg.w_plus:
      raise ValueError("NVIDIA's projector optimises one w (w_plus=False)")
    if z is None:
      z = np.random.RandomState(W_AVG_SEED).randn(cfg.n_mean_latent, module.config.z_dim)
      z = z.astype(np.float32)
    return super().create(module, params, cfg, lpips_params, z=jnp.asarray(z))

  def settings(self) -> dict:
    return dict(super().settings(), w_avg=f"mapping(RandomState({W_AVG_SEED}).randn("
                                          f"{self.cfg.n_mean_latent}, z_dim))")

  def noise_sizes(self) -> tuple:
    return noise_buffer_sizes(self.params)

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run
    res, images = self.optimize(data, keys, ctx)
    gcfg = self.module.config
    w = np.asarray(res.variables["latent"])[:, 0]
    arrays = {"w": np.ascontiguousarray(np.broadcast_to(w[:, None], (w.shape[0], gcfg.num_ws,
                                                                     gcfg.w_dim))),
              **{f"noise{i}": np.asarray(n)[:, 0] for i, n in enumerate(res.variables["noises"])}}
    return run.BatchOutput(arrays, {"loss": res.loss}, {"": images})
