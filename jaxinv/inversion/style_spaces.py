"""Inversion spaces of the style-based generators (StyleGAN, StyleGAN2): z, w, w+, multi-code.

A space is a frozen, hashable :class:`StyleSpace` (it drives compilation) plus
two pure functions:

* :func:`init` → the variables of a batch of images (a pytree with a leading
  batch axis ``B``), what ``optimize`` trains;
* :func:`render` → the image ``[R, R, C]`` (NHWC, nominal [-1, 1]) of **one**
  image's variables (no batch axis), so the objective can be vmapped and images
  never couple.

Spaces (``kind``):

``"z"``  ``{"z": [z_dim]}``: mapping → truncation (ψ, layers) → synthesis.
``"w"``  ``{"w": [w_dim]}``: one w repeated to all rows → truncation → synthesis.
``"wp"`` ``{"wp": [L, w_dim]}``: w+ (Image2StyleGAN), straight into the synthesis
         (no truncation, as the official wrappers do for w+ input).
``"multi"`` multi-code at layer ℓ (mGANprior's composition on a style generator)::

    {"codes": [N, w_dim] or [N, L, w_dim], "alpha": [N, C_ℓ], "wp": [L, w_dim]}

    F_j   = synthesis layers [0, ℓ) driven by code j (w repeated, or its own w+)
    x_ℓ   = Σ_j α_j ⊙ F_j / N          (α_j per channel, broadcast over H, W)
    image = synthesis layers [ℓ, end) from x_ℓ, driven by the learned w+ ``wp``

  For StyleGAN2 the state at ℓ also carries the running skip image; it is
  composed as the plain mean over codes (it enters the rest of the network
  additively, so a per-channel weight would only rescale RGB).
  ``alpha`` starts at **1**, not mGANprior's 1/N: PGGAN renormalises the
  fused map (PixelNorm), a style generator does not, and α = 1 makes N equal
  codes render exactly the single-code image.
  ``suffix="mean"`` drives layers ``[ℓ, end)`` with the mean of the codes instead
  of a learned w+ (fewer variables).

  Variants compared (rosinality 32 px fixture model, 2 targets rendered from
  held-out w+, MSE, Adam lr 0.05, 300 steps, N = 4; final MSE per target;
  ``tests/golden/test_stylegan2_rosinality_multicode.py -m slow``):
  single w+ [0.0282, 0.00377]; at ℓ = 4 (8×8): codes in w [0.0276, 0.00543],
  codes in w+ [0.0221, 0.00425], w+ codes with mean suffix [0.0248, 0.00533]
  (init spread 0.5); w+ codes, spread 0.1 [0.0235, 0.00340]; at ℓ = 7
  (16×16, spread 0.5): w [0.0280, 0.0120], w+ [0.0170, 0.00461], mean suffix
  [0.0193, 0.00514]; w+ codes, spread 0.1 [0.0179, 0.00301]. Best: **w+ codes
  with a learned w+ suffix**, started close together (spread 0.1: lower than
  single w+ on every target, at both layers); w codes are too
  constrained below ℓ, and the mean suffix loses the suffix's freedom.

All spaces start from the generator's average w (``w_avg``) except z (N(0, I))
and the multi-code codes, which start at ``w_avg + init_spread·(mapping(z_j) - w_avg)``
with independent z_j, so the N codes differ (equal codes get equal gradients
and never separate) while starting near the single-code init (spread 0.1
converged best of 0.1 / 0.25 / 0.5).

References:
  Abdal, Qin, Wonka, Image2StyleGAN, https://arxiv.org/abs/1904.03189
  Gu, Shen, Zhou, Image Processing Using Multi-Code GAN Prior, https://arxiv.org/abs/1912.07116
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["StyleSpace", "init", "init_from_codes", "render", "render_batch", "mix_styles", "compose",
           "invert", "make_loss_fn", "StyleInversion", "Method",
           "SPACE_KINDS"]

SPACE_KINDS = ("z", "w", "wp", "multi")


@dataclasses.dataclass(frozen=True)
class StyleSpace:
  """Static description of an inversion space on a style generator."""
  kind: str = "wp"                  # "z" | "w" | "wp" | "multi"
  truncation_psi: float = 1.0       # z / w spaces: ψ (1 = none)
  truncation_layers: int | None = None   # rows truncated (None: all)
  noise: Any = "const"              # "const" (stored buffers) | "zero"
  layer: int = 0                    # multi: composing layer ℓ (a synthesis unit index)
  num_codes: int = 1                # multi: N
  code_space: str = "w"             # multi: each code is a "w" (repeated) or a "wp"
  suffix: str = "learned"           # multi: layers [ℓ, end) from a "learned" w+ or the codes' "mean"
  init_spread: float = 0.1          # multi: code init = w_avg + spread·(mapping(z_j) - w_avg)

  def __post_init__(self):
    if self.kind not in SPACE_KINDS:
      raise ValueError(f"space must be one of {', '.join(SPACE_KINDS)}, got {self.kind!r}")
    if self.noise not in ("const", "zero"):
      raise ValueError(f"inversion noise must be 'const' or 'zero', got {self.noise!r}")
    if self.kind == "multi":
      if self.code_space not in ("w", "wp") or self.suffix not in ("learned", "mean"):
        raise ValueError(f"multi-code: code_space w|wp and suffix learned|mean, got "
                         f"{self.code_space!r}, {self.suffix!r}")
      if self.num_codes < 1:
        raise ValueError(f"multi-code needs num_codes >= 1, got {self.num_codes}")


def _cfg(module):
  return module.config


def mix_styles(w1, w2, inject_index: int, num_ws: int):
  """Style mixing: rows ``< inject_index`` from ``w1 [B, D]``, the rest from ``w2`` → ``[B, L, D]``."""
  rows = jnp.arange(num_ws)[None, :, None] < inject_index
  return jnp.where(rows, w1[:, None], w2[:, None])


def _broadcast_wp(w, num_ws):
  return jnp.broadcast_to(w[:, None], (w.shape[0], num_ws, w.shape[-1])) if w.ndim == 2 else w


def compose(features, alpha):
  """Fuses N codes' states at ℓ (:func:`jaxinv.inversion.spaces.compose`); a StyleGAN2 skip
  image is averaged.

  Args:
    features: ``x [N, H, W, C]`` or ``(x, img | None)``.
    alpha: ``[N, C]``.
  Returns:
    the fused state with a batch axis of 1.
  """
  if isinstance(features, tuple):
    x, img = features
    return compose(x, alpha), (None if img is None else jnp.mean(img, axis=0, keepdims=True))
  from jaxinv.inversion import spaces
  chex.assert_shape(alpha, (features.shape[0], features.shape[-1]))
  return spaces.compose(features, alpha)


def init(space: StyleSpace, module, params, key, batch: int, labels=None):
  """Initial variables for ``batch`` images (leading axis ``batch``).

  ``labels [B, c_dim]`` (conditional generators) ride along as ``variables["c"]``; rendering
  reads them through ``stop_gradient``, so the optimiser never moves them.
  """
  out = _init(space, module, params, key, batch, labels)
  if labels is not None:
    out["c"] = jnp.asarray(labels, jnp.float32)
  return out


def _mapping_args(z, labels):
  return (z,) if labels is None else (z, labels)


def _init(space, module, params, key, batch, labels):
  cfg = _cfg(module)
  w_avg = module.apply({"params": params}, method=module.average_w)
  if space.kind == "z":
    return {"z": jax.random.normal(key, (batch, cfg.z_dim))}
  if space.kind == "w":
    return {"w": jnp.broadcast_to(w_avg, (batch, cfg.w_dim))}
  wp0 = jnp.broadcast_to(w_avg, (batch, cfg.num_ws, cfg.w_dim))
  if space.kind == "wp":
    return {"wp": wp0}
  cfg.check_layer(space.layer, allow_ends=False)
  n = space.num_codes
  z = jax.random.normal(key, (batch * n, cfg.z_dim))
  c = None if labels is None else jnp.repeat(jnp.asarray(labels, jnp.float32), n, axis=0)
  w = module.apply({"params": params}, *_mapping_args(z, c), method=module.mapping)
  if w.ndim == 3:         # repeat_w=False generators map to w+ directly
    w = w[:, 0]
  codes = (w_avg + space.init_spread * (w - w_avg)).reshape(batch, n, cfg.w_dim)
  if space.code_space == "wp":
    codes = jnp.broadcast_to(codes[:, :, None], (batch, n, cfg.num_ws, cfg.w_dim))
  channels = cfg.feature_shapes()[space.layer][-1]
  out = {"codes": codes, "alpha": jnp.ones((batch, n, channels))}
  if space.suffix == "learned":
    out["wp"] = wp0
  return out


def init_from_codes(space: StyleSpace, module, params, key, wp_codes, labels=None):
  """Initial variables seeded from an encoder's w+ codes ``wp_codes [B, L, D]`` (e4e / pSp).

  ``wp``: the codes. ``multi`` (w+ codes only): the suffix w+ is the codes and code j starts at
  ``codes + init_spread·(mapping(z_j) - w_avg)`` (the random init's offsets, around the encoded
  w+ instead of ``w_avg``), so N > 1 codes can separate; a single code starts at the codes, and
  with α = 1 it renders exactly ``G(codes)``. z and w have no encoder init (an encoder gives w+).
  """
  cfg = _cfg(module)
  wp_codes = jnp.asarray(wp_codes, jnp.float32)
  if space.kind == "wp":
    out = {"wp": wp_codes}
  elif space.kind == "multi" and space.code_space == "wp":
    batch, n = wp_codes.shape[0], space.num_codes
    codes = jnp.broadcast_to(wp_codes[:, None], (batch, n) + wp_codes.shape[1:])
    if n > 1:
      rand = _init(space, module, params, key, batch, labels)["codes"]     # w_avg + spread·(w - w_avg)
      w_avg = module.apply({"params": params}, method=module.average_w)
      codes = codes + (rand - w_avg)
    channels = cfg.feature_shapes()[space.layer][-1]
    out = {"codes": codes, "alpha": jnp.ones((batch, n, channels))}
    if space.suffix == "learned":
      out["wp"] = wp_codes
  else:
    what = "multi-code with w codes" if space.kind == "multi" else f"space {space.kind}"
    raise ValueError(f"an encoder's w+ codes seed w+ and multi-code with w+ codes, not {what}")
  if labels is not None:
    out["c"] = jnp.asarray(labels, jnp.float32)
  return out


def _synthesis(module, params, state, wp, start, stop, noise):
  return module.apply({"params": params}, state, wp, start, stop, noise, method=module.synthesis)


def render(space: StyleSpace, module, params, variables):
  """The image ``[R, R, C]`` of one image's ``variables`` (no batch axis)."""
  cfg = _cfg(module)
  apply = lambda *a, **k: module.apply({"params": params}, *a, **k)
  psi, layers = space.truncation_psi, space.truncation_layers
  if layers is None:
    layers = cfg.num_ws
  if space.kind == "z":
    c = None if "c" not in variables else jax.lax.stop_gradient(variables["c"])[None]
    w = apply(*_mapping_args(variables["z"][None], c), method=module.mapping)
    wp = apply(w, psi, layers, method=module.truncate)
  elif space.kind == "w":
    wp = apply(variables["w"][None], psi, layers, method=module.truncate)
  elif space.kind == "wp":
    wp = variables["wp"][None]
  else:
    return _render_multi(space, module, params, variables)[0]
  return _synthesis(module, params, None, wp, 0, None, space.noise)[0]


