"""PTI phase 1 (the w projector) and the generator it runs on, against the official PTI run
(fixture e4e_pti), fed with the recorded random draws.

Tolerances (the fixture's 1-vs-2-thread reruns give the floors): generator forward
<= 1e-4 * max(1, max|x|) (floor 1.1e-7; the NVIDIA -> rosinality conversion itself differs by
up to 4.5e-6 in images, README §PTI.1); per-step losses <= 1e-4 relative (floor 0); w after
each step and the pivot <= 1e-5 absolute (floor 1.2e-7, |w| <= 1.5); noise maps after each
renormalisation <= 1e-4 absolute (floor 0, values ~N(0, 1)). The negative controls (lr 0.005:
w_pivot off by 0.032; unbiased renormalisation: 3.7e-4) exceed these.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion.methods import pti
from jaxinv.io import images as image_io
from tests.conftest import assert_close, golden_root
from tests.golden import _pti_common as C

LOSS_RTOL = 1e-4
W_ATOL = 1e-5
NOISE_ATOL = 1e-4
FORWARD_RTOL = 1e-4


@pytest.fixture(scope="module")
def case(golden):
  g = golden(C.FOLDER)
  z = g.npz("fixtures.npz")
  arrays = {k: z[k] for k in z.files if k.startswith("pti.")}
  module, params = C.generator(g)
  return g, arrays, module, params


def test_preprocessing(case):
  """PTI's input: RGB, Lanczos resize to the generator size, u8/255*2-1; target in [0, 255]."""
  g, a, module, params = case
  path = golden_root().parent.parent / g.expected["case_config"]["pti"]["image"]
  u8 = image_io.load_pti_uint8(path, module.config.resolution)
  np.testing.assert_array_equal(u8, a["pti.image_uint8"])
  x = image_io.load_images([path], module.config.resolution, loader="pti")
  np.testing.assert_array_equal(x, C.nhwc(a["pti.image"]))
  assert_close(C.nhwc(a["pti.proj.target"][None]), (x + 1) / 2 * 255, atol=1e-4, what="target")


def test_generator_checks(case):
  g, a, module, params = case
  v = {"params": params}
  w = module.apply(v, jnp.asarray(a["pti.G.check_z"]), method=module.mapping)
  ws = module.apply(v, w, 1.0, method=module.truncate)
  assert_close(ws, a["pti.G.check_ws"], atol=FORWARD_RTOL * max(1, np.abs(ws).max()), what="ws")
  wt = module.apply(v, w, 0.5, method=module.truncate)
  assert_close(wt, a["pti.G.check_ws_trunc05"], atol=FORWARD_RTOL * max(1, np.abs(wt).max()),
               what="ws truncated")
  for mode, key in (("const", "pti.G.check_img_const"), ("zero", "pti.G.check_img_none")):
    img = C.nchw(module.apply(v, None, jnp.asarray(a["pti.G.check_ws"]), noise=mode,
                              method=module.synthesis))
    assert_close(img, a[key], atol=FORWARD_RTOL * max(1, np.abs(a[key]).max()), what=key)


def test_projector_trajectory(case):
  g, a, module, params = case
  cfg = C.config(g)
  run = g.expected["pti"]["run"]
  lr, nf = pti.projector_schedule(cfg)
  np.testing.assert_allclose(lr, run["proj"]["lr"], rtol=1e-12, atol=1e-15)
  names = run["noise_names"]
  noise_init = [a[f"pti.proj.noise_init.{n}"][None] for n in names]
  eps = a["pti.proj.eps"][:, :, 0]                                  # [T, 1, D]
  target = C.nhwc(a["pti.proj.target"][None])
  features = C.standin_features(a)
  tf = features(jnp.asarray(target))
  assert_close(tf, a["pti.proj.target_features"], atol=1e-6, what="stand-in target features")
  res = jax.jit(lambda t, n, e: pti.project_w(module, params, t, features, cfg, n, e,
                                              z_samples=a["pti.proj.z_samples"]))(
      target, noise_init, eps)
  assert_close(res["w_avg"][None], a["pti.proj.w_avg"], atol=W_ATOL, what="w_avg")
  assert abs(float(res["w_std"]) - run["w_std"]) <= 1e-5 * run["w_std"]
  for key, got in (("loss", res["loss"]), ("dist", res["dist"]), ("reg_loss", res["reg"])):
    exp = a[f"pti.proj.{key}"]
    assert_close(np.asarray(got)[:, 0], exp, rtol=LOSS_RTOL, what=f"phase 1 {key}")
  assert_close(np.asarray(res["w"])[:, 0], a["pti.proj.w_after_step"][:, 0, 0], atol=W_ATOL,
               what="w after each step")
  for i, n in enumerate(names):
    assert_close(np.asarray(res["noise"][i])[:, 0], a[f"pti.proj.noise_after_norm.{n}"],
                 atol=NOISE_ATOL, what=f"noise {n}")
  assert_close(res["w_pivot"], a["pti.w_pivot"], atol=W_ATOL, what="w_pivot")
