"""mGANprior trajectories (SGD+MSE, Adam+Combine) vs the official GradientDescent.invert loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion import objectives, spaces
from jaxinv.inversion.methods import mganprior
from jaxinv.io import images as image_io
from tests.conftest import assert_close
from tests.golden.mganprior_common import converted, nchw, nhwc, parse_run


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
  x = image_io.load_image(g.dir / e["target_source"], res)
  np.testing.assert_array_equal(image_io.to_uint8(x)[None].transpose(0, 3, 1, 2).shape,
                                d["target_uint8"].shape)
  np.testing.assert_array_equal(x, nhwc(d["target"])[0])


@pytest.mark.parametrize("run_name", ["sgd_mse", "adam_combine"])
def test_trajectory(golden, models, run_name):
  d, run, cfg = _run_fixture(golden, run_name)
  gen, vgg = models
  init = {"z": d["init_z"], "alpha": d["init_alpha"]}
  out = mganprior.invert(gen.module, gen.params, nhwc(d["target"]), cfg, vgg_params=vgg.params,
                         init=init, record_variables=True, progress=False)
  rel = assert_close(out.loss[:, 0], d[f"{run_name}_loss"], rtol=1e-5, what=f"{run_name} loss")
  latent_tol = 1e-4 if cfg.optimizer == "sgd" else 5e-3
  ez = assert_close(out.variables["z"], d[f"{run_name}_final_z"], atol=latent_tol, what="final z")
  ea = assert_close(out.variables["alpha"], d[f"{run_name}_final_alpha"], atol=latent_tol,
                    what="final alpha")
  assert_close(out.history["z"][:, 0], d[f"{run_name}_z_hist"][:, 0], atol=latent_tol, what="z hist")
  assert_close(out.history["alpha"][:, 0], d[f"{run_name}_alpha_hist"][:, 0], atol=latent_tol,
               what="alpha hist")
  img_tol = 1e-4 if cfg.optimizer == "sgd" else 1e-2
  assert_close(nchw(out.images), d[f"{run_name}_final_image"], atol=img_tol, what="final image")
  if "loss_parts_per_step" in run:
    parts = np.asarray(run["loss_parts_per_step"])
    order = [p.split("(")[0] for p in run["loss_parts_order"]]
    for i, name in enumerate(order):
      assert_close(out.parts[name][:, 0], parts[:, i], rtol=1e-5, what=f"loss part {name}")
  print(f"{run_name}: loss max abs err {rel:.3g}, final z {ez:.3g}, alpha {ea:.3g}")


@pytest.mark.parametrize("run_name", ["sgd_mse", "adam_combine"])
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
