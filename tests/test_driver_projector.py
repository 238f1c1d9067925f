"""The rosinality projector on the driver (``jaxinv invert --method projector``): an image's result
does not depend on its position, its batch or the device count; a second batch compiles nothing.

Tiny case: the stylegan2_rosinality fixture's 32 px generator, MSE image loss, 3 steps.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxinv.inversion.methods import projector
from tests import driver_helpers, sweep_helpers as H

# The bound after 3 steps. The same image in a batch of 1, 2 or 3 runs the same per-image
# arithmetic vmapped over another width: XLA:CPU may order float sums differently (~1e-7 relative),
# which 3 Adam steps of lr <= 0.1·ramp carry into the latents at most as lr-sized jumps on
# components whose gradient is within noise of zero. Measured (w / w+): latents 2.7e-6 / 3.9e-7,
# renderings 2.5e-6 / 1.6e-6, losses 1.0e-7 / 9.1e-8 relative; noise maps 7e-9 / 0.
SAME_IMAGE_ATOL = 1e-5
STEPS = 3


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  from PIL import Image
  from jaxinv.cli import main
  g = golden("stylegan2_rosinality")
  root = tmp_path_factory.mktemp("projector_driver")
  assert main(["convert", str(g.path(g.expected["checkpoint"]["file"])), str(root / "G")]) == 0
  rng = np.random.RandomState(0)
  paths = []
  for i in range(5):
    p = root / "images" / f"face{i}.png"
    p.parent.mkdir(exist_ok=True)
    Image.fromarray(rng.randint(0, 256, (40, 40, 3), np.uint8)).save(p)
    paths.append(str(p))
  return root, paths


def _method(root, w_plus):
  from jaxinv.models import registry
  gen = registry.load_model(root / "G", expect_family="stylegan2")
  cfg = projector.ProjectorConfig(steps=STEPS, image_loss="mse", w_plus=w_plus, n_mean_latent=64)
  return projector.Method.create(gen.module, gen.params, cfg), gen.config.resolution


@pytest.mark.parametrize("w_plus", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["w", "wp"])   # ~40 s each on the shared 2-core machine
def test_same_image_same_result_and_second_batch_compiles_nothing(setup, w_plus):
  from jaxinv.io import images as image_io
  root, paths = setup
  method, res = _method(root, w_plus)
  data = {"names": [f"face{i}" for i in range(len(paths))],
          "target": image_io.load_images(paths, min(res, 256), loader="psp")}
  worst = driver_helpers.check_identity_and_compiles(method, data, SAME_IMAGE_ATOL)
  print("projector same-image max differences:", worst)


def test_interrupted_run_resumes_to_the_uninterrupted_result(setup, tmp_path, capsys):
  # The step and its key come from the loop's counter, which the checkpoint carries: steps 2..3
  # after a resume draw the same ε as an uninterrupted run.
  from jaxinv.io import images as image_io
  root, paths = setup
  method, res = _method(root, False)
  data = {"names": [f"face{i}" for i in range(3)],
          "target": image_io.load_images(paths[:3], min(res, 256), loader="psp")}
  driver_helpers.check_resume(method, data, tmp_path / "work")
  assert "at step 2/3" in capsys.readouterr().err


def test_step_keys_come_from_the_image_key(setup):
  # Each image's noise maps and per-step ε come from its own key: two images with equal targets
  # but other names get other results; the projector hides no step counter in its variables.
  from jaxinv.inversion import run
  root, _ = setup
  method, res = _method(root, False)
  target = np.zeros((2, res, res, 3), np.float32)
  out = run.run(method, ["a", "b"], lambda idx: {"target": target[idx]}, seed=1, batch=2,
                progress=False)
  assert set(out.arrays) == {"latent"} | {f"noise{i}" for i in range(method.module.config.num_convs)}
  assert np.abs(out.arrays["noise0"][0] - out.arrays["noise0"][1]).max() > 0.1
  assert out.stepwise["loss"].shape == (STEPS, 2)


def _cmd(setup, out, batch, extra=()):
  root, paths = setup
  return [sys.executable, "-m", "jaxinv", "invert", "--method", "projector", "--generator",
          str(root / "G"), "--images", *paths, "--loss", "mse", "--steps", str(STEPS), "--batch",
          str(batch), "--out", str(out), *extra]


def _cli(setup, out, batch, extra=(), stderr=None, **env):
  p = subprocess.run(_cmd(setup, out, batch, extra), cwd=H.REPO, env=H.env(**env),
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  if stderr is not None:
    stderr.append(p.stderr)
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow   # two subprocesses, each compiling the projector step (~60 s on 2 shared cores)
def test_cli_on_8_devices_equals_1(setup, tmp_path):
  one = _cli(setup, tmp_path / "one", 1)
  eight = _cli(setup, tmp_path / "eight", 8, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  assert list(one["names"]) == list(eight["names"]) == [f"face{i}" for i in range(5)]
  assert one["loss"].shape == (STEPS, 5) and one["latent"].shape[0] == 5
  for k in one:
    if k != "names":
      np.testing.assert_allclose(eight[k], one[k], rtol=0, atol=SAME_IMAGE_ATOL, err_msg=k)
  cfg = json.loads((tmp_path / "eight" / "config.json").read_text())
  assert cfg["device_count"] == 8 and cfg["settings"]["method"] == "projector"
  assert cfg["settings"]["method_settings"]["projector"]["steps"] == STEPS
  assert (tmp_path / "eight" / "face0.png").is_file() and not (tmp_path / "eight" / ".jaxinv-work").exists()


@pytest.mark.parametrize("extra, words", [
    (["--space", "multi"], "--space w or wp"),
    (["--optimizer", "sgd"], "Adam"),
    (["--task", "inpaint"], "--task"),
    (["--loss", "vgg"], "--loss mse"),
    (["--steps", "0"], "--steps"),
])
def test_bad_settings_are_one_line_user_errors(setup, tmp_path, capsys, extra, words):
  from jaxinv.cli import main
  root, paths = setup
  out = tmp_path / "out"
  capsys.readouterr()
  rc = main(["invert", "--method", "projector", "--generator", str(root / "G"), "--images",
             paths[0], "--out", str(out), *extra])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1 and words in err[0], err
  assert not out.exists()


@pytest.mark.slow   # three subprocesses compiling the projector step
def test_two_processes_equal_one(setup, tmp_path):
  # Two processes take every other batch of 1 image; the first collects: the same programs on the
  # same images as one process, so the result is bit-equal.
  root, paths = setup
  one = _cli(setup, tmp_path / "one", 1)
  out = tmp_path / "two"
  port = H.free_port()
  cmd = [sys.executable, "-m", "jaxinv", "invert", "--method", "projector", "--generator",
         str(root / "G"), "--images", *paths, "--loss", "mse", "--steps", str(STEPS), "--batch", "1",
         "--out", str(out)]
  procs = [subprocess.Popen(cmd, cwd=H.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=H.env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                                 JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=i))
           for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  with np.load(out / "result.npz") as f:
    two = {k: f[k] for k in f.files}
  for k in one:
    np.testing.assert_array_equal(two[k], one[k], err_msg=k)
  assert json.loads((out / "config.json").read_text())["process_count"] == 2


@pytest.mark.slow   # two subprocesses (one killed) compiling the projector step
def test_cli_kill_and_resume(setup, tmp_path):
  root, paths = setup
  clean = _cli(setup, tmp_path / "clean", 1, extra=("--chunk", "1"))
  out = tmp_path / "out"
  # the first image finished, the second stopped after a step
  H.kill_when(_cmd(setup, out, 1, ("--chunk", "1")), lambda: H.driver_checkpoints(out),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3})
  work = out / ".jaxinv-work"
  assert not (out / "result.npz").exists()
  err = []
  resumed = _cli(setup, out, 1, extra=("--chunk", "1"), stderr=err)
  assert "resuming" in err[0] and "at step" in err[0], err[0][-2000:]
  for k in clean:
    np.testing.assert_array_equal(resumed[k], clean[k], err_msg=k)   # same programs: bit-equal
  assert not work.exists()
