"""PTI on the driver: both phases run in chunks that checkpoint their state, so an interrupted
batch resumes — in the projector or in the generator tuning — to the uninterrupted result; the
chunked loop equals the golden-tested whole-phase functions.

Tiny case: the e4e_pti fixture's 32 px generator, its perceptual stand-in for phase 1, its
LPIPS-alex for phase 2, 3 + 3 steps in chunks of 2 (phase-1 chunks end at steps 2, 3, phase-2
ones at 5, 6).
"""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxinv.inversion import run
from jaxinv.inversion.methods import pti
from tests import driver_helpers, sweep_helpers as H

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


# The phase-1 stop is slow (~40 s on 2 cores): the phase-2 stop resumes through
# both phases' programs already, in the default suite.
@pytest.mark.parametrize("after_step, phase", [pytest.param(1, "projector", marks=pytest.mark.slow),
                                               (STEPS + 1, "tuning")])
def test_interrupted_run_resumes_to_the_uninterrupted_result(setup, clean, tmp_path, capsys,
                                                             after_step, phase):
  method, data = setup
  driver_helpers.check_resume(method, data, tmp_path / "work", batch=2, after_step=after_step,
                              clean=clean)
  err = capsys.readouterr().err
  resumed_at = 2 if phase == "projector" else 5
  assert f"at step {resumed_at}/{2 * STEPS}" in err, err[-2000:]


# ----------------------------------------------------------------------------- through the CLI

@pytest.fixture(scope="module")
def cli_setup(golden, tmp_path_factory):
  from jaxinv.cli import main
  from tests.conftest import golden_root
  g = golden("e4e_pti")
  root = tmp_path_factory.mktemp("pti_cli")
  assert main(["convert", str(g.path(g.expected["e4e"]["rosinality_conversion"]["file"])),
               str(root / "G")]) == 0
  lp = g.expected["pti"]["build"]["lpips"]
  assert main(["convert", str(g.path(lp["lin_file"])), str(root / "lpips"), "--option",
               f"backbone={g.path(lp['backbone_file'])}"]) == 0
  base = golden_root().parent.parent
  images = list(dict.fromkeys([str(base / g.expected["case_config"]["pti"]["image"])]
                              + [str(base / im["path"]) for im in g.expected["e4e"]["images"]]))
  return root, images


def _cmd(cli_setup, out, batch):
  root, images = cli_setup
  return [sys.executable, "-m", "jaxinv", "invert", "--method", "pti", "--generator",
          str(root / "G"), "--lpips", str(root / "lpips"), "--projector-lpips", str(root / "lpips"),
          "--images", *images, "--projector-steps", str(STEPS), "--pti-steps", str(STEPS),
          "--locality-reg", "--chunk", str(CHUNK), "--batch", str(batch), "--out", str(out)]


def _cli(cli_setup, out, batch, stderr=None, **env):
  p = subprocess.run(_cmd(cli_setup, out, batch), cwd=H.REPO, env=H.env(**env),
                     capture_output=True, text=True, timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  if stderr is not None:
    stderr.append(p.stderr)
  return _outputs(out)


def _outputs(out):
  from jaxinv.io.deltas import flatten, load_deltas
  with np.load(out / "result.npz") as f:
    res = {k: f[k] for k in f.files}
  res.update({f"delta/{k}": v for k, v in
              flatten(load_deltas(str(out / "deltas"), names=res["names"])).items()})
  return res


@pytest.fixture(scope="module")
def cli_single(cli_setup, tmp_path_factory):
  out = tmp_path_factory.mktemp("pti_single") / "out"
  _cli(cli_setup, out, 1)
  return out, _outputs(out)


@pytest.mark.slow   # two subprocesses compiling both PTI phases
def test_cli_on_8_devices_equals_1(cli_setup, cli_single, tmp_path):
  # 8 forced devices: every image's copy on its own device (a batch of 1 per device, as the
  # single-device run's batches of 1): the same arithmetic on the same shapes, but the shard_map-ed
  # program is compiled into other fusions (float order only); bounds as the chunked-vs-whole
  # test above. Measured: pivot 3.0e-8, losses 3.6e-7, deltas 1.8e-5 (layer6 weight), steps equal.
  _, one = cli_single
  out = tmp_path / "eight"
  eight = _cli(cli_setup, out, 8, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  assert list(one["names"]) == list(eight["names"]) and len(one["names"]) >= 2
  worst = {k: float(np.abs(eight[k].astype(np.float64) - one[k]).max())
           for k in one if k != "names"}
  print("PTI CLI 8 devices vs 1:", worst)
  bound = lambda k: 5e-5 if k.startswith("delta/") else 1e-5
  assert all(v <= bound(k) for k, v in worst.items()), worst
  cfg = json.loads((out / "config.json").read_text())
  assert cfg["device_count"] == 8 and not (out / ".jaxinv-work").exists()


@pytest.mark.slow   # three subprocesses compiling both PTI phases
def test_cli_two_processes_equal_one(cli_setup, cli_single, tmp_path):
  # Two processes take every other batch of 1 image; the first collects: the same programs on
  # the same images as one process, so the result is bit-equal.
  _, one = cli_single
  out = tmp_path / "two"
  H.run_processes(_cmd(cli_setup, out, 1), timeout=900)
  two = _outputs(out)
  for k in one:
    np.testing.assert_array_equal(two[k], one[k], err_msg=k)
  assert json.loads((out / "config.json").read_text())["process_count"] == 2


@pytest.mark.slow   # two subprocesses (one killed) compiling both PTI phases
def test_cli_kill_and_resume(cli_setup, cli_single, tmp_path):
  _, clean = cli_single
  out = tmp_path / "out"
  # the first image finished, the second stopped after a chunk
  H.kill_when(_cmd(cli_setup, out, 1), lambda: H.driver_checkpoints(out),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3}, timeout=900)
  assert not (out / "result.npz").exists()
  err = []
  resumed = _cli(cli_setup, out, 1, stderr=err)
  assert "resuming" in err[0] and "at step" in err[0], err[0][-2000:]
  for k in clean:
    np.testing.assert_array_equal(resumed[k], clean[k], err_msg=k)   # same programs: bit-equal
  assert not (out / ".jaxinv-work").exists()
