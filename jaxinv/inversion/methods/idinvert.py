"""In-domain GAN inversion (IDInvert) and semantic diffusion through the shared loop.

Space: one w+ code ``wp [L, w_dim]`` per image, initialised by the domain-guided
encoder, ``wp0 = E(x)``. Objective, per image, with ``x_rec = G.synthesis(wp)``::

  loss = w_pix · mean((x − x_rec)²)
       + w_feat · mean((F(x) − F(x_rec))²)          F: Keras VGG16 up to relu4_3
       + w_reg · mean((wp − E(x_rec))²)             the in-domain regulariser

(``w_reg = 0`` drops the term and the encoder pass: plain w+ optimisation from the
encoder's code; ``w_feat = 0`` or no perceptual network drops the VGG term). On a PGGAN
(inversion space z) the code is ``z [1, z_dim]`` (an encoder with ``num_layers = 1``)
and the same loss applies with ``G(z)`` for the synthesis. ``invert(..., init=codes)``
starts from given codes instead of ``E(x)`` (e.g. random ones: optimisation only, same loop). Optimiser: Adam with torch's defaults (β 0.9/0.999, eps 1e-8 after the
square root, bias correction), lr 0.01, no schedule; noise fixed (stored buffers).
Everything is evaluated before each step's update, as the official loop logs it.

Semantic diffusion: the target's centre crop is pasted into each context image,
``x = target·mask + context·(1 − mask)``, ``wp0 = E(x)``, and the loss is restricted to
the mask (``mean(((x − x_rec)·mask)²)`` and ``mean((F(x·mask) − F(x_rec·mask))²)``), with
no regulariser. All contexts run as one batch; each image is independent.

Images are NHWC in [-1, 1] at the generator's resolution.

References:
  Zhu, Shen, Zhao, Zhou, In-Domain GAN Inversion for Real Image Editing, ECCV 2020,
  https://arxiv.org/abs/2004.00049
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import optax

__all__ = ["IDInvertSettings", "DiffuseSettings", "IDInvertModels", "models_from",
           "indomain_loss", "diffusion_loss", "diffusion_mask", "encode", "render", "invert",
           "diffuse", "adam_torch", "METHOD", "Method", "DiffuseMethod"]

METHOD = "idinvert"


@dataclasses.dataclass(frozen=True)
class IDInvertSettings:
  """``invert.py`` defaults of the official release."""
  steps: int = 100              # Adam iterations
  learning_rate: float = 0.01
  pix_weight: float = 1.0       # loss_weight_pixel (implicit 1 in the release)
  feat_weight: float = 5e-5     # --loss_weight_feat
  reg_weight: float = 2.0       # --loss_weight_enc; 0 = plain w+ optimisation


@dataclasses.dataclass(frozen=True)
class DiffuseSettings:
  """``diffuse.py`` defaults (256 px crop box)."""
  steps: int = 100
  learning_rate: float = 0.01
  pix_weight: float = 1.0
  feat_weight: float = 5e-5
  center_x: int = 125
  center_y: int = 145
  crop_x: int = 110
  crop_y: int = 110

  def box_at(self, resolution: int) -> tuple[int, int, int, int]:
    """``(center_x, center_y, crop_x, crop_y)`` scaled from the 256 px box to ``resolution``."""
    scale = resolution / 256.0
    return tuple(round(v * scale) for v in (self.center_x, self.center_y, self.crop_x, self.crop_y))


@dataclasses.dataclass(frozen=True)
class IDInvertModels:
  """The three frozen networks as pure functions of (params, batch) plus their params."""
  synthesis: Callable[[Any, jax.Array], jax.Array]   # (g_params, wp [B, L, D]) → [B, R, R, 3]
  encoder: Callable[[Any, jax.Array], jax.Array]     # (e_params, x [B, R, R, 3]) → [B, L, D]
  features: Callable | None  # (f_params, x [B, R, R, 3]) → [B, h, w, c]; None: no VGG term
  params: dict                                       # {"G": ..., "E": ..., "F": ...}
  resolution: int
  code_shape: tuple[int, int]                        # (L, w_dim)


def models_from(generator, encoder, perceptual=None) -> IDInvertModels:
  """Bundles loaded models (:class:`jaxinv.models.registry.Model`) for this method.

  ``generator`` is a StyleGAN whose ``synthesis(x, wp)`` renders w+, or a PGGAN (codes
  ``z [1, z_dim]``); ``encoder`` an ``idinvert-encoder``; ``perceptual`` a ``keras-vgg16``
  or None (then ``feat_weight`` must be 0). Shapes are checked against each other.
  """
  g_mod, e_mod = generator.module, encoder.module
  ecfg = encoder.config
  gcfg = generator.config
  if getattr(generator, "family", None) == "pggan":
    if (1, gcfg.z_dim) != tuple(ecfg.code_shape):
      raise ValueError(f"encoder codes are [{ecfg.num_layers}, {ecfg.w_dim}] but the PGGAN "
                       f"takes z [1, {gcfg.z_dim}]")

    def synthesis(gp, wp):
      return g_mod.apply({"params": gp}, wp[:, 0])
  else:
    L = getattr(gcfg, "num_ws", None)
    if L is not None and (L, gcfg.w_dim) != tuple(ecfg.code_shape):
      raise ValueError(f"encoder codes are [{ecfg.num_layers}, {ecfg.w_dim}] but the generator "
                       f"takes w+ [{L}, {gcfg.w_dim}]")

    def synthesis(gp, wp):
      return g_mod.apply({"params": gp}, None, wp, method="synthesis")
  if gcfg.resolution != ecfg.resolution:
    raise ValueError(f"encoder is for {ecfg.resolution} px, generator renders "
                     f"{gcfg.resolution} px")

  def enc(ep, x):
    return e_mod.apply({"params": ep}, x)

  feats = None
  if perceptual is not None:
    def feats(fp, x):
      return perceptual.module.apply({"params": fp}, x)

  return IDInvertModels(synthesis, enc, feats,
                        {"G": generator.params, "E": encoder.params,
                         "F": None if perceptual is None else perceptual.params},
                        ecfg.resolution, tuple(ecfg.code_shape))


@functools.lru_cache(maxsize=32)
def adam_torch(learning_rate: float) -> optax.GradientTransformation:
  """``torch.optim.Adam(lr)`` with its defaults (optax's adam computes the same update)."""
  return optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)


