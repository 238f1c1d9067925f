"""Task-wrapped mGANprior trajectories (colorization, SR, inpainting) vs ``inversion.npz`` task_*.

The official task scripts wrap the base ``Combine`` loss: ``Color_loss``, ``SR_loss`` and
``masked_loss`` compare ``degrade(G(z, α))`` with ``degrade(target)``; here that is
``objective(task.degrade(render(v)), task.observe(target))`` through the shared loop.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import tasks
from jaxinv.inversion import objectives, spaces
from jaxinv.inversion.methods import mganprior
from tests.conftest import assert_close
from tests.golden.mganprior_common import converted, nchw, nhwc

LATENT_ATOL = 1e-4   # SGD latents
LOSS_RTOL = 1e-4     # task losses
IMAGE_ATOL = 1e-4

# expected.json task name → (jaxinv task, the wrapper's name in the record's loss text)
TASK_NAMES = {"colorization": "colorize", "superresolution": "super-resolve", "inpainting": "inpaint"}


@pytest.fixture(scope="module")
def models(golden, tmp_path_factory):
  return converted(golden, tmp_path_factory, "pggan"), converted(golden, tmp_path_factory, "vgg")


def _task(g, name, rec, res):
  text = rec["loss"]
  jname = TASK_NAMES[name]
  if jname == "super-resolve":
    m = re.search(r"SR_loss\(get_loss\([^)]*\),\s*\"(\w+)\",\s*factor=(\d+)", text)
    return tasks.make_task(jname, res, factor=int(m.group(2)), downsample=m.group(1))
  if jname == "inpaint":
    src = re.search(r"parsing_mask\(([^)]+)\)", g.expected["inversion"]["task_mask_made_by"]).group(1)
    return tasks.make_task(jname, res, mask=g.dir / src)
  return tasks.make_task(jname, res)


def _config(g, rec):
  e = g.expected["inversion"]
  base = e["runs"]["adam_combine"]["loss_args"]  # the multi_code_inversion Combine settings
  vgg_lambda = float(re.search(r"vgg_lambda=([0-9.]+)", rec["loss"]).group(1))
  loss_cfg = objectives.LossConfig(
      loss="combine", l1_lambda=base["l1_lambda"], l2_lambda=base["l2_lambda"], vgg_lambda=vgg_lambda,
      vgg=objectives.VGGLossConfig(num_modules=base["vgg_layer"], size=base["image_size"],
                                   kind=base["vgg_loss_type"].lower()))
  lr = float(re.search(r"lr=([0-9.eE+-]+)", rec["optimizer"]).group(1))
  return mganprior.MGANpriorConfig(codes=e["N"], layer=e["composing_layer"], loss=loss_cfg,
                                   optimizer="sgd", lr=lr, steps=rec["steps"])


def _names(g):
  return list(g.expected["inversion"]["tasks"])


def test_task_mask(golden):
  g = golden("mganprior")
  d = g.npz("inversion.npz")
  res = g.expected["pggan"]["constructor_kwargs"]["resolution"]
  t = _task(g, "inpainting", g.expected["inversion"]["tasks"]["inpainting"], res)
  assert_close(t.mask, nhwc(d["task_mask"])[0], atol=0, what="task mask")


@pytest.mark.parametrize("name", ["colorization", "superresolution", "inpainting"])
def test_task_trajectory(golden, models, name):
  g = golden("mganprior")
  assert name in _names(g)
  rec = g.expected["inversion"]["tasks"][name]
  d = g.npz("inversion.npz")
  gen, vgg = models
  res = g.expected["pggan"]["constructor_kwargs"]["resolution"]
  task = _task(g, name, rec, res)
  cfg = _config(g, rec)
  target = nhwc(d["target"])
  obs = np.asarray(task.observe(jnp.asarray(target)))
  init = {"z": d["init_z"], "alpha": d["init_alpha"]}
  out = mganprior.invert(gen.module, gen.params, obs, cfg, vgg_params=vgg.params, init=init,
                         degrade=task.degrade, progress=False)
  p = f"task_{name}"
  el = assert_close(out.loss[:, 0], d[f"{p}_loss"], rtol=LOSS_RTOL, what=f"{name} loss")
  assert_close(out.loss[:, 0], rec["loss_per_step"], rtol=LOSS_RTOL, what=f"{name} json loss")
  ez = assert_close(out.variables["z"], d[f"{p}_final_z"], atol=LATENT_ATOL, what=f"{name} z")
  ea = assert_close(out.variables["alpha"], d[f"{p}_final_alpha"], atol=LATENT_ATOL, what=f"{name} alpha")
  ei = assert_close(nchw(out.images), d[f"{p}_final_image"], atol=IMAGE_ATOL, what=f"{name} image")
  print(f"{name}: loss {el:.3g}, z {ez:.3g}, alpha {ea:.3g}, image {ei:.3g}")


@pytest.mark.slow  # one more compile per task; the trajectories above already pin step 1
@pytest.mark.parametrize("name", ["colorization", "superresolution", "inpainting"])
def test_task_gradients_at_init(golden, models, name):
  g = golden("mganprior")
  rec = g.expected["inversion"]["tasks"][name]
  d = g.npz("inversion.npz")
  gen, vgg = models
  res = g.expected["pggan"]["constructor_kwargs"]["resolution"]
  task = _task(g, name, rec, res)
  cfg = _config(g, rec)
  space = spaces.MultiCode(gen.module, cfg.layer, cfg.codes)
  loss_fn = mganprior.make_loss_fn(space, cfg.loss, task.degrade)
  v = {"z": jnp.asarray(d["init_z"][0]), "alpha": jnp.asarray(d["init_alpha"][0])}
  data = {"observation": task.observe(jnp.asarray(nhwc(d["target"])[0]))}
  (loss, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
      v, data, {"generator": gen.params, "vgg": vgg.params})
  assert_close(loss, rec["loss_per_step"][0], rtol=LOSS_RTOL, what=f"{name} loss at init")
  for k in ("z", "alpha"):
    want = d[f"task_{name}_grad_{k}0"][0]
    # the VGG term's float32 summation noise is ~2e-4 of the gradient scale (core tests measured)
    assert_close(grads[k], want, atol=5e-4 * np.abs(want).max(), rtol=1e-4, what=f"{name} grad {k}")
