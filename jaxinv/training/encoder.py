"""Training a domain-guided encoder for a frozen generator (the IDInvert TF recipe, in JAX).

The encoder ``E`` maps images to the generator's inversion space — w+ ``[L, w_dim]`` for
style-based generators, z ``[z_dim]`` for PGGAN (an encoder with ``num_layers = 1``) —
and is trained with, per batch (``x_rec = G(E(x))``, G frozen)::

  L_E = mean((x_rec − x)²) + 5e-5 · mean((F(x) − F(x_rec))²) + 0.08 · mean(softplus(−D(x_rec)))
  L_D = mean(softplus(D(x_rec))) + mean(softplus(−D(x))) + (γ/2) · mean_b(Σ_{c,h,w} (∂D(x)/∂x)²)

with F the Keras-convention VGG16 up to relu4_3 on images nearest-resized to
``feat_size`` (256 in the release; ``feat_weight = 0`` or no perceptual network drops
the term and its forward passes, for generators without VGG weights), γ = 10 applied every step, one E step then one D
step on the same (mirror-augmented) batch, Adam(0.9, 0.99, eps 1e-8) for both with
lr 1e-4 decayed continuously by 0.8 every ``max_iters / 4`` iterations.

Batch norm: train mode uses batch statistics all-reduced over the ``data`` mesh axis
(synchronised, as the 8-GPU TF run), and the running statistics (momentum 0.1) are
updated from them; γ (BN ``weight``) and the running statistics are not trained.

References:
  Zhu et al., In-Domain GAN Inversion for Real Image Editing, https://arxiv.org/abs/2004.00049
  Mescheder et al., Which Training Methods for GANs do actually Converge? (R1),
  https://arxiv.org/abs/1801.04406
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxinv.models import idinvert_encoder
from jaxinv.ops import resize as ops_resize
from jaxinv.ops.r1 import r1_penalty

__all__ = ["EncoderTrainConfig", "EncoderNets", "nets_for", "encoder_loss",
           "discriminator_loss", "uses_perceptual", "TrainState", "init_state", "make_step", "make_optimizer",
           "trainable_mask", "update_running_stats", "DATA_AXIS"]

DATA_AXIS = "data"


@dataclasses.dataclass(frozen=True)
class EncoderTrainConfig:
  """Hyper-parameters; the defaults are the TF release's ``train_encoder.py``."""
  batch_size: int = 128          # global batch (16 per GPU x 8 in the release)
  max_iters: int = 100_000       # sets the lr decay period (max_iters / 4)
  learning_rate: float = 1e-4
  lr_decay: float = 0.8          # multiplied in every max_iters / 4 iterations, continuously
  beta1: float = 0.9
  beta2: float = 0.99
  eps: float = 1e-8
  pix_weight: float = 1.0
  feat_weight: float = 5e-5
  adv_weight: float = 0.08       # D_scale of train_encoder.py (the loss' own default is 0.1)
  r1_gamma: float = 10.0
  mirror: bool = True
  feat_size: int = 256           # nearest resize before the perceptual net
  bn_momentum: float = 0.1       # running stats: (1 - m) * old + m * batch


@dataclasses.dataclass(frozen=True)
class EncoderNets:
  """Pure functions of the frozen and trained networks."""
  encode: Callable      # (e_params, x, train) -> (code [B, *code_shape], bn_stats or None)
  render: Callable      # (g_params, code) -> [B, R, R, 3]
  features: Callable | None   # (f_params, x) -> features; None: no perceptual term
  discriminate: Callable  # (d_params, x) -> [B] logits