def _mse(a, b):
  return jnp.mean(jnp.square(a - b))


def _uses_features(models: IDInvertModels, feat_weight: float) -> bool:
  if float(feat_weight) == 0.0:
    return False
  if models.features is None:
    raise ValueError("feat_weight is not 0 but no perceptual network was given")
  return True


def indomain_loss(models: IDInvertModels, pix_weight: float, feat_weight: float,
                  reg_weight: float):
  """Per-image ``loss_fn(variables_i, data_i, shared) -> (loss, aux)`` for :func:`optimize`.

  ``variables_i = {"wp": [L, D]}``, ``data_i = {"x": [R, R, 3], "feat": F(x) [h, w, c]}``
  (no ``feat`` when ``feat_weight == 0``), ``shared = models.params``. ``aux`` holds
  ``loss_pix``, ``loss_feat`` (when ``feat_weight != 0``) and ``loss_reg`` (when
  ``reg_weight != 0``).
  """
  _uses_features(models, feat_weight)
  return _indomain_loss(models.synthesis, models.encoder, models.features, tuple(models.code_shape),
                        float(pix_weight), float(feat_weight), float(reg_weight))


@functools.lru_cache(maxsize=32)
def _indomain_loss(synthesis, encoder, features, code_shape, pix_weight, feat_weight, reg_weight):
  # One closure per (networks, weights): the shared loop keys its compiled chunks on it, so every
  # batch of a run reuses the first batch's program.
  use_reg = reg_weight != 0.0
  use_feat = feat_weight != 0.0

  def loss_fn(variables, data, shared):
    wp = variables["wp"]
    chex.assert_shape(wp, code_shape)
    x_rec = synthesis(shared["G"], wp[None])
    loss_pix = _mse(data["x"][None], x_rec)
    loss = pix_weight * loss_pix
    aux = {"loss_pix": loss_pix}
    if use_feat:
      loss_feat = _mse(data["feat"][None], features(shared["F"], x_rec))
      loss = loss + feat_weight * loss_feat
      aux["loss_feat"] = loss_feat
    if use_reg:
      loss_reg = _mse(wp[None], encoder(shared["E"], x_rec))
      loss = loss + reg_weight * loss_reg
      aux["loss_reg"] = loss_reg
    return loss, aux

  return loss_fn


