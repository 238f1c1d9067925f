"""Shared setup of the PTI golden tests (fixture e4e_pti): generator, stand-in, LPIPS, config."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.converters import lpips_lin, rosinality_stylegan2
from jaxinv.inversion.methods import pti
from jaxinv.io import torch_pickle
from jaxinv.models import lpips as lpips_model
from jaxinv.models import stylegan2

FOLDER = "e4e_pti"


def nhwc(x):
  return np.transpose(np.asarray(x), (0, 2, 3, 1))


def nchw(x):
  return np.transpose(np.asarray(x), (0, 3, 1, 2))


def generator(g):
  """The fixture's G_ema through its rosinality-format file and the rosinality converter."""
  conv = rosinality_stylegan2.convert(torch_pickle.load(
      g.path(g.expected["e4e"]["rosinality_conversion"]["file"])))
  return stylegan2.StyleGAN2Generator(conv.config), conv.params


def standin_features(arrays):
  """The projector's perceptual stand-in (README §PTI.5) from ``pti.standin.*``: img in [0, 255]
  NHWC -> flat features whose squared distance is the perceptual distance."""
  w1 = jnp.asarray(np.transpose(arrays["pti.standin.conv1.weight"], (2, 3, 1, 0)))
  w2 = jnp.asarray(np.transpose(arrays["pti.standin.conv2.weight"], (2, 3, 1, 0)))
  b1, b2 = arrays["pti.standin.conv1.bias"], arrays["pti.standin.conv2.bias"]
  lins = [arrays["pti.standin.lin1"], arrays["pti.standin.lin2"]]

  def conv(x, w, b):
    return jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + b

  def features(img):
    x = img / 127.5 - 1
    f1 = jax.nn.relu(conv(x, w1, b1))
    b, h, w, c = f1.shape
    pooled = f1.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    f2 = jax.nn.relu(conv(pooled, w2, b2))
    out = []
    for f, lin in zip((f1, f2), lins):
      n = f / (jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True)) + 1e-10)
      n = n * jnp.sqrt(jnp.asarray(lin) / (f.shape[1] * f.shape[2]))
      out.append(jnp.transpose(n, (0, 3, 1, 2)).reshape(b, -1))   # NCHW order
    return jnp.concatenate(out, axis=1)
  return features


def lpips_fn(g):
  """PTI's LPIPS-alex (random backbone, real v0.1 lin layers): ``(x, y) -> [B]``."""
  lp = g.expected["pti"]["build"]["lpips"]
  conv = lpips_lin.convert(torch_pickle.load(g.path(lp["lin_file"])),
                           backbone=str(g.path(lp["backbone_file"])))
  module = lpips_model.LPIPS(**conv.config)
  return lambda x, y: module.apply({"params": conv.params}, x, y)


def config(g, **over):
  run = g.expected["pti"]["run"]
  hp, proj = run["hyperparameters_used"], run["project_signature_defaults"]
  cfg = pti.PTIConfig(
      first_inv_steps=hp["first_inv_steps"], w_avg_samples=run["project_kwargs"]["w_avg_samples"],
      initial_learning_rate=proj["initial_learning_rate"],
      initial_noise_factor=proj["initial_noise_factor"],
      lr_rampdown_length=proj["lr_rampdown_length"], lr_rampup_length=proj["lr_rampup_length"],
      noise_ramp_length=proj["noise_ramp_length"],
      regularize_noise_weight=proj["regularize_noise_weight"],
      max_pti_steps=hp["max_pti_steps"], pti_learning_rate=hp["pti_learning_rate"],
      lpips_value_threshold=hp["LPIPS_value_threshold"], pt_l2_lambda=hp["pt_l2_lambda"],
      pt_lpips_lambda=hp["pt_lpips_lambda"],
      use_locality_regularization=hp["use_locality_regularization"],
      regulizer_l2_lambda=hp["regulizer_l2_lambda"],
      regulizer_lpips_lambda=hp["regulizer_lpips_lambda"],
      regulizer_alpha=hp["regulizer_alpha"],
      betas=tuple(run["optimizer_defaults"]["tune"]["betas"]),
      adam_eps=run["optimizer_defaults"]["tune"]["eps"])
  assert hp["locality_regularization_interval"] == 1 and hp["latent_ball_num_of_samples"] == 1
  return pti.PTIConfig(**{**cfg.__dict__, **over})
