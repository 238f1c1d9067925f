"""NVIDIA's ``projector.py`` (ProjectorConfig.nvidia) against nvidia_stylegan/ projector trajectories.

The run is driven by the fixture's own draws (``eps`` per step, ``noise_init``) and its
VGG16 stand-in (README §6, implemented below from its description), so every step is
compared. Bounds (README §8): loss / dist of steps 1–3 ≤ 1e-4 relative and ``w_after`` of
those steps ≤ 1e-5 absolute; every step ≤ 1e-3 relative (loss) and ≤ 1e-4 absolute
(w_after, noise) — Adam amplifies float noise step by step (thread-count floor: 0 for SG2,
≤ 1.9e-6 relative loss / 3.6e-7 w for SG3).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion.methods import projector as proj
from jaxinv.models import layers as L
from tests.conftest import assert_close

FOLDER = "nvidia_stylegan"
EARLY_STEPS = 3
EARLY_LOSS_REL, EARLY_W_ATOL = 1e-4, 1e-5
ALL_LOSS_REL, ALL_W_ATOL = 1e-3, 1e-4


def vgg_stub_features(params, img):
  """The fixture's stand-in for NVIDIA's vgg16.pt (README §6) on ``img [G, R, R, 3]`` in [-1, 1]."""
  def conv(x, w, b):
    return L.conv2d(x, jnp.transpose(w, (2, 3, 1, 0)), padding=1) + b

  h1 = jax.nn.relu(conv(img, params["conv1_weight"], params["conv1_bias"]))
  g, h, w, c = h1.shape
  pooled = h1.reshape(g, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  h2 = jax.nn.relu(conv(pooled, params["conv2_weight"], params["conv2_bias"]))
  feats = []
  for x, lin in ((h1, params["lin1"]), (h2, params["lin2"])):
    x = x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-8)
    x = x * jnp.sqrt(lin) / np.sqrt(x.shape[1] * x.shape[2])
    feats.append(jnp.transpose(x, (0, 3, 1, 2)).reshape(g, -1))
  return jnp.concatenate(feats, axis=1)


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


def _tags(g, kinds):
  return [t for t, m in g.expected["models"].items()
          if m.get("projector") and m["kind"] in kinds]


def _generator(g, tag):
  from jaxinv import converters as conv_mod
  obj = conv_mod.read_source(g.path(g.expected["models"][tag]["pickle"]["file"]))
  c = conv_mod.FORMATS[conv_mod.detect(obj)].convert(obj)
  from jaxinv.models import registry
  return registry.FAMILIES[c.family].build(c.config), c.params


def _check(g, tag):
  f = g.npz("fixtures.npz")
  e = g.expected["models"][tag]["projector"]
  module, params = _generator(g, tag)
  stub = {k: jnp.asarray(f[f"proj_vgg_stub.{k}"]) for k in g.expected["vgg_stub"]["params"]}
  P = f"{tag}.proj."
  target = jnp.asarray(f[P + "target_uint8"].transpose(1, 2, 0)[None], jnp.float32) / 127.5 - 1
  assert_close(vgg_stub_features(stub, target), f[P + "target_features"], atol=1e-6,
               what="stand-in VGG target features")
  # w statistics from NVIDIA's own z draw (RandomState(123), float64 cast to float32)
  z = np.random.RandomState(123).randn(e["w_avg_samples"], module.config.z_dim).astype(np.float32)
  mean, std = proj.latent_stats(module, params, None, e["w_avg_samples"], z=jnp.asarray(z))
  assert_close(mean, f[P + "w_avg"][0, 0], atol=1e-5, what="w_avg")
  assert_close(std, f[P + "w_std"], rtol=1e-5, what="w_std")
  cfg = proj.ProjectorConfig.nvidia(
      steps=e["num_steps"], lr=e["initial_learning_rate"], lr_rampup=e["lr_rampup_length"],
      lr_rampdown=e["lr_rampdown_length"], noise=e["initial_noise_factor"],
      noise_ramp=e["noise_ramp_length"], noise_regularize=e["regularize_noise_weight"],
      features=vgg_stub_features)
  steps = np.arange(cfg.steps)
  assert_close(proj.lr_schedule(steps / cfg.steps, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup),
               f[P + "lr"], atol=1e-7, what="lr")
  noises = tuple(jnp.asarray(f[f"{P}noise_init.{n}"])[None, None] for n in e["noise_buffers"])
  init = {"latent": jnp.asarray(f[P + "w_avg"])[:, 0][None], "noises": noises,
          "t": jnp.zeros((1,), jnp.float32)}
  out = proj.project(module, params, target[None], cfg, lpips_params=stub, init=init,
                     eps=f[P + "eps"][None, :, 0], latent_mean=f[P + "w_avg"][0, 0],
                     latent_std=f[P + "w_std"], record_variables=True, progress=False)
  aux = {k: np.asarray(v)[:, 0] for k, v in out.aux.items()}
  assert_close(aux["noise_strength"], f[P + "w_noise_scale"], rtol=1e-5, what="w_noise_scale")
  loss = np.asarray(out.loss)[:, 0]
  w_after = np.asarray(out.history["latent"])[:, 0, 0]
  for lo, hi, rel, watol in ((0, EARLY_STEPS, EARLY_LOSS_REL, EARLY_W_ATOL),
                             (0, cfg.steps, ALL_LOSS_REL, ALL_W_ATOL)):
    s = slice(lo, hi)
    assert_close(loss[s], f[P + "loss"][s], rtol=rel, what=f"{tag} loss {lo}:{hi}")
    assert_close(aux["p_loss"][s], f[P + "dist"][s], rtol=rel, what=f"{tag} dist {lo}:{hi}")
    assert_close(w_after[s], f[P + "w_after"][s, 0, 0], atol=watol, what=f"{tag} w_after {lo}:{hi}")
  reg = f[P + "reg_loss"]
  assert_close(aux["n_loss"], reg, atol=ALL_LOSS_REL * max(float(np.abs(reg).max()), 1e-30),
               what="reg_loss")
  for i, name in enumerate(e["noise_buffers"]):
    assert_close(np.asarray(out.variables["noises"][i])[0, 0], f[f"{P}noise_final.{name}"],
                 atol=ALL_W_ATOL, what=f"{tag} noise_final {name}")


def test_projector_stylegan2(g):
  tags = _tags(g, ("ada", "tf"))
  if not tags:
    pytest.skip("no StyleGAN2 projector run in this case")
  for tag in tags:
    _check(g, tag)


@pytest.mark.slow      # the SG3 gradient compile takes ~1 min on the shared 2-core machine
def test_projector_stylegan3(g):
  tags = _tags(g, ("sg3",))
  if not tags:
    pytest.skip("no StyleGAN3 projector run in this case")
  for tag in tags:
    _check(g, tag)