def diffusion_loss(models: IDInvertModels, pix_weight: float, feat_weight: float):
  """Per-image masked loss; ``data_i = {"x", "mask" [R, R, 1], "feat": F(x·mask)}``."""
  return _diffusion_loss(models.synthesis, models.features, float(pix_weight), float(feat_weight))


@functools.lru_cache(maxsize=32)
def _diffusion_loss(synthesis, features, pix_weight, feat_weight):

  def loss_fn(variables, data, shared):
    wp = variables["wp"]
    x_rec = synthesis(shared["G"], wp[None])
    m = data["mask"][None]
    loss_pix = jnp.mean(jnp.square((data["x"][None] - x_rec) * m))
    loss_feat = _mse(data["feat"][None], features(shared["F"], x_rec * m))
    loss = pix_weight * loss_pix + feat_weight * loss_feat
    return loss, {"loss_pix": loss_pix, "loss_feat": loss_feat}

  return loss_fn


def diffusion_mask(resolution: int, center_x: int, center_y: int, crop_x: int,
                   crop_y: int) -> jax.Array:
  """``[R, R, 1]`` float mask: ones on rows ``yy:yy+crop_y``, cols ``xx:xx+crop_x``, with
  ``xx = center_x − crop_x // 2`` and ``yy = center_y − crop_y // 2`` (the official box)."""
  xx = center_x - crop_x // 2
  yy = center_y - crop_y // 2
  if xx < 0 or yy < 0 or xx + crop_x > resolution or yy + crop_y > resolution:
    raise ValueError(f"crop {crop_x}x{crop_y} at centre ({center_x}, {center_y}) leaves the "
                     f"{resolution} px image")
  m = jnp.zeros((resolution, resolution, 1), jnp.float32)
  return m.at[yy:yy + crop_y, xx:xx + crop_x].set(1.0)


@functools.lru_cache(maxsize=64)
def _jitted(fn):
  # One jitted wrapper per network function: every batch of a run reuses its compiled program.
  return jax.jit(fn)


def encode(models: IDInvertModels, images: jax.Array) -> jax.Array:
  """``E(x)``: ``[B, R, R, 3]`` → w+ ``[B, L, D]`` (eval-mode batch norm, per image)."""
  return _jitted(models.encoder)(models.params["E"], images)


def render(models: IDInvertModels, wp: jax.Array) -> jax.Array:
  """``G.synthesis(wp)``: ``[B, L, D]`` → ``[B, R, R, 3]`` in [-1, 1]."""
  return _jitted(models.synthesis)(models.params["G"], wp)


def features(models: IDInvertModels, images: jax.Array) -> jax.Array:
  """``F(x)``: the perceptual network's features of ``[B, R, R, 3]``."""
  return _jitted(models.features)(models.params["F"], images)


@dataclasses.dataclass
class IDInvertResult:
  wp: jax.Array            # [B, L, D] final codes
  init_wp: jax.Array       # [B, L, D] encoder codes
  loss: jax.Array          # [S, B] total loss before each step's update
  aux: dict                # {term: [S, B]}
  history: Any             # per-step variables when recorded, else None
  target: jax.Array        # [B, R, R, 3] what was fitted (the pasted image for diffusion)


