"""DGP degradations (``DGP.pre_process``) vs ``dgp/degradations.npz``."""

import re

import numpy as np
import pytest

from jaxinv import tasks
from tests.conftest import assert_close

# README (verification): an independent float32 port matches the SR generator path to 1.5e-6 and
# gray/mask to 2.4e-7 (float order only); its suggested degradation bound is 1e-5 abs, ~7x that floor.
# Measured here: <= 1.7e-6 (SR lr), the same under default, AVX2, AVX and SSE4_2.
ATOL = 1e-5
# Lab L-channel restore (colorization metric input): a fixed float32-vs-float64 rounding difference
# of the colour conversion, 3.8e-6 on every ISA (not summation order); README forward bound 1e-5.
RESTORE_ATOL = 1e-5
# README: PSNR/SSIM 1e-4 relative (skimage versions move the Lab conversion slightly); PSNR here is
# ~10-30 dB, so 1e-3 dB is <= 1e-4 relative; SSIM <= 1, so 1e-4 abs is <= 1e-4 relative.
PSNR_ATOL = 1e-3
SSIM_ATOL = 1e-4
# l1/mse are float64 means of float32 images: only the float64 summation order differs (~1e-15);
# 1e-5 relative is the README's loss bound.
LOSS_RTOL = 1e-5


def _nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


def _dgp_image(u8):
  """DGP's ``get_img``: ``(u8/255 − 0.5)/0.5`` as NHWC float32."""
  return _nhwc((u8.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5))


@pytest.fixture(scope="module")
def g(golden):
  return golden("dgp")


@pytest.fixture(scope="module")
def d(g):
  return g.npz("degradations.npz")


def _images(d):
  return sorted({re.match(r"deg_(img\d+)_uint8", k).group(1) for k in d.files
                 if re.fullmatch(r"deg_img\d+_uint8", k)})


def test_kernels(g, d):
  for name, spec in g.expected["degradations"].items():
    if not name.startswith("downsampler_f"):
      continue
    f = int(name[len("downsampler_f"):])
    k = tasks.lanczos_kernel(f)
    assert list(k.shape) == spec["kernel_shape"]
    assert (spec["kernel_shape"][0] - f) // 2 == spec["replication_pad"]
    # Both kernels are computed in float64 from a closed form: only float64 rounding differs.
    assert_close(k, d[f"downsampler_kernel_f{f}"], atol=1e-12, what=name)


def test_sr_generator_path(g, d):
  f = g.expected["degradations"]["factor"]["SR"]
  for im in _images(d):
    x = _dgp_image(d[f"deg_{im}_uint8"])
    lr = tasks.downsample(x, f, "lanczos")
    assert_close(lr, _nhwc(d[f"deg_{im}_SR_gen_lr"]), atol=ATOL, what=f"{im} SR gen lr")
    assert_close(tasks.dgp_degrade(x, "SR", f), _nhwc(d[f"deg_{im}_SR_gen"]), atol=ATOL,
                 what=f"{im} SR gen")


def test_sr_target_path(g, d):
  f = g.expected["degradations"]["factor"]["SR"]
  for im in _images(d):
    x = _dgp_image(d[f"deg_{im}_uint8"])[0]
    lr, up = tasks.dgp_sr_target(x, f)
    assert np.array_equal(lr, _nhwc(d[f"deg_{im}_SR_target_lr_uint8"])[0]), f"{im} PIL Lanczos lr"
    assert_close(up, _nhwc(d[f"deg_{im}_SR_target"])[0], atol=ATOL, what=f"{im} SR target")


def test_colorization_and_inpainting(g, d):
  for im in _images(d):
    x = _dgp_image(d[f"deg_{im}_uint8"])
    modes = [k[len(f"deg_{im}_"):-len("_target")] for k in d.files
             if k.startswith(f"deg_{im}_") and k.endswith("_target") and not k.endswith("_SR_target")]
    assert modes, f"{im}: no degraded targets stored"
    for mode in modes:
      assert_close(tasks.dgp_degrade(x, mode), _nhwc(d[f"deg_{im}_{mode}_target"]), atol=ATOL,
                   what=f"{im} {mode}")


def test_hole_bounds(g):
  b, e = g.expected["degradations"]["metrics_genx_vs_img0"]["inpainting"]["hole_begin_end"]
  res = g.expected["arrays"]["degradations.npz"]["deg_img0_uint8"][1][-1]
  m = tasks.center_hole_mask(res)
  rows = np.nonzero(m[:, :, 0].any(axis=1))[0]
  assert (rows[0], rows[-1] + 1) == (b, e)


def test_hybrid(g, d):
  if "hybrid" not in g.expected["degradations"]["factor"] or "deg_genx_hybrid" not in d.files:
    pytest.skip("this case stores no hybrid degradation")
  x = _nhwc(g.npz("g_forward.npz")["x"][0:1])
  f = g.expected["degradations"]["factor"]["hybrid"]
  want = _nhwc(d["deg_genx_hybrid"])
  assert_close(tasks.dgp_degrade(x, "hybrid", f), want, atol=ATOL, what="hybrid")


def test_dgp_metrics(g, d):
  """``DGP.get_metrics``: skimage ≤ 0.17 defaults (PSNR R = 1 on [0,1]; SSIM R = 2, 7×7 box)."""
  from jaxinv import metrics
  want = g.expected["degradations"]["metrics_genx_vs_img0"]
  x = _nhwc(g.npz("g_forward.npz")["x"][0:1])[0].astype(np.float64)
  t = _dgp_image(d["deg_img0_uint8"])[0].astype(np.float64)
  for mode, e in want.items():
    assert_close(np.mean(np.abs(x - t)) / 2, e["l1_loss_origin"], rtol=LOSS_RTOL, what=f"{mode} l1")
    assert_close(np.mean((x - t) ** 2) / 4, e["mse_loss_origin"], rtol=LOSS_RTOL, what=f"{mode} mse")
    xe, te = x, t
    if mode == "colorization":
      xe = tasks.dgp_colorization_restore(x, t)
      assert_close(xe, _nhwc(d["metrics_colorization_x2"])[0], atol=RESTORE_ATOL, what="colorization x2")
    if mode == "inpainting":
      b, en = e["hole_begin_end"]
      xe, te = xe[b:en, b:en], te[b:en, b:en]
    x01, t01 = (xe + 1) / 2, (te + 1) / 2
    assert_close(metrics.psnr(t01, x01, metrics.infer_data_range(t01)), e["psnr"], atol=PSNR_ATOL,
                 what=f"{mode} psnr")
    assert_close(metrics.ssim_skimage(t01, x01, metrics.infer_data_range(t01, for_psnr=False)),
                 e["ssim"], atol=SSIM_ATOL, what=f"{mode} ssim")