def nets_for(generator, encoder_module, discriminator_module, perceptual_module=None
             ) -> EncoderNets:
  """Builds :class:`EncoderNets` for a loaded generator (``stylegan*``: w+, ``pggan``: z).

  ``perceptual_module=None`` trains without the perceptual term (pixel + adversarial).
  """
  fam = generator.family
  g_mod = generator.module
  if fam in ("stylegan", "stylegan2"):
    def render(gp, code):
      return g_mod.apply({"params": gp}, None, code, method="synthesis")
  elif fam == "pggan":
    def render(gp, code):
      return g_mod.apply({"params": gp}, code[:, 0])
  else:
    raise ValueError(f"encoder training supports stylegan, stylegan2 and pggan, not {fam!r}")

  def encode(ep, x, train):
    if train:
      code, upd = encoder_module.apply({"params": ep}, x, train=True, mutable=["bn_stats"])
      return code, upd["bn_stats"]
    return encoder_module.apply({"params": ep}, x), None

  features = None
  if perceptual_module is not None:
    def features(fp, x):
      return perceptual_module.apply({"params": fp}, x)

  return EncoderNets(
      encode, render, features,
      lambda dp, x: discriminator_module.apply({"params": dp}, x).reshape(x.shape[0]))


def encoder_config_for(generator, channels_base: int = 64, channels_max: int = 1024
                       ) -> idinvert_encoder.EncoderConfig:
  """The encoder architecture that targets ``generator``'s inversion space."""
  cfg = generator.config
  if generator.family in ("stylegan", "stylegan2"):
    L, D = cfg.num_ws, cfg.w_dim
  else:
    L, D = 1, cfg.z_dim
  return idinvert_encoder.EncoderConfig(resolution=cfg.resolution, num_layers=L, w_dim=D,
                                        channels_base=channels_base, channels_max=channels_max)


def uses_perceptual(nets: EncoderNets, cfg: EncoderTrainConfig) -> bool:
  """Whether the perceptual term is computed: a network is given and its weight is not 0."""
  return nets.features is not None and float(cfg.feat_weight) != 0.0


def encoder_loss(nets: EncoderNets, cfg: EncoderTrainConfig, e_params, shared, x):
  code, stats = nets.encode(e_params, x, True)
  x_rec = nets.render(shared["G"], code)
  pix = jnp.mean(jnp.square(x_rec - x))
  if uses_perceptual(nets, cfg):
    fx = nets.features(shared["F"], ops_resize.resize_nearest(x, cfg.feat_size))
    fr = nets.features(shared["F"], ops_resize.resize_nearest(x_rec, cfg.feat_size))
    feat = jnp.mean(jnp.square(fx - fr))
  else:
    feat = jnp.zeros((), pix.dtype)
  adv = jnp.mean(jax.nn.softplus(-nets.discriminate(shared["D"], x_rec)))
  loss = cfg.pix_weight * pix + cfg.feat_weight * feat + cfg.adv_weight * adv
  return loss, {"stats": stats, "x_rec": x_rec, "e_pix": pix, "e_feat": feat, "e_adv": adv}


def discriminator_loss(nets: EncoderNets, cfg: EncoderTrainConfig, d_params, x, fake):
  real_l = nets.discriminate(d_params, x)
  fake_l = nets.discriminate(d_params, fake)
  gan = jnp.mean(jax.nn.softplus(fake_l)) + jnp.mean(jax.nn.softplus(-real_l))
  r1 = r1_penalty(lambda v: nets.discriminate(d_params, v), x, cfg.r1_gamma)
  return gan + r1, {"d_gan": gan, "d_r1": r1}


def trainable_mask(e_params):
  """True for trained leaves: everything but BN ``weight`` (γ, frozen) and running stats."""
  def mask(path, _):
    keys = [getattr(k, "key", str(k)) for k in path]
    if len(keys) >= 2 and keys[-2].startswith("bn"):
      return keys[-1] == "bias"
    return True
  return jax.tree_util.tree_map_with_path(mask, e_params)


