"""NVIDIA's projector on the driver (``jaxinv invert --method nvidia-projector``): an image's result
does not depend on its position, its batch or the device count; a second batch compiles nothing;
an interrupted run resumes to the uninterrupted result.

Tiny case: the nvidia_stylegan fixture's unconditional 32 px StyleGAN2 (the one its projector run
uses), MSE image loss, 3 steps.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxinv.inversion.methods import projector
from tests import driver_helpers, sweep_helpers as H

# The bound after 3 steps; the noise floor is the rosinality projector's (the same
# per-image program vmapped over another width, XLA:CPU summing in another order, ~1e-7 relative,
# carried by 3 Adam steps of lr <= 0.1·ramp): see tests/test_driver_projector.py. Measured here:
# in the report of test_same_image_same_result_and_second_batch_compiles_nothing.
SAME_IMAGE_ATOL = 1e-5
STEPS = 3
# w_avg from RandomState(123) z against the script's own (nvidia_stylegan README §8: independent
# float32 port of the mapping, 1e-5 as tests/golden/test_nvidia_stylegan_projector.py).
W_AVG_ATOL, W_STD_RTOL = 1e-5, 1e-5


def _tag(g):
  tags = [t for t, m in g.expected["models"].items()
          if m.get("projector") and m["kind"] in ("ada", "tf") and not m.get("c_dim")]
  if not tags:
    pytest.skip("no unconditional StyleGAN2 projector model in the nvidia_stylegan fixture")
  return tags[0]


@pytest.fixture(scope="module")
def setup(golden, tmp_path_factory):
  from PIL import Image
  from jaxinv.cli import main
  g = golden("nvidia_stylegan")
  tag = _tag(g)
  root = tmp_path_factory.mktemp("nvidia_projector_driver")
  assert main(["convert", str(g.path(g.expected["models"][tag]["pickle"]["file"])),
               str(root / "G")]) == 0
  rng = np.random.RandomState(0)
  paths = []
  for i in range(5):
    p = root / "images" / f"face{i}.png"
    p.parent.mkdir(exist_ok=True)
    Image.fromarray(rng.randint(0, 256, (40, 40, 3), np.uint8)).save(p)
    paths.append(str(p))
  return g, tag, root, paths


def _method(root, n_mean_latent=64):
  from jaxinv.models import registry
  gen = registry.load_model(root / "G", expect_family="stylegan2")
  cfg = projector.ProjectorConfig.nvidia(steps=STEPS, image_loss="mse", n_mean_latent=n_mean_latent)
  return projector.NvidiaMethod.create(gen.module, gen.params, cfg), gen.config


def _data(paths, res, n=None):
  from jaxinv.io import images as image_io
  paths = paths[:n]
  return {"names": [f"face{i}" for i in range(len(paths))],
          "target": image_io.load_images(paths, min(res, 256))}


def test_same_image_same_result_and_second_batch_compiles_nothing(setup):
  _, _, root, paths = setup
  method, gcfg = _method(root)
  worst = driver_helpers.check_identity_and_compiles(method, _data(paths, gcfg.resolution),
                                                     SAME_IMAGE_ATOL)
  print("nvidia-projector same-image max differences:", worst)


def test_interrupted_run_resumes_to_the_uninterrupted_result(setup, tmp_path, capsys):
  _, _, root, paths = setup
  method, gcfg = _method(root)
  driver_helpers.check_resume(method, _data(paths, gcfg.resolution, 3), tmp_path / "work")
  assert "at step 2/3" in capsys.readouterr().err


def test_w_statistics_are_the_scripts_and_noise_comes_from_the_image_key(setup):
  # w_avg / w_std: the script's (RandomState(123) z), once per method. Noise buffers and w noise:
  # the image's own key, so equal targets under other names start (and end) elsewhere.
  from jaxinv.inversion import run
  g, tag, root, _ = setup
  e = g.expected["models"][tag]["projector"]
  method, gcfg = _method(root, e["w_avg_samples"])
  f = g.npz("fixtures.npz")
  P = f"{tag}.proj."
  np.testing.assert_allclose(method.latent_mean, f[P + "w_avg"][0, 0], rtol=0, atol=W_AVG_ATOL)
  np.testing.assert_allclose(method.latent_std, f[P + "w_std"], rtol=W_STD_RTOL)
  assert "RandomState(123)" in method.settings()["w_avg"]
  target = np.zeros((2, gcfg.resolution, gcfg.resolution, 3), np.float32)
  out = run.run(method, ["a", "b"], {"target": target}, seed=1, batch=2, progress=False)
  buffers = projector.noise_buffer_sizes(method.params)
  assert len(buffers) == len(e["noise_buffers"])
  assert set(out.arrays) == {"w"} | {f"noise{i}" for i in range(len(buffers))}
  assert out.arrays["w"].shape == (2, gcfg.num_ws, gcfg.w_dim)
  assert np.all(out.arrays["w"] == out.arrays["w"][:, :1])
  assert np.abs(out.arrays["noise0"][0] - out.arrays["noise0"][1]).max() > 0.1
  assert np.abs(out.arrays["w"][0] - out.arrays["w"][1]).max() > 0
  assert out.stepwise["loss"].shape == (STEPS, 2)


def _cmd(setup, out, batch, extra=()):
  _, _, root, paths = setup
  return [sys.executable, "-m", "jaxinv", "invert", "--method", "nvidia-projector", "--generator",
          str(root / "G"), "--images", *paths, "--loss", "mse", "--steps", str(STEPS), "--batch",
          str(batch), "--out", str(out), *extra]


def _cli(setup, out, batch, extra=(), **env):
  p = subprocess.run(_cmd(setup, out, batch, extra), cwd=H.REPO, env=H.env(**env),
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow   # two subprocesses, each compiling the projector step
def test_cli_on_8_devices_equals_1(setup, tmp_path):
  one = _cli(setup, tmp_path / "one", 1)
  eight = _cli(setup, tmp_path / "eight", 8, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  assert list(one["names"]) == list(eight["names"]) == [f"face{i}" for i in range(5)]
  assert set(one) == {"w", "loss", "names"} | {k for k in one if k.startswith("noise")}
  assert one["loss"].shape == (STEPS, 5) and one["w"].shape[0] == 5
  worst = {}
  for k in one:
    if k != "names":   # losses (~1e4 here: the 1e5 noise regulariser) relative above 1, as
      scale = np.maximum(1.0, np.abs(one[k])) if k == "loss" else 1.0   # driver_helpers does
      worst[k] = float((np.abs(eight[k].astype(np.float64) - one[k]) / scale).max())
      assert worst[k] <= SAME_IMAGE_ATOL, (k, worst[k])
  print("nvidia-projector 8 devices vs 1 max differences:", worst)
  cfg = json.loads((tmp_path / "eight" / "config.json").read_text())
  assert cfg["device_count"] == 8 and cfg["settings"]["method"] == "nvidia-projector"
  assert cfg["settings"]["method_settings"]["projector"]["steps"] == STEPS
  assert (tmp_path / "eight" / "face0.png").is_file()
  assert not (tmp_path / "eight" / ".jaxinv-work").exists()


@pytest.mark.parametrize("extra, words", [
    (["--space", "wp"], "--space w"),
    (["--optimizer", "sgd"], "Adam"),
    (["--task", "inpaint"], "--task"),
    (["--loss", "vgg"], "--loss mse"),
    (["--steps", "0"], "--steps"),
    (["--loss", "lpips"], "--lpips"),
])
def test_bad_settings_are_one_line_user_errors(setup, tmp_path, capsys, extra, words):
  from jaxinv.cli import main
  _, _, root, paths = setup
  out = tmp_path / "out"
  capsys.readouterr()
  rc = main(["invert", "--method", "nvidia-projector", "--generator", str(root / "G"), "--images",
             paths[0], "--out", str(out), "--loss", "mse", *extra])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1 and words in err[0], err
  assert not out.exists()


def test_stylegan3_runs_on_the_driver(golden, tmp_path):
  # StyleGAN3 has no noise buffers: the method optimises w alone and writes no noise maps.
  # (~15 s: a 32 px model, 2 steps.)
  from PIL import Image
  from jaxinv.cli import main
  g = golden("nvidia_stylegan")
  tags = [t for t, m in g.expected["models"].items()
          if m.get("projector") and m["kind"] == "sg3" and not m.get("c_dim")]
  if not tags:
    pytest.skip("no unconditional StyleGAN3 projector model in the nvidia_stylegan fixture")
  m = g.expected["models"][tags[0]]
  assert main(["convert", str(g.path(m["pickle"]["file"])), str(tmp_path / "G")]) == 0
  (tmp_path / "images").mkdir()
  Image.fromarray(np.random.RandomState(1).randint(0, 256, (32, 32, 3), np.uint8)).save(
      tmp_path / "images" / "x.png")
  out = tmp_path / "out"
  assert main(["invert", "--method", "nvidia-projector", "--generator", str(tmp_path / "G"),
               "--images", str(tmp_path / "images"), "--loss", "mse", "--steps", "2",
               "--out", str(out)]) == 0
  with np.load(out / "result.npz") as r:
    assert sorted(r.files) == ["loss", "names", "w"]
    assert r["w"].shape == (1, m["num_ws"], m["w_dim"]) and np.all(r["w"] == r["w"][:, :1])
    assert r["loss"].shape == (2, 1) and np.all(np.isfinite(r["loss"]))
  assert (out / "x.png").is_file()


@pytest.mark.slow   # two subprocesses (one killed) compiling the projector step
def test_cli_kill_and_resume(setup, tmp_path):
  clean = _cli(setup, tmp_path / "clean", 1, extra=("--chunk", "1"))
  out = tmp_path / "out"
  # the first image finished, the second stopped after a step
  H.kill_when(_cmd(setup, out, 1, ("--chunk", "1")), lambda: H.driver_checkpoints(out),
              {"JAXINV_PAUSE_AFTER_CHECKPOINT": 3})
  assert not (out / "result.npz").exists()
  p = subprocess.run(_cmd(setup, out, 1, ("--chunk", "1")), cwd=H.REPO, env=H.env(),
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "resuming" in p.stderr and "at step" in p.stderr, p.stderr[-2000:]
  with np.load(out / "result.npz") as f:
    for k in clean:
      np.testing.assert_array_equal(f[k], clean[k], err_msg=k)   # same programs: bit-equal
  assert not (out / ".jaxinv-work").exists()


@pytest.mark.slow   # three subprocesses compiling the projector step
def test_two_processes_equal_one(setup, tmp_path):
  # Two processes take every other batch of 1 image; the first collects: the same programs on the
  # same images as one process, so the result is bit-equal.
  one = _cli(setup, tmp_path / "one", 1)
  out = tmp_path / "two"
  port = H.free_port()
  procs = [subprocess.Popen(_cmd(setup, out, 1), cwd=H.REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=H.env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                      JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=i))
           for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  with np.load(out / "result.npz") as f:
    for k in one:
      np.testing.assert_array_equal(f[k], one[k], err_msg=k)
  assert json.loads((out / "config.json").read_text())["process_count"] == 2