def _check_images(models, x, what):
  r = models.resolution
  if x.ndim != 4 or x.shape[1:] != (r, r, 3):
    raise ValueError(f"{what} must be [B, {r}, {r}, 3] NHWC in [-1, 1], got {tuple(x.shape)}")


def invert(models: IDInvertModels, images: jax.Array, settings: IDInvertSettings = IDInvertSettings(),
           *, init: jax.Array | None = None, record_variables: bool = False, progress=None,
           chunk: int | None = None, mesh=None) -> IDInvertResult:
  """In-domain inversion of a batch ``[B, R, R, 3]`` (each image independent).

  ``init [B, L, D]``: start codes (default ``E(x)``; ``init_wp`` of the result is the start).
  ``mesh``: split the batch over its ``data`` axis (see :func:`jaxinv.inversion.optimize.optimize`).

  Returns:
    :class:`IDInvertResult` with ``wp [B, L, D]``, ``loss [S, B]`` and the terms in ``aux``.
  """
  from jaxinv.inversion.optimize import optimize
  images = jnp.asarray(images, jnp.float32)
  _check_images(models, images, "images")
  p = models.params
  if init is None:
    wp0 = encode(models, images)
  else:
    wp0 = jnp.asarray(init, jnp.float32)
    if wp0.shape != (images.shape[0],) + tuple(models.code_shape):
      raise ValueError(f"init has shape {tuple(wp0.shape)}; expected "
                       f"{(images.shape[0],) + tuple(models.code_shape)}")
  data = {"x": images}
  if _uses_features(models, settings.feat_weight):
    data["feat"] = features(models, images)
  loss_fn = indomain_loss(models, settings.pix_weight, settings.feat_weight, settings.reg_weight)
  kw = {} if chunk is None else {"chunk": chunk}
  if progress is not None:
    kw["progress"] = progress
  if mesh is not None:
    kw["mesh"] = mesh
  res = optimize(loss_fn, {"wp": wp0}, data,
                 adam_torch(settings.learning_rate), settings.steps, shared=p,
                 record_variables=record_variables, **kw)
  return IDInvertResult(res.variables["wp"], wp0, res.loss, res.aux, res.history, images)


def diffuse(models: IDInvertModels, target: jax.Array, contexts: jax.Array,
            settings: DiffuseSettings = DiffuseSettings(), *, record_variables: bool = False,
            progress=None, chunk: int | None = None) -> IDInvertResult:
  """Semantic diffusion of ``target [R, R, 3]`` into each of ``contexts [B, R, R, 3]``."""
  from jaxinv.inversion.optimize import optimize
  target = jnp.asarray(target, jnp.float32)
  contexts = jnp.asarray(contexts, jnp.float32)
  _check_images(models, target[None], "target")
  _check_images(models, contexts, "contexts")
  mask = diffusion_mask(models.resolution, settings.center_x, settings.center_y,
                        settings.crop_x, settings.crop_y)
  x = target[None] * mask[None] + contexts * (1.0 - mask[None])
  p = models.params
  wp0 = encode(models, x)
  feat = features(models, x * mask[None])
  masks = jnp.broadcast_to(mask[None], (x.shape[0],) + mask.shape)
  loss_fn = diffusion_loss(models, settings.pix_weight, settings.feat_weight)
  kw = {} if chunk is None else {"chunk": chunk}
  if progress is not None:
    kw["progress"] = progress
  res = optimize(loss_fn, {"wp": wp0}, {"x": x, "mask": masks, "feat": feat},
                 adam_torch(settings.learning_rate), settings.steps, shared=p,
                 record_variables=record_variables, **kw)
  return IDInvertResult(res.variables["wp"], wp0, res.loss, res.aux, res.history, x)


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """In-domain inversion as a driver method (:func:`jaxinv.inversion.run.run`).

  Per-image data: ``x [R, R, 3]`` (the image in [-1, 1]); optionally ``init_wp [L, D]``, codes
  to start from instead of ``E(x)``. Deterministic: the keys are not used. Outputs: ``wp``,
  ``init_wp``, per-step ``loss`` and its terms (``loss_pix``, ``loss_feat``, ``loss_reg``), the
  reconstruction and the encoder-only reconstruction (image suffix ``encoder``).
  """
  models: IDInvertModels
  cfg: IDInvertSettings = IDInvertSettings()
  name = METHOD

  def settings(self) -> dict:
    return {"idinvert": dataclasses.asdict(self.cfg), "code_shape": list(self.models.code_shape),
            "resolution": self.models.resolution}

  def run_batch(self, data, keys, ctx):
    import numpy as np
    from jaxinv.inversion import run
    cfg, models = self.cfg, self.models
    x = jnp.asarray(data["x"], jnp.float32)
    _check_images(models, x, "images")
    wp0 = (jnp.asarray(data["init_wp"], jnp.float32) if "init_wp" in data else encode(models, x))
    per_image = {"x": x}
    if _uses_features(models, cfg.feat_weight):
      per_image["feat"] = features(models, x)
    loss_fn = indomain_loss(models, cfg.pix_weight, cfg.feat_weight, cfg.reg_weight)
    res = run.optimize_batch(ctx, loss_fn, {"wp": wp0}, per_image, adam_torch(cfg.learning_rate),
                             cfg.steps, shared=models.params)
    wp = np.asarray(res.variables["wp"])
    return run.BatchOutput({"wp": wp, "init_wp": np.asarray(wp0)},
                           {"loss": res.loss, **{k: np.asarray(v) for k, v in res.aux.items()}},
                           {"": np.asarray(render(models, wp)),
                            "encoder": np.asarray(render(models, wp0))})