def make_optimizer(cfg: EncoderTrainConfig, mask=None) -> optax.GradientTransformation:
  sched = optax.exponential_decay(cfg.learning_rate, transition_steps=max(1, cfg.max_iters // 4),
                                  decay_rate=cfg.lr_decay, staircase=False)
  opt = optax.adam(sched, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps)
  if mask is None:
    return opt
  return optax.chain(optax.masked(opt, mask),
                     optax.masked(optax.set_to_zero(), jax.tree_util.tree_map(lambda m: not m, mask)))


def update_running_stats(e_params, stats, momentum: float):
  """``running = (1 − m)·running + m·batch`` for every BN of the encoder (biased batch var, as TF)."""
  if stats is None:
    return e_params

  def upd(node, st):
    out = dict(node)
    for k, v in node.items():
      if isinstance(v, dict):
        out[k] = upd(v, st[k]) if k in st else v
    if "mean" in st and "running_mean" in node:
      out["running_mean"] = (1 - momentum) * node["running_mean"] + momentum * st["mean"]
      out["running_var"] = (1 - momentum) * node["running_var"] + momentum * st["var"]
    return out
  return upd(e_params, stats)


@dataclasses.dataclass
class TrainState:
  e_params: Any
  d_params: Any
  e_opt: Any
  d_opt: Any
  step: jax.Array


jax.tree_util.register_dataclass(TrainState, data_fields=["e_params", "d_params", "e_opt", "d_opt",
                                                          "step"], meta_fields=[])


def init_state(cfg: EncoderTrainConfig, e_params, d_params) -> TrainState:
  e_opt = make_optimizer(cfg, trainable_mask(e_params)).init(e_params)
  d_opt = make_optimizer(cfg).init(d_params)
  return TrainState(e_params, d_params, e_opt, d_opt, jnp.zeros((), jnp.int32))


def _mirror(x, key):
  flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
  return jnp.where(flip, x[:, :, ::-1], x)


def make_step(nets: EncoderNets, cfg: EncoderTrainConfig, e_params_template, mesh=None):
  """A jitted ``step(state, shared, x, key) -> (state, metrics)``: one E step, one D step.

  ``shared = {"G", "F"}`` (frozen; ``F`` may be None without the perceptual term). With ``mesh`` (axis ``data``), the batch is split over
  devices, batch norm and gradients are averaged over the axis; otherwise one device.
  """
  e_tx = make_optimizer(cfg, trainable_mask(e_params_template))
  d_tx = make_optimizer(cfg)
  axis = DATA_AXIS if mesh is not None else None

  def local(state, shared, x, key):
    if axis is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis))
    if cfg.mirror:
      x = _mirror(x, key)
    sh = dict(shared, D=state.d_params)
    (le, aux), ge = jax.value_and_grad(
        lambda ep: encoder_loss(nets, cfg, ep, sh, x), has_aux=True)(state.e_params)
    fake = jax.lax.stop_gradient(aux["x_rec"])
    (ld, daux), gd = jax.value_and_grad(
        lambda dp: discriminator_loss(nets, cfg, dp, x, fake), has_aux=True)(state.d_params)
    metrics = {"e_loss": le, "d_loss": ld, "e_pix": aux["e_pix"], "e_feat": aux["e_feat"],
               "e_adv": aux["e_adv"], **daux}
    if axis is not None:
      ge, gd, metrics = jax.lax.pmean((ge, gd, metrics), axis)
    ue, e_opt = e_tx.update(ge, state.e_opt, state.e_params)
    e_params = optax.apply_updates(state.e_params, ue)
    e_params = update_running_stats(e_params, aux["stats"], cfg.bn_momentum)
    ud, d_opt = d_tx.update(gd, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, ud)
    return TrainState(e_params, d_params, e_opt, d_opt, state.step + 1), metrics

  if mesh is None:
    return jax.jit(local)
  from jax.sharding import PartitionSpec as P
  sm = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(DATA_AXIS), P()),
                     out_specs=(P(), P()), check_vma=False)
  return jax.jit(sm)