def _render_multi(space, module, params, variables):
  cfg = _cfg(module)
  codes = _broadcast_wp(variables["codes"], cfg.num_ws)          # [N, L, D]
  feats = _synthesis(module, params, None, codes, 0, space.layer, space.noise)
  fused = compose(feats, variables["alpha"])
  if space.suffix == "learned":
    wp = variables["wp"][None]
  else:
    wp = jnp.mean(codes, axis=0, keepdims=True)
  return _synthesis(module, params, fused, wp, space.layer, None, space.noise)


def render_batch(space: StyleSpace, module, params, variables):
  """:func:`render` vmapped over the leading batch axis → ``[B, R, R, C]``."""
  return jax.vmap(lambda v: render(space, module, params, v))(variables)


@dataclasses.dataclass
class StyleInversion:
  variables: dict            # final variables, leaves [B, ...]
  images: Any                # [B, R, R, C] renderings of the final variables
  loss: Any                  # [S, B], before each step's update
  parts: dict                # {term: [S, B]}


def make_loss_fn(space: StyleSpace, module, objective, degrade=None):
  """Per-image ``loss_fn(variables, data, shared)``: ``objective(degrade(render(v)), observation)``.

  ``shared = {"generator": params, "vgg": params | None}``, ``data = {"observation": …}``.
  """
  def loss_fn(variables, data, shared):
    image = render(space, module, shared["generator"], variables)
    if degrade is not None:
      image = degrade(image)
    return objective(image, data["observation"], shared.get("vgg"))
  return loss_fn


