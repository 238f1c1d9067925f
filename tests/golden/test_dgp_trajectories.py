"""DGP's progressive runs (select_z's z0 -> 6 steps with generator fine-tuning) vs the official run().

Slow: each task compiles one fine-tuning program (G and D forward + backward, per-image
generator copy). Run with ``-m slow``.
"""

import jax
import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from jaxinv.models import biggan
from tests.conftest import assert_close, expected_at_collection, params
from tests.golden import _dgp

TASKS = list(expected_at_collection("dgp").get("trajectories", {}))

# Adam with beta1 = 0 normalises each coordinate: where the true gradient is ~0 (cancellations,
# conv1.bias under use_in) float noise decides the sign and the update is up to +-lr per step, so
# parameters, z and images drift by up to ~k*lr after k steps while the losses stay smooth.
# README measured (JAX f32 vs fixture, 6 steps): per-step losses <= 3.2e-5 relative; official f64
# vs the f32 fixture: same size (x_final 5.4e-4 colorization), so this is the float noise floor.
# Losses every step: 1e-4 relative (3x the measured 3.2e-5; smooth in the parameters).
LOSS_RTOL = 1e-4
LOSS_ATOL = 1e-8      # terms with weight 0 / ~0 values
# z before each step: z moves only through its own Adam updates (lr_z <= 2e-3 here); a sign-flipped
# near-zero-gradient coordinate moves by <= 2*lr_z per step. Measured <= 6.5e-5 over 6 steps; the
# README's 1e-3 is 15x that and < 2*lr_z of one flipped step, so real errors still fail.
Z_ATOL = 1e-3
# z before step 2 is tight: with beta1 = 0 the first Adam update is lr_z * g / (|g| + eps), i.e.
# lr_z * sign(g) up to lr_z * eps / |g| (<= 4.5e-6 here), and z moves only through it. A
# coordinate can differ only by float rounding of z (|z| <= ~3: ~2e-7) unless its step-1 gradient
# is within the gradient noise (test_dgp_loss: |dLoss/dz error| <= GRAD_NOISE, measured 2.6e-8)
# and flips sign; this case's smallest |g| is 2.2e-6. Flippable coordinates get 2 * lr_z.
Z_EARLY_ATOL = 1e-6
GRAD_NOISE = 1e-6
# x_final after 6 generator updates (lr_G up to 2e-4 per group): README 1e-2 (worst measured 5.4e-4,
# the hidden 256 px colorization case needs 5.3e-3).
X_ATOL = 1e-2
# Final parameter L2 norms: README <= 3e-3 relative, set by conv1.bias of use_in tasks (pure noise).
PARAM_RTOL = 3e-3


@pytest.fixture(scope="module")
def models(golden):
  gd = golden("dgp")
  return _dgp.load_g(gd), _dgp.load_d(gd)


@pytest.mark.slow
@pytest.mark.parametrize("task", params(TASKS))
def test_trajectory(golden, models, task):
  gd = golden("dgp")
  (G, gp), (D, dp) = models
  t = gd.npz("trajectories.npz")
  te = gd.expected["trajectories"][task]
  s = dgp.Schedule.from_lists(te["config"], dgp_mode=te["dgp_mode"])
  origin = _dgp.u8_to_nhwc(t[f"traj_{task}_target_origin_uint8"])
  target = (_dgp.nhwc(t[f"traj_{task}_target"]) if f"traj_{task}_target" in t.files
            else dgp.target_of(origin, s.dgp_mode, s.factor))
  res = dgp.run(G, gp, D, dp, target, t[f"traj_{task}_z0"], t[f"traj_{task}_y0"], s)
  worst = {}
  for k, step in enumerate(te["steps"]):
    for name in ("ftr_loss", "mse_loss", "nll", "l1_loss", "loss"):
      e = assert_close(res.records[name][k, 0], step[name], rtol=LOSS_RTOL, atol=LOSS_ATOL,
                       what=f"{task} step {k + 1} {name}")
      worst[name] = max(worst.get(name, 0.0), e / abs(step[name]) if step[name] else e)
    want_z = t[f"traj_{task}_z_step{k + 1}_before"]
    if k < 2:   # z0 itself, then after the first Adam update
      steady = np.abs(t[f"traj_{task}_z_grad_step1"]).reshape(want_z.shape) > GRAD_NOISE
      assert_close(np.asarray(res.records["z"][k])[steady], want_z[steady], atol=Z_EARLY_ATOL,
                   what=f"{task} z before step {k + 1} (|g1| above noise)")
      assert_close(res.records["z"][k], want_z, atol=Z_EARLY_ATOL + 2 * te["steps"][0]["lr_z"],
                   what=f"{task} z before step {k + 1} (all)")
    worst["z"] = max(worst.get("z", 0.0), assert_close(
        res.records["z"][k], want_z, atol=Z_ATOL, what=f"{task} z before step {k + 1}"))
  worst["z_final"] = assert_close(res.z, t[f"traj_{task}_z_final"], atol=Z_ATOL, what="z_final")
  worst["x_final"] = assert_close(_dgp.nchw(res.x), t[f"traj_{task}_x_final"], atol=X_ATOL,
                                  what=f"{task} x_final")
  print(f"{task}: " + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))
  _check_params(te, s, res, task)


def _check_params(te, s, res, task):
  """Final parameter norms (L2 per state_dict entry) of every trained tensor."""
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)[0]
          for path, v in jax.tree_util.tree_flatten_with_path(res.g_params)[0]}
  worst = 0.0
  for name, rec in te["final_param_stats"].items():
    parts = name.split(".")
    if parts[-1] in ("u0", "sv0", "stored_mean", "stored_var") or ".in1." in name or ".in2." in name:
      continue
    if s.stages[0].use_in and name.endswith("conv1.bias"):
      continue  # README: pure float noise under use_in (zero gradient in exact arithmetic)
    if parts[0] == "blocks":
      path = "/".join([f"blocks_{parts[1]}_{parts[2]}"] + parts[3:])
    elif parts[0] == "output_layer":
      path = "/".join([f"output_layer_{parts[1]}"] + parts[2:])
    else:
      path = "/".join(parts)
    assert biggan.param_group(path, s.update_embed) is not None or rec["delta_l2"] == 0, name
    l2 = float(np.linalg.norm(flat[path].astype(np.float64)))
    rel = abs(l2 - rec["l2"]) / rec["l2"]
    worst = max(worst, rel)
    assert rel <= PARAM_RTOL, f"{task} {name}: L2 {l2} vs {rec['l2']} (rel {rel:.3g})"
  print(f"{task}: final param L2 max rel err {worst:.3g}")
