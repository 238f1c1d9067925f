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


def test_evaluate_cli_dgp_option(golden, tmp_path):
  from jaxinv.cli import main
  from jaxinv.io.images import save_png, uint8_to_tanh
  gd = golden("dgp")
  u = gd.npz("degradations.npz")["deg_img0_uint8"][0].transpose(1, 2, 0)
  x = gd.npz("g_forward.npz")["x"][0].transpose(1, 2, 0)
  (tmp_path / "p").mkdir()
  (tmp_path / "g").mkdir()
  save_png(tmp_path / "p" / "a.png", x)
  save_png(tmp_path / "g" / "a.png", u)
  out = tmp_path / "m.csv"
  assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "g"), "--protocol", "dgp", "--dgp-mode", "colorization",
               "--out", str(out)]) == 0
  from PIL import Image
  xp = np.asarray(Image.open(tmp_path / "p" / "a.png"))
  want = dgp.metrics(uint8_to_tanh(xp), uint8_to_tanh(u), "colorization")
  lines = out.read_text().splitlines()
  assert lines[0].split(",") == ["name", "l1_loss_origin", "mse_loss_origin", "psnr", "ssim"]
  assert abs(float(lines[1].split(",")[3]) - want["psnr"]) < 1e-5
