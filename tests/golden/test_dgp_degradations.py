"""DGP degradations (``DGP.pre_process``) vs ``dgp/degradations.npz``."""

import re

import numpy as np
import pytest

from jaxinv import tasks
from tests.conftest import assert_close

ATOL = 1e-4


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
    for mode in ("colorization", "inpainting"):
      assert_close(tasks.dgp_degrade(x, mode), _nhwc(d[f"deg_{im}_{mode}_target"]), atol=ATOL,
                   what=f"{im} {mode}")


def test_hole_bounds(g):
  b, e = g.expected["degradations"]["metrics_genx_vs_img0"]["inpainting"]["hole_begin_end"]
  res = g.expected["arrays"]["degradations.npz"]["deg_img0_uint8"][1][-1]
  m = tasks.center_hole_mask(res)
  rows = np.nonzero(m[:, :, 0].any(axis=1))[0]
  assert (rows[0], rows[-1] + 1) == (b, e)


def test_hybrid(g, golden):
  x = _nhwc(g.npz("g_forward.npz")["x"][0:1])
  f = g.expected["degradations"]["factor"]["hybrid"]
  want = _nhwc(g.npz("degradations.npz")["deg_genx_hybrid"])
  assert_close(tasks.dgp_degrade(x, "hybrid", f), want, atol=ATOL, what="hybrid")
