"""DGP loss pieces: D-feature L1 (every ftr_num), and the full step-1 objective with its gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from jaxinv.models import biggan
from tests.conftest import assert_close
from tests.golden import _dgp

LOSS_RTOL = 1e-5      # README: losses 1e-5 relative (issue: <= 1e-4)
GRAD_ATOL = 1e-6      # dLoss/dz at step 1 (|grad| ~ 1e-2)


@pytest.fixture(scope="module")
def models(golden):
  gd = golden("dgp")
  return _dgp.load_g(gd), _dgp.load_d(gd)


def test_feature_loss_every_ftr_num(golden, models):
  gd = golden("dgp")
  _, (D, dp) = models
  f = gd.npz("d_features.npz")
  _, feats = jax.jit(lambda x: D.apply({"params": dp}, x))(jnp.asarray(_dgp.nhwc(f["d_in"])))
  rec = gd.expected["disc_feature_loss"]
  for pair, (fake, real) in {"gen0_vs_real0": (2, 0), "real1_vs_real0": (1, 0)}.items():
    ff = [h[fake:fake + 1] for h in feats]
    rf = [h[real:real + 1] for h in feats]
    vals = rec["values"][pair]
    n = len(feats)
    for k in range(1, n + 1):
      assert_close(dgp.feature_loss(ff, rf, k), vals[f"ftr_num_{k}"], rtol=LOSS_RTOL,
                   what=f"{pair} ftr_num {k}")
      assert_close(dgp._masked_feature_loss(ff, rf, dgp.ftr_mask(k, n)), vals[f"ftr_num_{k}"],
                   rtol=LOSS_RTOL, what=f"{pair} masked ftr_num {k}")
    per_layer = [float(jnp.mean(jnp.abs(a - b))) for a, b in zip(ff, rf)]
    assert_close(per_layer, vals["per_layer_l1"], rtol=LOSS_RTOL, what=f"{pair} per-layer L1")


def _step1(gd, models, task):
  (G, gp), (D, dp) = models
  t = gd.npz("trajectories.npz")
  te = gd.expected["trajectories"][task]
  s = dgp.Schedule.from_lists(te["config"], dgp_mode=te["dgp_mode"])
  st = s.stages[0]
  origin = _dgp.u8_to_nhwc(t[f"traj_{task}_target_origin_uint8"])
  if f"traj_{task}_target" in t.files:
    target = _dgp.nhwc(t[f"traj_{task}_target"])
  else:
    target = dgp.target_of(origin, s.dgp_mode, s.factor)
  z0, y0 = jnp.asarray(t[f"traj_{task}_z0"][0]), jnp.asarray(t[f"traj_{task}_y0"][0], jnp.int32)
  tf = [h[0] for h in D.apply({"params": dp}, jnp.asarray(target))[1]]
  data = {"target": jnp.asarray(target[0]), "target_feats": tf, "y": y0,
          "weights": jnp.asarray([st.w_D_loss, st.w_mse, s.w_nll]),
          "ftr_mask": jnp.asarray(dgp.ftr_mask(st.ftr_num, len(tf)))}
  if st.use_in:
    emb = jnp.asarray(gp["shared"]["weight"])[y0][None]
    data["in_params"] = biggan.init_in_params(G, gp, z0[None], emb)[1]
  obj = functools.partial(dgp._objective, G=G, D=D, use_in=st.use_in,
                          degrade=dgp.degradation(s.dgp_mode, s.factor))
  (loss, aux), grads = jax.jit(jax.value_and_grad(obj, has_aux=True))(
      {"z": z0, "G": gp}, data, {"D": dp})
  return te, t, s, aux, grads


def _check_step1(golden, models, task):
  gd = golden("dgp")
  te, t, s, aux, grads = _step1(gd, models, task)
  ref = te["steps"][0]
  for k in ("ftr_loss", "mse_loss", "nll", "l1_loss", "loss"):
    err = assert_close(aux[k], ref[k], rtol=LOSS_RTOL, atol=1e-7, what=f"{task} step 1 {k}")
    print(f"{task} {k}: abs err {err:.3g}")
  err = assert_close(grads["z"][None], t[f"traj_{task}_z_grad_step1"], atol=GRAD_ATOL,
                     what=f"{task} dLoss/dz step 1")
  print(f"{task} dLoss/dz max abs err {err:.3g}")
  groups = biggan.trainable_mask(grads["G"], s.update_embed)
  sq = np.zeros(len(ref["G_group_grad_norm"]))
  for gid, g in zip(jax.tree_util.tree_leaves(groups), jax.tree_util.tree_leaves(grads["G"])):
    if gid >= 0:
      sq[gid] += float(jnp.sum(jnp.square(g)))
  assert_close(np.sqrt(sq), ref["G_group_grad_norm"], rtol=1e-4, what=f"{task} G group grad norms")
  assert_close(jnp.linalg.norm(grads["z"]), ref["z_grad_norm"], rtol=1e-4, what="z grad norm")


def test_step1_objective_sr(golden, models):
  _check_step1(golden, models, "SR")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["colorization", "inpainting", "jitter"])
def test_step1_objective_other_tasks(golden, models, task):
  _check_step1(golden, models, task)
