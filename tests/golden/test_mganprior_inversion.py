"""mGANprior trajectories (SGD+MSE, Adam+Combine) vs the official GradientDescent.invert loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import objectives, spaces
from jaxinv.inversion.methods import mganprior
from jaxinv.io import images as image_io
from tests.conftest import ADAM_BULK_ATOL, assert_close, case_params, check_adam_bulk
from tests.golden.mganprior_common import check_final_image, converted, nhwc, parse_run


# Bounds from float32 noise (README §7: the official code in float64 vs float32):
# - Losses agree to 3e-8 (SGD+MSE) and 8e-7 (Adam+Combine) absolute on losses ~0.4-0.6; another
#   float32 summation order of the VGG features is worth ~1e-6 relative: LOSS_RTOL = 1e-5 (README).
# - SGD latents: a stable descending SGD trajectory (|I - lr·H| <= 1) accumulates each step's
#   gradient noise at most linearly, |dv| <= steps·lr·noise·max|g0|; gradient noise is 1e-4 of the
#   gradient's max for pixel losses and 5e-4 with the VGG term (test_gradients_at_init).
# - Adam latents: Adam normalises each coordinate (bias-corrected |m/sqrt(v)| <= 1 for beta1² <=
#   beta2), so a coordinate moves at most lr per step and two runs can differ by at most 2·lr·steps
#   (a coordinate whose gradient is within float noise of zero may take the other sign's step); that
#   is the hard bound on every component. The bulk is much tighter: components whose gradient is well
#   above its noise agree to float precision. The official float64 rerun differs from its float32 in
#   3.9% of z's components by more than 1e-4 (max 2.2e-3, README §7); check_adam_bulk (conftest)
#   allows 10% beyond 1e-4.
# - Images: check_final_image (G's own float32 floor 1e-4, README's generator-output suggestion
#   over the 5e-6 float64 difference, plus the image motion of our latents' drift).
LOSS_RTOL = 1e-5
IMAGE_FLOOR = 1e-4


def latent_bound(cfg, grad0):
  """Largest difference any latent component may show after ``cfg.steps`` steps."""
  if cfg.optimizer != "sgd":
    return 2 * cfg.lr * cfg.steps
  noise = 5e-4 if cfg.loss.needs_vgg else 1e-4
  return cfg.steps * cfg.lr * noise * float(np.abs(grad0).max())



@pytest.fixture(scope="module")
def models(golden, tmp_path_factory):
  return converted(golden, tmp_path_factory, "pggan"), converted(golden, tmp_path_factory, "vgg")


def _config(e_inv, run):
  optimizer, lr, loss, args = parse_run(run)
  loss_cfg = objectives.LossConfig(
      loss=loss, l1_lambda=args.get("l1_lambda", 0.0), l2_lambda=args.get("l2_lambda", 1.0),
      vgg_lambda=args.get("vgg_lambda", 1.0),
      vgg=objectives.VGGLossConfig(num_modules=args.get("vgg_layer", 16),
                                   size=args.get("image_size", 256),
                                   kind=args.get("vgg_loss_type", "L1").lower()))
  return mganprior.MGANpriorConfig(codes=e_inv["N"], layer=e_inv["composing_layer"], loss=loss_cfg,
                                   optimizer=optimizer, lr=lr, steps=e_inv["steps"])


def _run_fixture(golden, run_name):
  """(arrays, the run's expected.json record, its MGANpriorConfig) for one ``inversion.runs`` entry."""
  g = golden("mganprior")
  e = g.expected["inversion"]
  run = e["runs"][run_name]
  return g.npz("inversion.npz"), run, _config(e, run)


def test_target_loading(golden):
  g = golden("mganprior")
  e = g.expected["inversion"]
  d = g.npz("inversion.npz")
  res = g.expected["pggan"]["constructor_kwargs"]["resolution"]
  x = image_io.load_image(g.optional(e["target_source"], "the target image"), res)
  np.testing.assert_array_equal(image_io.to_uint8(x)[None].transpose(0, 3, 1, 2).shape,
                                d["target_uint8"].shape)
  np.testing.assert_array_equal(x, nhwc(d["target"])[0])


RUNS = case_params("mganprior", lambda e: e["inversion"]["runs"])


@pytest.mark.parametrize("run_name", RUNS)
def test_trajectory(golden, models, run_name):
  d, run, cfg = _run_fixture(golden, run_name)
  gen, vgg = models
  init = {"z": d["init_z"], "alpha": d["init_alpha"]}
  out = mganprior.invert(gen.module, gen.params, nhwc(d["target"]), cfg, vgg_params=vgg.params,
                         init=init, record_variables=True, progress=False)
  rel = assert_close(out.loss[:, 0], d[f"{run_name}_loss"], rtol=LOSS_RTOL, what=f"{run_name} loss")
  errs = {}
  for k in ("z", "alpha"):
    bound = latent_bound(cfg, d[f"{run_name}_grad_{k}0"])
    errs[k] = assert_close(out.variables[k], d[f"{run_name}_final_{k}"], atol=bound, what=f"final {k}")
    assert_close(out.history[k][:, 0], d[f"{run_name}_{k}_hist"][:, 0], atol=bound, what=f"{k} hist")
    if cfg.optimizer != "sgd":
      errs[f"{k} share > {ADAM_BULK_ATOL}"] = check_adam_bulk(
          out.variables[k], d[f"{run_name}_final_{k}"], f"final {k}")
  official = {k: d[f"{run_name}_final_{k}"] for k in ("z", "alpha")}
  errs["image"] = check_final_image(gen, cfg, out, official, d[f"{run_name}_final_image"],
                                    IMAGE_FLOOR, what="final image")
  if "loss_parts_per_step" in run:
    parts = np.asarray(run["loss_parts_per_step"])
    order = [p.split("(")[0] for p in run["loss_parts_order"]]
    for i, name in enumerate(order):
      assert_close(out.parts[name][:, 0], parts[:, i], rtol=LOSS_RTOL, what=f"loss part {name}")
  print(f"{run_name}: loss max abs err {rel:.3g}, " + ", ".join(f"{k} {v:.3g}" for k, v in errs.items()))


@pytest.mark.parametrize("run_name", RUNS)
def test_gradients_at_init(golden, models, run_name):
  d, run, cfg = _run_fixture(golden, run_name)
  gen, vgg = models
  space = spaces.MultiCode(gen.module, cfg.layer, cfg.codes)
  loss_fn = mganprior.make_loss_fn(space, cfg.loss)
  v = {"z": jnp.asarray(d["init_z"][0]), "alpha": jnp.asarray(d["init_alpha"][0])}
  data = {"observation": jnp.asarray(nhwc(d["target"])[0])}
  (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      v, data, {"generator": gen.params, "vgg": vgg.params})
  assert_close(loss, run["loss_at_init_from_grad_pass"], rtol=1e-5, what="loss at init")
  gz = d[f"{run_name}_grad_z0"][0]
  ga = d[f"{run_name}_grad_alpha0"][0]
  # The VGG term's relu3_3 features reach ~1e3, so float32 summation noise in its gradient is
  # ~2e-4 of the gradient's scale (measured); pixel-only losses agree to 1e-4 of it.
  scale = 1e-4 if not cfg.loss.needs_vgg else 5e-4
  assert_close(grads["z"], gz, atol=scale * np.abs(gz).max(), rtol=1e-4, what="grad z")
  assert_close(grads["alpha"], ga, atol=scale * np.abs(ga).max(), rtol=1e-4, what="grad alpha")
  rel_l2 = np.linalg.norm(np.asarray(grads["z"]) - gz) / np.linalg.norm(gz)
  assert rel_l2 < scale, f"grad z relative L2 error {rel_l2:.3g}"