def invert(module, params, observations, space: StyleSpace, objective, optimizer, steps: int, *,
           vgg_params=None, key=None, keys=None, init_variables=None, degrade=None, progress=True,
           chunk=None, labels=None) -> StyleInversion:
  """Inverts observations ``[B, H, W, C]`` in ``space`` with the shared loop (Image2StyleGAN-style).

  ``objective(x, y, vgg_params) -> (loss, parts)`` (see
  :func:`jaxinv.inversion.objectives.make_objective`); ``optimizer`` an Optax transformation.
  ``keys [B, 2]``: one key per image (each image's init drawn from its own key); otherwise ``key``
  draws the whole batch's init at once.
  """
  from jaxinv.inversion import optimize as opt_lib
  observations = jnp.asarray(observations, jnp.float32)
  if init_variables is not None:
    v0 = init_variables
  elif keys is not None:
    if labels is None:
      v0 = jax.vmap(lambda k: jax.tree_util.tree_map(
          lambda x: x[0], init(space, module, params, k, 1)))(jnp.asarray(keys))
    else:
      v0 = jax.vmap(lambda k, c: jax.tree_util.tree_map(
          lambda x: x[0], init(space, module, params, k, 1, c[None])))(
              jnp.asarray(keys), jnp.asarray(labels))
  else:
    v0 = init(space, module, params, jax.random.key(0) if key is None else key,
              observations.shape[0], labels)
  loss_fn = _cached_loss_fn(space, module, objective, degrade)
  res = opt_lib.optimize(loss_fn, v0, {"observation": observations}, optimizer, steps,
                         shared={"generator": params, "vgg": vgg_params}, progress=progress,
                         chunk=chunk)
  images = jax.jit(lambda p, v: render_batch(space, module, p, v))(params, res.variables)
  return StyleInversion(res.variables, images, res.loss, dict(res.aux))


