"""PTI on the driver: both phases run in chunks that checkpoint their state, so an interrupted
batch resumes — in the projector or in the generator tuning — to the uninterrupted result; the
chunked loop equals the golden-tested whole-phase functions.

Tiny case: the e4e_pti fixture's 32 px generator, its perceptual stand-in for phase 1, its
LPIPS-alex for phase 2, 3 + 3 steps in chunks of 2 (phase-1 chunks end at steps 2, 3, phase-2
ones at 5, 6).
"""

import jax
import numpy as np
import pytest

from jaxinv.inversion import run
from jaxinv.inversion.methods import pti
from tests import driver_helpers

STEPS = 3
CHUNK = 2


@pytest.fixture(scope="module")
def setup(golden):
  from tests.golden import _pti_common as C
  g = golden("e4e_pti")
  module, params = C.generator(g)
  z = g.npz("fixtures.npz")
  standin = {k: z[k] for k in z.files if k.startswith("pti.standin.")}
  image = C.nhwc(z["pti.image"])[:1]
  cfg = C.config(g, first_inv_steps=STEPS, max_pti_steps=STEPS, use_locality_regularization=True)
  method = pti.Method(module, params, cfg, C.standin_features(standin), C.lpips_fn(g))
  x = np.concatenate([image * s for s in (1.0, 0.9, 0.8)]).astype(np.float32)
  return method, {"names": ["a", "b", "c"], "image": x}


@pytest.fixture(scope="module")
def clean(setup):
  method, data = setup
  return driver_helpers.run_named(method, data["names"], data, batch=2, chunk=CHUNK)


@pytest.mark.slow   # ~35 s: compiles both whole-phase programs besides the chunked ones
def test_chunked_loop_equals_the_whole_phase_functions(setup, clean):
  # project_w / tune (the golden-tested functions) scan all steps of a phase in one program; the
  # driver runs the same one-image step in scans of CHUNK steps, which XLA:CPU compiles into other
  # fusions (float order only). Bounds as the sharded PTI test's (tests/golden/test_e4e_pti_sharded,
  # from the fixture's 1-vs-2-thread reruns): pivot and losses <= 1e-5 (the bound after 3
  # steps), renders <= 1e-3, weight deltas <= 5e-5 (Adam moves an entry whose gradient is within
  # noise of zero by ~lr = 3e-4 either way). Measured: pivot 1.2e-7, losses 4.8e-7, renders
  # 2.2e-6, deltas 2.1e-5, steps equal.
  method, data = setup
  m = method
  keys = run.image_keys(driver_helpers.SEED, data["names"])
  d = pti.image_draws(keys, m.module.config, m.cfg)
  p1 = pti.project_w(m.module, m.params, (data["image"] + 1) / 2 * 255, m.features, m.cfg,
                     d["noise_init"], d["eps"])
  p2 = pti.tune(m.module, m.params, p1["w_pivot"], data["image"], m.lpips_fn, m.cfg, d["reg_z"])
  from jaxinv.io.deltas import flatten
  want = {"w_pivot": p1["w_pivot"], "steps": p2["steps"], "loss": p2["loss"],
          "image": p2["final_image"],
          **{f"delta/{k}": v for k, v in flatten(jax.device_get(p2["delta"])).items()}}
  got = dict(clean.arrays, loss=clean.stepwise["loss"], image=clean.images[""])
  assert set(got) == set(want)
  worst = {k: float(np.abs(np.asarray(got[k], np.float64) - np.asarray(want[k])).max())
           for k in want}
  print("chunked vs whole-phase max differences:", worst)
  bound = lambda k: 5e-5 if k.startswith("delta/") else (1e-3 if k == "image" else 1e-5)
  assert all(v <= bound(k) for k, v in worst.items()), worst
  assert list(clean.arrays["steps"]) == [STEPS] * 3


@pytest.mark.parametrize("after_step, phase", [(1, "projector"), (STEPS + 1, "tuning")])
def test_interrupted_run_resumes_to_the_uninterrupted_result(setup, clean, tmp_path, capsys,
                                                             after_step, phase):
  method, data = setup
  driver_helpers.check_resume(method, data, tmp_path / "work", batch=2, after_step=after_step,
                              clean=clean)
  err = capsys.readouterr().err
  resumed_at = 2 if phase == "projector" else 5
  assert f"at step {resumed_at}/{2 * STEPS}" in err, err[-2000:]
