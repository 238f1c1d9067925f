"""DGP's get_metrics: L1/MSE on [0, 1], PSNR/SSIM with skimage<=0.17 defaults, Lab L restore, hole crop."""

import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from tests.conftest import assert_close
from tests.golden import _dgp


@pytest.mark.parametrize("mode", ["SR", "colorization", "inpainting"])
def test_metrics_genx_vs_img0(golden, mode):
  gd = golden("dgp")
  ref = gd.expected["degradations"]["metrics_genx_vs_img0"][mode]
  x = _dgp.nhwc(gd.npz("g_forward.npz")["x"][0:1])[0]
  deg = gd.npz("degradations.npz")
  t = _dgp.u8_to_nhwc(deg["deg_img0_uint8"])[0]
  got = dgp.metrics(x, t, mode)
  for k in ("l1_loss_origin", "mse_loss_origin", "psnr", "ssim"):
    assert_close(got[k], ref[k], rtol=1e-4, what=f"{mode} {k}")
  if mode == "inpainting":
    assert list(dgp.hole_begin_end(x.shape[0])) == ref["hole_begin_end"]
  if mode == "colorization":
    x2 = dgp.restore_l_channel((x + 1) / 2, (t + 1) / 2) * 2 - 1
    assert_close(x2[None], _dgp.nhwc(deg["metrics_colorization_x2"]), atol=1e-5,
                 what="colorization L-restored image")
