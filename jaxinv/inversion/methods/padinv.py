"""PadInv inversion: encoder (batched), then optional refinement in the padding space.

The padding space (Bai et al., ECCV 2022) is w+ plus per-image maps that replace the
generator's 4x4 constant and the zero borders of its early non-upsampling convs (see
:mod:`jaxinv.models.padinv`). The official code is encoder-only:
``wp, maps = E(x)``; ``x_rec = G.synthesis(wp, maps)``.

**Our extension** (the official repository has no per-image optimisation): ``steps > 0``
refines the variables ``{"wp": [n, w_dim], "maps": {slot: [S, S, C]}}`` of each image
with Adam through the shared loop :func:`jaxinv.inversion.optimize.optimize`, on the
PadInv loss ``mse_weight * MSE + lpips_weight * LPIPS + wnorm_weight * ||wp - w_avg||_F``
(each term per image; images never interact). ``space="wp"`` optimises w+ alone (maps
fixed at their start) — the baseline the padding space is compared with. Without an
encoder, the start is the average w in every row with the generator's own constant and
zero borders (:func:`jaxinv.models.padinv.identity_maps`), i.e. exactly the plain generator.

Layouts: images NHWC in [-1, 1]; maps NHWC raw ``[B, S, S, C]`` (only the centre crop /
ring each slot uses gets a gradient; the rest stays as it started).

Loss pieces as the official ``GANInversionLoss`` defines them (each returned per image;
the official batch value is their mean): :func:`mse` (mean over pixels and channels),
LPIPS (AlexNet, via the ``lpips`` callable), :func:`wnorm` (Frobenius norm over all
encoder rows, not squared), :func:`adv` (``softplus(-D(fake))``), combined by
:func:`encoder_total`. Evaluation as PadInv does it: :func:`evaluate_protocol`.

References:
  Bai et al., High-fidelity GAN Inversion with Padding Space, https://arxiv.org/abs/2203.11105
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv.models import padinv as padinv_model
from jaxinv.ops import resize as ops_resize
from jaxinv.ops.r1 import squared_grad_norms

__all__ = ["PadInvSettings", "PadInvResult", "CHURCH_WEIGHTS", "DEFAULT_WEIGHTS", "mse", "wnorm",
           "adv", "d_loss_pieces", "encoder_total", "encode", "initial_variables", "make_loss",
           "refine", "invert", "render", "edit_keep_maps", "swap_maps", "resize_nearest", "evaluate_protocol",
           "Method"]

# Loss weights of the released church/bedroom scripts, and the config defaults (idsim aside).
CHURCH_WEIGHTS = {"mse": 1.0, "lpips": 0.8, "idsim": 0.0, "wnorm": 0.003, "adv": 0.03}
DEFAULT_WEIGHTS = {"mse": 1.0, "lpips": 0.8, "idsim": 0.1, "wnorm": 0.0, "adv": 0.1}


@dataclasses.dataclass(frozen=True)
class PadInvSettings:
  """Refinement settings (our extension; PadInv itself stops after the encoder)."""
  steps: int = 0                   # Adam steps after the encoder (0: encoder only)
  space: str = "padding"           # "padding": w+ and maps jointly; "wp": w+ only
  lr: float = 0.01
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  mse_weight: float = 1.0
  lpips_weight: float = 0.8
  wnorm_weight: float = 0.0        # ||wp - w_avg||_F (the scripts use 0.003 while training)
  loss_resolution: int = 256       # renders above this are average-pooled to it (as in training)

  def __post_init__(self):
    if self.space not in ("padding", "wp"):
      raise ValueError(f"space must be 'padding' or 'wp', got {self.space!r}")


@dataclasses.dataclass
class PadInvResult:
  """Per-image results: ``wp [B, n, w]``, ``maps {slot: [B, S, S, C]}``, ``images [B, R, R, 3]``."""
  wp: jax.Array
  maps: dict
  images: jax.Array
  loss: Optional[jax.Array] = None        # [S, B] before each update (steps > 0)
  aux: Optional[dict] = None              # {"mse", "lpips", "wnorm"}: [S, B]
  start: Optional[dict] = None            # the start variables (encoder output or average)


# ----------------------------------------------------------------------------- loss pieces

def mse(x, y):
  """Per-image mean squared error over ``[..., H, W, C]`` → ``[...]``."""
  return jnp.mean(jnp.square(x - y), axis=(-3, -2, -1))


def wnorm(wp, w_avg):
  """``||wp - w_avg||_F`` over (rows, dims): ``wp [..., n, w]`` → ``[...]`` (not squared)."""
  return jnp.sqrt(jnp.sum(jnp.square(wp - w_avg), axis=(-2, -1)))


def adv(fake_logits):
  """Non-saturating generator loss ``softplus(-D(fake))`` per image (logits ``[B]`` or ``[B, 1]``)."""
  return jax.nn.softplus(-jnp.reshape(fake_logits, (fake_logits.shape[0], -1))[:, 0])


def d_loss_pieces(d_fn, real, fake, r1_gamma: float = 10.0):
  """PadInv's ``D_loss`` pieces for ``d_fn(images [B, R, R, 3]) -> logits [B, 1]``.

  Returns batch means: ``softplus_fake_mean`` (mean softplus(D(fake))), ``softplus_neg_real_mean``
  (mean softplus(-D(real))), ``fake_plus_real``, ``r1_penalty_raw`` (mean over images of
  ``sum((d sum D(real) / d real)^2)``), ``r1_term`` (``r1_gamma / 2`` x raw, applied at every D
  step as in PadInv) and ``total``. The minibatch-stddev layer couples the images of a batch.
  """
  sf = jnp.mean(jax.nn.softplus(d_fn(fake)))
  sr = jnp.mean(jax.nn.softplus(-d_fn(real)))
  raw = jnp.mean(squared_grad_norms(d_fn, real))
  out = {"softplus_fake_mean": sf, "softplus_neg_real_mean": sr, "fake_plus_real": sf + sr,
         "r1_penalty_raw": raw, "r1_term": 0.5 * r1_gamma * raw}
  out["total"] = out["fake_plus_real"] + out["r1_term"]
  return out


def encoder_total(pieces: Mapping[str, jax.Array], weights: Mapping[str, float]):
  """``sum_k weights[k] * pieces[k]`` over the pieces present (PadInv's ``E_loss`` total)."""
  total = 0.0
  for k, w in weights.items():
    if w and k in pieces:
      total = total + w * pieces[k]
  return total


def _pool_to(img, res):
  """``AdaptiveAvgPool2d(res)`` for an integer factor (the training loss of 1024 px generators)."""
  h = img.shape[-3]
  if h <= res:
    return img
  if h % res:
    raise ValueError(f"render size {h} is not a multiple of the loss resolution {res}")
  f = h // res
  shp = img.shape[:-3] + (res, f, res, f, img.shape[-1])
  return jnp.mean(img.reshape(shp), axis=(-4, -2))


# ----------------------------------------------------------------------------- space

def render(gen_module, gen_params, wp, maps):
  """``G.synthesis(wp [B, n, w], maps {slot: [B, S, S, C]})`` → ``[B, R, R, 3]``."""
  return gen_module.apply({"params": gen_params}, wp, maps, method="synthesis")


def encode(enc_module, enc_params, images, batch_size: int = 16):
  """The PadInv encoder on ``images [B, R, R, 3]`` in chunks → ``(wp, maps)``."""
  fn = _jit_encode(enc_module)
  outs = []
  for i in range(0, images.shape[0], batch_size):
    outs.append(fn(enc_params, jnp.asarray(images[i:i + batch_size])))
  wp = jnp.concatenate([o["wp"] for o in outs])
  maps = {s: jnp.concatenate([o["maps"][s] for o in outs]) for s in outs[0]["maps"]}
  return wp, maps


_ENC_CACHE: dict = {}


def _jit_encode(enc_module):
  if enc_module not in _ENC_CACHE:
    _ENC_CACHE[enc_module] = jax.jit(lambda p, x: enc_module.apply({"params": p}, x))
  return _ENC_CACHE[enc_module]


def initial_variables(gen_config, gen_params, batch: int, slots=(0, 1, 3, 5, 7),
                      map_size: int = 34, num_rows: Optional[int] = None):
  """The encoder-free start: every w+ row = ``w_avg``; maps = the generator's own constant/zeros."""
  n = num_rows or gen_config.num_ws
  w_avg = jnp.asarray(gen_params["w_avg"])
  wp = jnp.broadcast_to(w_avg, (batch, n, w_avg.shape[0]))
  maps = padinv_model.identity_maps(gen_params, gen_config, tuple(slots), map_size, batch)
  return {"wp": jnp.asarray(wp), "maps": maps}


@functools.lru_cache(maxsize=32)
def make_loss(gen_module, settings: PadInvSettings, lpips: Optional[Callable] = None):
  """The per-image loss ``loss_fn(variables_i, target_i, shared) -> (loss, aux)``.

  ``variables_i = {"wp": [n, w], "maps": {slot: [S, S, C]}}``, ``target_i [R, R, 3]``,
  ``shared = {"gen": generator params, "lpips": LPIPS params or None}``. ``lpips(params,
  x [1, H, W, 3], y [1, H, W, 3]) -> [1]`` is called as ``lpips(target, render)``.
  """
  if settings.lpips_weight and lpips is None:
    raise ValueError("lpips_weight > 0 needs an LPIPS function (jaxinv.models.lpips)")

  def loss_fn(v, target, shared):
    maps = {s: m[None] for s, m in v["maps"].items()}
    img = render(gen_module, shared["gen"], v["wp"][None], maps)
    img = _pool_to(img, settings.loss_resolution)
    x = _pool_to(target[None], settings.loss_resolution)
    aux = {"mse": mse(img, x)[0]}
    if lpips is not None and settings.lpips_weight:
      aux["lpips"] = jnp.reshape(lpips(shared["lpips"], x, img), ())
    aux["wnorm"] = wnorm(v["wp"], shared["gen"]["w_avg"])
    total = encoder_total(aux, {"mse": settings.mse_weight, "lpips": settings.lpips_weight,
                                "wnorm": settings.wnorm_weight})
    return total, aux

  return loss_fn


@functools.lru_cache(maxsize=32)
def _optimizer(settings: PadInvSettings, map_slots: tuple):
  # One Optax object per (settings, maps): the shared loop keys its compiled chunks on it.
  adam = optax.adam(settings.lr, b1=settings.b1, b2=settings.b2, eps=settings.eps)
  if settings.space == "padding":
    return adam
  labels = {"wp": "train", "maps": {slot: "frozen" for slot in map_slots}}
  return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def refine(gen_module, gen_params, start, targets, settings: PadInvSettings, lpips=None,
           lpips_params=None, **optimize_kwargs):
  """Adam refinement of ``start = {"wp": [B, n, w], "maps": {slot: [B, S, S, C]}}``.

  Returns the shared loop's ``OptimizeResult`` (``variables`` after ``settings.steps``
  updates, ``loss [S, B]`` before each update, ``aux`` of :func:`make_loss`).
  """
  from jaxinv.inversion.optimize import optimize
  chex.assert_rank(targets, 4)
  loss_fn = make_loss(gen_module, settings, lpips)
  start = {"wp": jnp.asarray(start["wp"]), "maps": {s: jnp.asarray(m) for s, m in
                                                    start["maps"].items()}}
  opt = _optimizer(settings, tuple(start["maps"]))
  return optimize(loss_fn, start, jnp.asarray(targets), opt, settings.steps,
                  shared={"gen": gen_params, "lpips": lpips_params}, **optimize_kwargs)


def invert(generator, images, settings: PadInvSettings = PadInvSettings(), encoder=None,
           lpips=None, lpips_params=None, slots=None, map_size=None, **optimize_kwargs
           ) -> PadInvResult:
  """PadInv inversion of ``images [B, R, R, 3]`` in [-1, 1].

  Args:
    generator: a loaded ``padinv-stylegan2`` model (``jaxinv.models.registry.Model``).
    encoder: a loaded ``padinv-encoder`` model, or None (start from the average; then
      ``settings.steps`` should be > 0 and ``slots``/``map_size`` say which maps to create,
      default the encoder defaults ``(0, 1, 3, 5, 7)`` / 34).
    lpips, lpips_params: the LPIPS function and params (needed when lpips_weight > 0 and
      steps > 0).
  """
  images = jnp.asarray(images, jnp.float32)
  gcfg = generator.config
  if encoder is not None:
    ecfg = encoder.config
    if images.shape[1] != ecfg.resolution:
      raise ValueError(f"the encoder takes {ecfg.resolution}px images, got {images.shape[1]}px "
                       "(resize first)")
    wp, maps = encode(encoder.module, encoder.params, images)
  else:
    slots = tuple(slots) if slots is not None else (0, 1, 3, 5, 7)
    slots = tuple(s for s in slots if s in gcfg.slot_shapes())
    map_size = map_size or 34
    start = initial_variables(gcfg, generator.params, images.shape[0], slots, map_size)
    wp, maps = start["wp"], start["maps"]
  start = {"wp": wp, "maps": maps}
  result = PadInvResult(wp=wp, maps=maps, images=None, start=start)
  if settings.steps > 0:
    if images.shape[1] != gcfg.resolution:
      targets = jax.image.resize(images, (images.shape[0], gcfg.resolution, gcfg.resolution, 3),
                                 "linear", antialias=True)
    else:
      targets = images
    out = refine(generator.module, generator.params, start, targets, settings, lpips,
                 lpips_params, **optimize_kwargs)
    result.wp, result.maps = out.variables["wp"], out.variables["maps"]
    result.loss, result.aux = out.loss, out.aux
  result.images = _jit_render(generator.module)(generator.params, result.wp, result.maps)
  return result


_RENDER_CACHE: dict = {}


def _jit_render(gen_module):
  if gen_module not in _RENDER_CACHE:
    _RENDER_CACHE[gen_module] = jax.jit(lambda p, wp, maps: render(gen_module, p, wp, maps))
  return _RENDER_CACHE[gen_module]


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """PadInv as a driver method (:func:`jaxinv.inversion.run.run`): the encoder (or the average
  start), then ``settings.steps`` of refinement, each image independent and deterministic (the
  keys are not used).

  ``generator`` / ``encoder`` are loaded models (``padinv-stylegan2`` / ``padinv-encoder`` or
  None); ``lpips(params, x, y)`` the LPIPS distance (needed when steps and lpips_weight > 0).
  Per-image data: ``x [R, R, 3]`` in [-1, 1] at the encoder's resolution (the generator's
  without an encoder). Outputs: ``wp``, ``map_slot{s}``, per-step ``loss`` and its terms
  (``loss_mse``, ``loss_lpips``, ``loss_wnorm``), the rendering.
  """
  generator: Any
  cfg: PadInvSettings = PadInvSettings()
  encoder: Any = None
  lpips: Optional[Callable] = None
  lpips_params: Any = None
  slots: tuple = (0, 1, 3, 5, 7)      # without an encoder: the maps to create, and their size
  map_size: int = 34
  name = "padinv"

  def settings(self) -> dict:
    out = {"padinv": dataclasses.asdict(self.cfg), "encoder": self.encoder is not None}
    if self.encoder is None:
      out.update(slots=list(self._slots()), map_size=self.map_size)
    return out

  def _slots(self):
    return tuple(s for s in self.slots if s in self.generator.config.slot_shapes())

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run
    gen, cfg = self.generator, self.cfg
    images = jnp.asarray(data["x"], jnp.float32)
    b = images.shape[0]
    if self.encoder is not None:
      wp, maps = encode(self.encoder.module, self.encoder.params, images, batch_size=b)
      start = {"wp": wp, "maps": maps}
    else:
      start = initial_variables(gen.config, gen.params, b, self._slots(), self.map_size)
    stepwise = {"loss": np.zeros((0, b), np.float32)}
    variables = start
    if cfg.steps > 0:
      res_g = gen.config.resolution
      targets = images if images.shape[1] == res_g else jax.image.resize(
          images, (b, res_g, res_g, 3), "linear", antialias=True)
      res = run.optimize_batch(ctx, make_loss(gen.module, cfg, self.lpips), start, targets,
                               _optimizer(cfg, tuple(start["maps"])), cfg.steps,
                               shared={"gen": gen.params, "lpips": self.lpips_params})
      variables = res.variables
      stepwise = {"loss": res.loss, **{f"loss_{k}": np.asarray(v) for k, v in res.aux.items()}}
    wp = np.asarray(variables["wp"])
    maps = {s: np.asarray(m) for s, m in variables["maps"].items()}
    rendered = _jit_render(gen.module)(gen.params, jnp.asarray(wp),
                                       {s: jnp.asarray(m) for s, m in maps.items()})
    arrays = {"wp": wp, **{f"map_slot{s}": m for s, m in maps.items()}}
    return run.BatchOutput(arrays, stepwise, {"": np.asarray(rendered)})


# ----------------------------------------------------------------------------- editing

def edit_keep_maps(wp, maps, boundary, alpha, rows=None):
  """A w+ boundary edit that keeps each image's padding maps (PadInv's fidelity-preserving edit).

  Args:
    wp: ``[B, n, w]``; maps: ``{slot: [B, S, S, C]}`` (returned unchanged).
    boundary: ``[w]`` or ``[n, w]`` direction; alpha: scalar or ``[B]``.
    rows: w+ rows to edit (default all).
  Returns:
    ``(wp', maps)``.
  """
  wp = jnp.asarray(wp)
  b = jnp.asarray(boundary, wp.dtype)
  b = jnp.broadcast_to(b, wp.shape[1:]) if b.ndim == 1 else b
  mask = np.zeros((wp.shape[1], 1), np.float32)
  mask[list(range(wp.shape[1])) if rows is None else list(rows)] = 1.0
  a = jnp.reshape(jnp.asarray(alpha, wp.dtype), (-1, 1, 1))
  return wp + a * b[None] * mask[None], maps


def swap_maps(wp_style, maps_spatial):
  """The paper's swap: w+ (style) of one image with the padding maps (spatial layout) of another.

  ``wp_style [B, n, w]`` and ``maps_spatial {slot: [B, S, S, C]}`` are paired row by row.
  """
  for s, m in maps_spatial.items():
    if m.shape[0] != wp_style.shape[0]:
      raise ValueError(f"slot {s}: {m.shape[0]} maps for {wp_style.shape[0]} codes")
  return wp_style, maps_spatial


# ----------------------------------------------------------------------------- evaluation

def resize_nearest(img, size):
  """``F.interpolate(mode="nearest")`` of NHWC ``img`` to ``size`` (PyTorch's legacy rule)."""
  return ops_resize.resize_nearest(img, size)


def evaluate_protocol(recon, source, lpips=None, lpips_params=None):
  """PadInv's metric protocol: nearest resize of ``recon`` to the source size, then per image
  MSE on [-1, 1] and (when given) AlexNet LPIPS. ``recon``/``source`` NHWC → ``{"mse", "lpips"}``.
  """
  r = resize_nearest(jnp.asarray(recon), source.shape[1:3])
  out = {"mse": mse(r, jnp.asarray(source))}
  if lpips is not None:
    out["lpips"] = jnp.reshape(lpips(lpips_params, jnp.asarray(source), r), (-1,))
  return out
