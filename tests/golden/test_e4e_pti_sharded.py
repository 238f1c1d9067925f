"""PTI sharded over 4 forced host devices (4 images, 4 generator copies) equals the one-device
run of the same batch and draws. Per device the program vmaps 1 copy instead of 4, so XLA
compiles other fusions: float noise, bounded as the golden PTI comparisons (README of
e4e_pti, from its 1-vs-2-thread reruns): pivot <= 1e-5, renders <= 1e-4 · max(1, max|x|)
(|x| < 10 here, so 1e-3), weight deltas <= 5e-5 (Adam moves entries with near-zero gradients
by ~lr regardless of their sign noise; measured here 1.9e-5)."""

import json
import subprocess
import sys

import pytest

from tests import sweep_helpers as H
from tests.conftest import golden_root

SCRIPT = r"""
import json, sys
import jax, numpy as np
from tests.conftest import Golden
from tests.golden import _pti_common as C
from jaxinv.inversion.methods import pti
g = Golden("e4e_pti")
module, params = C.generator(g)
z = g.npz("fixtures.npz"); a = {k: z[k] for k in z.files if k.startswith("pti.")}
cfg = C.config(g, first_inv_steps=3, max_pti_steps=2)
lp = C.lpips_fn(g); f = C.standin_features(a)
x = np.repeat(C.nhwc(a["pti.image"]), 4, 0) * np.float32([1, .9, .8, .7])[:, None, None, None]
runs = {}
for name, dev in (("one", jax.devices()[:1]), ("four", jax.devices()[:4])):
  runs[name] = pti.invert(module, params, x, cfg, f, lp, jax.random.PRNGKey(0), batch=4,
                          devices=dev)
diff = {k: float(max(np.abs(u - v).max() for u, v in zip(jax.tree.leaves(runs["one"][k]),
                                                          jax.tree.leaves(runs["four"][k]))))
        for k in ("w_pivot", "delta", "images")}
print("RESULT " + json.dumps({"devices": len(jax.devices()), "diff": diff,
                              "steps": runs["four"]["steps"].tolist()}))
"""


@pytest.mark.slow   # a subprocess compiling both phases twice (~2-3 min on 2 shared cores)
def test_four_devices_match_one():
  env = H.env(XLA_FLAGS="--xla_force_host_platform_device_count=4",
              JAXINV_GOLDEN=str(golden_root()))
  p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=H.REPO, env=env, capture_output=True,
                     text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-4000:]
  res = json.loads(p.stdout.split("RESULT ", 1)[1])
  print(res)
  assert res["devices"] == 4 and res["steps"] == [2, 2, 2, 2]
  bounds = {"w_pivot": 1e-5, "images": 1e-3, "delta": 5e-5}
  for k, v in res["diff"].items():
    assert v <= bounds[k], f"4 devices vs 1: {k} differs by {v:.3g}"