_LOSS_FNS: dict = {}


def _cached_loss_fn(space, module, objective, degrade):
  k = (space, module, objective, degrade)
  if k not in _LOSS_FNS:
    _LOSS_FNS[k] = make_loss_fn(space, module, objective, degrade)
  return _LOSS_FNS[k]


@functools.lru_cache(maxsize=16)
def _objective(loss_cfg):
  from jaxinv.inversion import objectives
  return objectives.make_objective(loss_cfg)


@functools.lru_cache(maxsize=16)
def _optimizer(name, lr):
  from jaxinv.inversion import optimize as opt_lib
  return opt_lib.make_optimizer(name, lr)


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """Inversion in a StyleGAN space (z / w / w+ / multi-code) as a driver method.

  Per-image data: ``observation``; for conditional generators ``c [c_dim]``; optionally
  ``code_wp [L, D]``, an encoder's w+ codes to start from (:func:`init_from_codes`). Otherwise
  each image's initial variables come from its own key. ``degrade`` is the task operator (identity when None).
  Outputs: the final variables (named by space), ``loss [S, B]`` and the rendering.
  """
  module: Any
  params: Any
  space: StyleSpace
  loss: Any                   # objectives.LossConfig
  optimizer: str
  lr: float
  steps: int
  vgg_params: Any = None
  degrade: Any = None
  name = "style"

  def settings(self) -> dict:
    return {"space": dataclasses.asdict(self.space), "loss": dataclasses.asdict(self.loss),
            "optimizer": self.optimizer, "lr": self.lr, "steps": self.steps}

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run
    keys = jnp.asarray(keys)
    first = lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree)
    labels = () if "c" not in data else (jnp.asarray(data["c"], jnp.float32),)
    if "code_wp" in data:   # an encoder's w+ codes
      v0 = jax.vmap(lambda k, w, *c: first(init_from_codes(
          self.space, self.module, self.params, k, w[None], *(x[None] for x in c))))(
              keys, jnp.asarray(data["code_wp"], jnp.float32), *labels)
    else:
      v0 = jax.vmap(lambda k, *c: first(init(
          self.space, self.module, self.params, k, 1, *(x[None] for x in c))))(keys, *labels)
    loss_fn = _cached_loss_fn(self.space, self.module, _objective(self.loss), self.degrade)
    res = run.optimize_batch(ctx, loss_fn, v0, {"observation": jnp.asarray(data["observation"])},
                             _optimizer(self.optimizer, self.lr), self.steps,
                             shared={"generator": self.params, "vgg": self.vgg_params})
    images = _render_batch_fn(self.space, self.module)(self.params, res.variables)
    return run.BatchOutput(dict(res.variables), {"loss": res.loss}, {"": np.asarray(images)})


@functools.lru_cache(maxsize=16)
def _render_batch_fn(space, module):
  return jax.jit(lambda p, v: render_batch(space, module, p, v))
