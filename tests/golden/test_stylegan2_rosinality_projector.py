"""The rosinality projector (``projector.py`` loop, LPIPS replaced by MSE) against its trajectory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.converters import read_source, rosinality_stylegan2
from jaxinv.inversion.methods import projector
from jaxinv.models import stylegan2
from tests.conftest import assert_close, case_params, check_adam_bulk
from tests.golden._style_common import image_atol, nchw

LOSS_RTOL = 1e-4


def nhwc(x):
  return np.transpose(np.asarray(x), (0, 2, 3, 1))


@pytest.fixture(scope="module")
def gen(golden):
  g = golden("stylegan2_rosinality")
  conv = rosinality_stylegan2.convert(read_source(g.path(g.expected["checkpoint"]["file"])))
  return g, stylegan2.StyleGAN2Generator(conv.config), conv.params, g.npz("fixtures.npz")


def _cfg(e, w_plus):
  p = e["projector"]
  assert p["image_loss"].startswith("F.mse_loss")
  return projector.ProjectorConfig(
      steps=p["step"], lr=p["lr"], lr_rampup=p["lr_rampup"], lr_rampdown=p["lr_rampdown"],
      noise=p["noise"], noise_ramp=p["noise_ramp"], noise_regularize=p["noise_regularize"],
      mse=p["mse"], w_plus=w_plus, n_mean_latent=p["n_mean_latent"], image_loss="mse")


def test_latent_stats(gen):
  g, m, params, f = gen
  mean, std = projector.latent_stats(m, params, None, 0, z=jnp.asarray(f["proj_mean_z"]))
  assert_close(mean, f["proj_latent_mean"], atol=1e-5, what="latent mean")
  assert_close(std, f["proj_latent_std"], rtol=1e-5, what="latent std")


def _runs(e):
  import ast
  proj = e["config"]["proj"]
  return [tuple(t) for t in (ast.literal_eval(proj) if isinstance(proj, str) else proj)]


@pytest.mark.parametrize("tag,w_plus", [r if isinstance(r, tuple) else (r, None)
                                        for r in case_params("stylegan2_rosinality", _runs)])
def test_trajectory(gen, tag, w_plus):
  g, m, params, f = gen
  e = g.expected
  cfg = _cfg(e, w_plus)
  steps, nconv = cfg.steps, m.config.num_convs
  group = f["proj_target"].shape[0]
  lat0 = np.broadcast_to(f["proj_latent_mean"], (group, m.config.w_dim))
  if w_plus:
    lat0 = np.broadcast_to(lat0[:, None], (group, m.config.num_ws, m.config.w_dim))
  init = {"latent": jnp.asarray(lat0)[None],
          "noises": tuple(jnp.asarray(f[f"proj_{tag}_noise_init_{k}"][:, 0])[None] for k in range(nconv)),
          "t": jnp.zeros((1,), jnp.float32)}
  eps = np.stack([f[f"proj_{tag}_step{i}_eps"] for i in range(steps)])[None]
  out = projector.project(m, params, nhwc(f["proj_target"])[None], cfg, init=init, eps=eps,
                          latent_mean=f["proj_latent_mean"], latent_std=f["proj_latent_std"],
                          record_variables=True, progress=False)
  exp = e[f"projector_{tag}"]
  t = np.arange(steps) / steps
  assert_close(projector.lr_schedule(t, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup), exp["lr"],
               atol=1e-7, what="lr ramp")
  assert_close(out.aux["noise_strength"][:, 0], exp["noise_strength"], rtol=1e-5, atol=1e-7,
               what="noise strength")
  assert_close(out.aux["mse_loss"][:, 0], exp["mse_loss"], rtol=LOSS_RTOL, what="mse loss")
  assert_close(out.aux["n_loss"][:, 0], exp["n_loss"], rtol=LOSS_RTOL, what="noise regulariser")
  assert_close(out.loss[:, 0], exp["loss"], rtol=LOSS_RTOL, what="total loss")
  # Bounds: losses rtol 1e-4 at every step (README: "for the projector after 5 Adam steps, about
  # 1e-4"; measured <= 1.1e-5 relative). Latents and noise maps: Adam moves each component by at most
  # lr_t per step (bias-corrected |m/sqrt(v)| <= 1), so two runs differ by at most 2·sum(lr_t) - the
  # hard bound for a component whose gradient sits within float noise of zero and takes the other
  # sign - while components with a clear gradient agree to float precision: at most
  # ADAM_BULK_FRACTION of them may differ by more than ADAM_BULK_ATOL. Renderings: G at the official
  # step's latent_n and noise maps gives the official image within G's floor (image_atol); our image
  # differs further by exactly what our variables' drift moves it, computed here with our G.
  hard = 2 * float(np.sum(exp["lr"]))
  render = jax.jit(lambda wp, noises: m.apply({"params": params}, None, wp, 0, None, list(noises),
                                              method=m.synthesis))

  def wp_of(latent_n):
    latent_n = jnp.asarray(latent_n)
    return latent_n if latent_n.ndim == 3 else jnp.broadcast_to(
        latent_n[:, None], (latent_n.shape[0], m.config.num_ws, m.config.w_dim))

  errs = {"latent_n": 0.0, "img": 0.0, "latent": 0.0, "noise": 0.0, "bulk": 0.0}
  for i in range(steps):
    lat_n = f[f"proj_{tag}_step{i}_latent_n"]
    errs["latent_n"] = max(errs["latent_n"], assert_close(
        out.aux["latent_n"][i, 0], lat_n, atol=hard, what=f"step {i} latent_n"))
    before = "noise_init" if i == 0 else f"step{i - 1}_noise_after"
    official_noises = [f[f"proj_{tag}_{before}_{k}"][:, 0] for k in range(nconv)]
    ours_noises = ([np.asarray(init["noises"][k][0]) for k in range(nconv)] if i == 0 else
                   [out.history["noises"][k][i - 1, 0] for k in range(nconv)])
    img = f[f"proj_{tag}_step{i}_img_gen"]
    floor = image_atol(img)
    at_official = nchw(render(wp_of(lat_n), official_noises))
    assert_close(at_official, img, atol=floor, what=f"step {i} img (G at the official variables)")
    drift = np.abs(nchw(render(wp_of(out.aux["latent_n"][i, 0]), ours_noises)).astype(np.float64)
                   - at_official)
    errs["img"] = max(errs["img"], assert_close(nchw(out.aux["img_gen"][i, 0]), img,
                                                atol=floor + drift, what=f"step {i} img"))
    after = f[f"proj_{tag}_step{i}_latent_in_after"]
    errs["latent"] = max(errs["latent"], assert_close(
        out.history["latent"][i, 0], after, atol=hard, what=f"step {i} latent after"))
    errs["bulk"] = max(errs["bulk"], check_adam_bulk(out.history["latent"][i, 0], after,
                                                     f"step {i} latent after"))
    for k in range(nconv):
      errs["noise"] = max(errs["noise"], assert_close(
          out.history["noises"][k][i, 0], f[f"proj_{tag}_step{i}_noise_after_{k}"][:, 0],
          atol=hard, what=f"step {i} noise {k}"))
  print(f"projector {tag}: max abs errors {errs}")


def test_gradient_at_init(gen):
  g, m, params, f = gen
  e = g.expected
  tag, w_plus = e["config"]["proj"][0]
  cfg = _cfg(e, w_plus)
  group = f["proj_target"].shape[0]
  lat0 = np.broadcast_to(f["proj_latent_mean"], (group, m.config.w_dim))
  if w_plus:
    lat0 = np.broadcast_to(lat0[:, None], (group, m.config.num_ws, m.config.w_dim))
  v = {"latent": jnp.asarray(lat0),
       "noises": tuple(jnp.asarray(f[f"proj_{tag}_noise_init_{k}"][:, 0])
                       for k in range(m.config.num_convs)),
       "t": jnp.zeros((), jnp.float32)}
  data = {"target": nhwc(f["proj_target"]), "eps": f[f"proj_{tag}_step0_eps"][None]}
  shared = {"generator": params, "latent_std": jnp.asarray(f["proj_latent_std"]), "lpips": None}
  fn = projector.make_loss_fn(m, cfg)
  grad = jax.jit(jax.grad(lambda v: fn(v, data, shared)[0]))(v)
  want = f[f"proj_{tag}_step0_grad_latent"]
  assert_close(grad["latent"], want, atol=1e-4 * float(np.abs(want).max()), what="grad latent")
