"""mGANprior (Gu, Shen, Zhou, CVPR 2020): multi-code inversion with adaptive channel importance.

The optimised variables of one image are ``{"z": [N, D], "alpha": [N, C]}``
(:class:`jaxinv.inversion.spaces.MultiCode`); the objective compares the
*degraded* rendering with the observation (``degrade`` is the identity for plain
reconstruction): ``loss = objective(degrade(G(z, alpha)), observation)``.

Defaults are those of the official ``multi_code_inversion.py``: N 30, layer 6,
SGD lr 1, 3000 steps, ``Combine`` loss (l1 0, l2 1, vgg 1, relu3_3, L1, size 256).

References:
  Gu, Shen, Zhou, Image Processing Using Multi-Code GAN Prior, CVPR 2020,
  https://arxiv.org/abs/1912.07116
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.inversion import objectives, optimize as opt_lib, spaces
from jaxinv.models import pggan
from jaxinv.ops import conv3x3

__all__ = ["MGANpriorConfig", "make_loss_fn", "make_data", "invert", "InversionOutput", "Method"]


@dataclasses.dataclass(frozen=True)
class MGANpriorConfig:
  """Settings of one mGANprior inversion (static: they drive compilation)."""
  codes: int = 30                  # N latent codes
  layer: int = 6                   # composing layer ℓ
  loss: objectives.LossConfig = objectives.LossConfig()
  optimizer: str = "sgd"           # "sgd" | "adam"
  lr: float = 1.0
  steps: int = 3000
  init: str = "normal"             # "normal" | "zero" | "encoder" (init_code=E(x) to invert())
  seed: int = 0
  init_noise: float = spaces.ENCODER_INIT_NOISE   # "encoder": z_n = E(x) + init_noise · N(0, 1)
  init_alpha: float = spaces.ENCODER_INIT_ALPHA   # "encoder": alpha of every code


def _identity(x):
  return x


@functools.lru_cache(maxsize=64)
def make_loss_fn(space: spaces.MultiCode, loss_cfg: objectives.LossConfig,
                 degrade: Callable = _identity) -> Callable:
  """Per-image ``loss_fn(variables, data, shared)`` for :func:`jaxinv.inversion.optimize.optimize`.

  ``data = {"observation": [H', W', C']}`` and, when the loss has a VGG term, optionally
  ``"observation_vgg"``: the observation's VGG features (:func:`make_data`);
  ``shared = {"generator": params (or space.prepare(params)), "vgg": params | None}``.
  Cached on its (hashable) arguments so repeated inversions reuse one compiled program.
  """
  objective = objectives.make_objective(loss_cfg)

  def loss_fn(variables, data, shared):
    image = space.render(variables, shared["generator"])
    return objective(degrade(image), data["observation"], shared.get("vgg"),
                     data.get("observation_vgg"))
  # PGGAN's prepared convolutions and VGG16's carry their input gradients' kernels; the fused
  # up-convolution (transposed), the direct up-convolution and LPIPS's networks do not (measured:
  # optimize's module notes).
  gen = space.generator
  if (isinstance(gen, pggan.PGGANGenerator) and not gen.config.fused_scale
      and conv3x3.resolve(gen.config.conv_impl) != "direct" and loss_cfg.loss != "lpips"):
    opt_lib.scan_on_cpu(loss_fn)
  return loss_fn


def make_data(observations, loss_cfg: objectives.LossConfig, vgg_params=None) -> dict:
  """The per-image ``data`` of :func:`make_loss_fn` for observations ``[B, H', W', C']``: with a VGG
  term, the observations' features are computed once here instead of at every step."""
  observations = jnp.asarray(observations, jnp.float32)
  data = {"observation": observations}
  features = objectives.target_vgg_features(loss_cfg, vgg_params, observations)
  if features is not None:
    data["observation_vgg"] = features
  return data


@dataclasses.dataclass
class InversionOutput:
  variables: dict            # {"z": [B, N, D], "alpha": [B, N, C]}
  images: np.ndarray         # [B, H, W, C] un-degraded renderings of the final variables
  loss: np.ndarray           # [S, B]
  parts: dict                # {term: [S, B]}
  history: Any = None


@functools.lru_cache(maxsize=16)
def _render_batch_fn(space):
  return jax.jit(jax.vmap(space.render, in_axes=(0, None)))


def render_batch(space: spaces.MultiCode, variables, generator_params) -> np.ndarray:
  return np.asarray(_render_batch_fn(space)(variables, generator_params))


def invert(generator_module, generator_params, observations, cfg: MGANpriorConfig, *,
           vgg_params=None, degrade: Callable = _identity, init: dict | None = None,
           init_code=None, key=None, record_variables: bool = False,
           progress: bool | str = True, mesh=None, chunk: int | None = None) -> InversionOutput:
  """Inverts a batch of observations ``[B, H', W', C']`` (NHWC, [-1, 1]).

  Args:
    generator_module: a layered generator (e.g. :class:`jaxinv.models.pggan.PGGANGenerator`).
    generator_params: its params.
    observations: what the loss compares against (degraded when ``degrade`` is not the identity).
    cfg: :class:`MGANpriorConfig`.
    vgg_params: VGG16 params, required when the loss uses the perceptual term.
    degrade: the task operator applied to the rendering before the loss.
    init: ``{"z": [B, N, D], "alpha": [B, N, C]}`` to start from (else ``cfg.init``).
    init_code: ``[B, D]`` encoded codes (e.g. ``E(x)`` of an ``idinvert-encoder`` for
      this z); required by ``cfg.init == "encoder"``, which seeds the N codes from them
      (:meth:`jaxinv.inversion.spaces.MultiCode.init_from_code`).
    key: PRNG key for the init (default ``PRNGKey(cfg.seed)``).
  """
  space = spaces.MultiCode(generator_module, cfg.layer, cfg.codes)
  if cfg.loss.needs_vgg and vgg_params is None:
    raise ValueError("this loss uses the VGG perceptual term: pass VGG16 params (--vgg DEST)")
  observations = jnp.asarray(observations, jnp.float32)
  b = observations.shape[0]
  if init is None:
    key = jax.random.PRNGKey(cfg.seed) if key is None else key
    if cfg.init == "encoder":
      if init_code is None:
        raise ValueError("init 'encoder' needs init_code [B, D] (the encoder's codes)")
      init = space.init_from_code(key, init_code, cfg.init_noise, cfg.init_alpha)
    else:
      init = space.init(key, b, cfg.init)
  else:
    init = {"z": jnp.asarray(init["z"], jnp.float32), "alpha": jnp.asarray(init["alpha"], jnp.float32)}
    want = {"z": (b, cfg.codes, space.z_dim), "alpha": (b, cfg.codes, space.channels)}
    for k, shape in want.items():
      if tuple(init[k].shape) != shape:
        raise ValueError(f"init {k} has shape {tuple(init[k].shape)}; expected {shape} "
                         f"(B images × N codes × {'z_dim' if k == 'z' else 'channels at layer'})")
  loss_fn = make_loss_fn(space, cfg.loss, degrade)
  optimizer = _optimizer(cfg.optimizer, cfg.lr)
  shared = {"generator": space.prepare(generator_params), "vgg": vgg_params}
  data = make_data(observations, cfg.loss, vgg_params)
  result = opt_lib.optimize(loss_fn, init, data, optimizer, cfg.steps,
                            shared=shared, record_variables=record_variables, progress=progress,
                            mesh=mesh, chunk=chunk)
  images = render_batch(space, result.variables, generator_params)
  return InversionOutput(result.variables, images, result.loss, dict(result.aux), result.history)


@functools.lru_cache(maxsize=32)
def _optimizer(name, lr):
  # Cached so that the same settings hand optimize() the same object (one compiled program).
  return opt_lib.make_optimizer(name, lr)


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """mGANprior as a driver method (:func:`jaxinv.inversion.run.run`).

  Per-image data: ``observation [H', W', C']``; optionally ``init_z [N, D]`` and ``init_alpha
  [N, C]`` (start there) or ``code [D]`` (``cfg.init == "encoder"``: the N codes seeded from an
  encoder's ``E(x)``). Otherwise each image's codes are drawn from its own key. Outputs:
  ``z [B, N, D]``, ``alpha [B, N, C]``, ``loss [S, B]`` and the rendering.
  """
  module: Any
  params: Any
  cfg: MGANpriorConfig
  vgg_params: Any = None
  degrade: Callable | None = None   # the task operator (None: reconstruction)
  compute_dtype: str = "float32"    # "bfloat16": the generator runs in bf16 (opt-in)
  name = "mganprior"

  def settings(self) -> dict:
    return {"mganprior": dataclasses.asdict(self.cfg), "compute_dtype": self.compute_dtype}

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run
    cfg = self.cfg
    space = spaces.MultiCode(self.module, cfg.layer, cfg.codes, compute_dtype=self.compute_dtype)
    if cfg.loss.needs_vgg and self.vgg_params is None:
      raise ValueError("this loss uses the VGG perceptual term: pass VGG16 params (--vgg DEST)")
    keys = jnp.asarray(keys)
    first = lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree)
    if "init_z" in data:
      init = {"z": jnp.asarray(data["init_z"], jnp.float32),
              "alpha": jnp.asarray(data["init_alpha"], jnp.float32)}
    elif "code" in data:
      init = jax.vmap(lambda k, c: first(space.init_from_code(
          k, c[None], cfg.init_noise, cfg.init_alpha)))(keys, jnp.asarray(data["code"]))
    else:
      init = jax.vmap(lambda k: first(space.init(k, 1, cfg.init)))(keys)
    res = run.optimize_batch(
        ctx, make_loss_fn(space, cfg.loss, self.degrade or _identity), init,
        make_data(data["observation"], cfg.loss, self.vgg_params), _optimizer(cfg.optimizer, cfg.lr),
        cfg.steps, shared={"generator": space.prepare(self.params), "vgg": self.vgg_params})
    images = render_batch(space, res.variables, self.params)
    return run.BatchOutput({"z": res.variables["z"], "alpha": res.variables["alpha"]},
                           {"loss": res.loss}, {"": images})