@dataclasses.dataclass(frozen=True, eq=False)
class DiffuseMethod:
  """Semantic diffusion as a driver method: ``target``'s crop diffused into each context image.

  ``target [R, R, 3]`` is the run's (every image gets the same crop); per-image data:
  ``context [R, R, 3]``. Deterministic: the keys are not used. Outputs: ``wp``, ``init_wp``
  (``E`` of the pasted image), per-step ``loss``, ``loss_pix``, ``loss_feat``, the result and the
  pasted image (suffix ``pasted``).
  """
  models: IDInvertModels
  cfg: DiffuseSettings
  target: Any
  name = "idinvert-diffuse"

  def settings(self) -> dict:
    import hashlib
    import numpy as np
    digest = hashlib.sha256(np.ascontiguousarray(self.target, np.float32).tobytes()).hexdigest()
    return {"diffuse": dataclasses.asdict(self.cfg), "target_sha256": digest[:16]}

  def run_batch(self, data, keys, ctx):
    import numpy as np
    from jaxinv.inversion import run
    cfg, models = self.cfg, self.models
    target = jnp.asarray(self.target, jnp.float32)
    contexts = jnp.asarray(data["context"], jnp.float32)
    _check_images(models, target[None], "target")
    _check_images(models, contexts, "contexts")
    mask = diffusion_mask(models.resolution, cfg.center_x, cfg.center_y, cfg.crop_x, cfg.crop_y)
    x = target[None] * mask[None] + contexts * (1.0 - mask[None])
    wp0 = encode(models, x)
    masks = jnp.broadcast_to(mask[None], (x.shape[0],) + mask.shape)
    per_image = {"x": x, "mask": masks, "feat": features(models, x * mask[None])}
    res = run.optimize_batch(ctx, diffusion_loss(models, cfg.pix_weight, cfg.feat_weight),
                             {"wp": wp0}, per_image, adam_torch(cfg.learning_rate), cfg.steps,
                             shared=models.params)
    wp = np.asarray(res.variables["wp"])
    return run.BatchOutput({"wp": wp, "init_wp": np.asarray(wp0)},
                           {"loss": res.loss, **{k: np.asarray(v) for k, v in res.aux.items()}},
                           {"": np.asarray(render(models, wp)), "pasted": np.asarray(x)})
