"""mGANprior degradation operators and task losses vs ``mganprior/degradations.npz`` (README §6)."""

import re

import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import tasks
from tests.conftest import assert_close

# Bounds: the operators are a handful of float32 multiply-adds per output (gray: 3 terms; bilinear /
# bicubic: 4-16 taps; area: up to f² terms) on values in [-1, 1], so two implementations differ by a
# few ulp of 1 (~1e-7; measured <= 2.6e-6 for area's f²-term means); ATOL = 1e-4 is the README §7
# suggestion for images. Masks are exact (nearest resize of a 0/1 image). Task losses combine MSE with
# the VGG term, whose float64-vs-float32 difference is 1.6e-7 relative (README §7); LOSS_RTOL = 1e-4
# leaves room for the VGG features' summation order (relu3_3 up to ~1.5e3) on other kernels.
ATOL = 1e-4
LOSS_RTOL = 1e-4


def _nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


def _u8_to_01(u8):
  return u8.astype(np.float32) / np.float32(255)


def _u8_to_tanh(u8):
  return (_u8_to_01(u8) - np.float32(0.5)) * np.float32(2)


@pytest.fixture(scope="module")
def g(golden):
  return golden("mganprior")


@pytest.fixture(scope="module")
def d(g):
  return g.npz("degradations.npz")


def _mse(a, b):
  return float(jnp.mean(jnp.square(jnp.asarray(a) - jnp.asarray(b))))


def test_gray(d):
  x = _nhwc(_u8_to_tanh(d["color_image_uint8"]))
  gray = np.asarray(tasks.to_gray(x))
  assert_close(gray[..., 0], d["color_gray_tanh"][:, 0], atol=ATOL, what="gray tanh")
  assert np.array_equal(gray[..., 0], gray[..., 2])
  gray01 = np.asarray(tasks.to_gray(_nhwc(_u8_to_01(d["color_image_uint8"]))))
  assert_close(gray01[..., 0], d["color_gray01"][:, 0], atol=ATOL, what="gray 01")


def test_colorization_output(d):
  out = tasks.colorize_restore01(_nhwc(_u8_to_01(d["color_estimate_uint8"])),
                                 _nhwc(_u8_to_01(d["color_image_uint8"])))
  assert np.array_equal(out, _nhwc(d["color_output_uint8"])), "YCbCr recombination differs"


def test_colorization_restore_via_task(d):
  t = tasks.make_task("colorize", d["color_image_uint8"].shape[-1])
  est = _nhwc(_u8_to_tanh(d["color_estimate_uint8"]))
  gt = _nhwc(_u8_to_tanh(d["color_image_uint8"]))
  r = t.restore(est, gt)
  # Task.restore takes [-1, 1] images: (x·0.5 + 0.5) then the official truncation to uint8.
  want = tasks.colorize_restore01(est * 0.5 + 0.5, gt * 0.5 + 0.5)
  u8 = np.floor((r + 1) * 127.5 + 0.5).astype(np.uint8)
  assert np.array_equal(u8, want)
  assert r.shape == est.shape and r.dtype == np.float32


def test_downsample_all_modes(g, d):
  x = _nhwc(_u8_to_tanh(d["sr_image_uint8"]))
  keys = [k for k in d.files if re.fullmatch(r"sr_down_[a-z]+_f\d+", k)]
  modes = {re.fullmatch(r"sr_down_([a-z]+)_f(\d+)", k).group(1) for k in keys}
  assert modes >= {"bilinear", "nearest", "area", "bicubic"}
  for f in g.expected["degradations"]["sr_factors"]:
    for mode in sorted(modes):
      k = f"sr_down_{mode}_f{f}"
      assert_close(tasks.downsample(x, f, mode), _nhwc(d[k]), atol=ATOL, what=k)


def test_script_upsampled_outputs(d):
  x01 = _nhwc(_u8_to_01(d["sr_image_uint8"]))
  for k, mode in (("sr_up_nn_f", "nearest"), ("sr_up_bic_f", "bilinear")):
    (key,) = [n for n in d.files if n.startswith(k)]
    f = int(key[len(k):])
    lo = tasks.downsample(x01, f, "bilinear")
    assert_close(tasks.upsample(lo, f, mode), _nhwc(d[key]), atol=ATOL, what=key)


def test_masks_and_masked_images(g, d):
  src = g.expected["degradations"]["sources"]
  res = d["inp_image_uint8"].shape[-1]
  x = _nhwc(_u8_to_tanh(d["inp_image_uint8"]))
  x01 = _nhwc(_u8_to_01(d["inp_image_uint8"]))
  est01 = _nhwc(_u8_to_01(d["inp_estimate_uint8"]))
  for entry, path in zip(g.expected["degradations"]["masks"], src["masks"]):
    m = tasks.load_mask(g.dir / path, res)
    assert_close(m, _nhwc(d[entry["key"]])[0], atol=0, what=entry["key"])
    name = entry["key"][len("mask_"):]
    assert_close(tasks.apply_mask(x, m), _nhwc(d[f"inp_masked_tanh_{name}"]), atol=ATOL,
                 what=f"masked tanh {name}")
    if f"inp_masked01_{name}" in d.files:
      assert_close(tasks.apply_mask(x01, m), _nhwc(d[f"inp_masked01_{name}"]), atol=ATOL,
                   what=f"masked01 {name}")
    if f"inp_combine01_{name}" in d.files:
      comb = x01 * (1 - m) + est01 * m
      assert_close(comb, _nhwc(d[f"inp_combine01_{name}"]), atol=ATOL, what=f"combine {name}")


def test_task_losses(g, d):
  vals = g.expected["degradations"]["values"]
  masks = {e["key"][len("mask_"):]: _nhwc(d[e["key"]])[0] for e in g.expected["degradations"]["masks"]}
  checked = 0
  for name, want in vals.items():
    if name.startswith("color_loss_mse"):
      res = d["color_image_uint8"].shape[-1]
      t = tasks.make_task("colorize", res)
      img, est = d["color_image_uint8"], d["color_estimate_uint8"]
    elif m := re.match(r"sr_loss_mse_([a-z]+)_f(\d+)", name):
      res = d["sr_image_uint8"].shape[-1]
      t = tasks.make_task("super-resolve", res, factor=int(m.group(2)), downsample=m.group(1))
      img, est = d["sr_image_uint8"], d["sr_estimate_uint8"]
    elif m := re.match(r"masked_loss_mse_([a-z0-9]+)", name):
      res = d["inp_image_uint8"].shape[-1]
      t = tasks.make_task("inpaint", res, mask=masks[m.group(1)])
      img, est = d["inp_image_uint8"], d["inp_estimate_uint8"]
    else:
      pytest.fail(f"unrecognised task-loss entry {name!r} in expected.json")
    got = _mse(t.degrade(_nhwc(_u8_to_tanh(est))), t.observe(_nhwc(_u8_to_tanh(img))))
    assert_close(got, want, rtol=LOSS_RTOL, what=name)
    checked += 1
  assert checked == len(vals) > 0
