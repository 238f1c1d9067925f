"""DGP's get_metrics: L1/MSE on [0, 1], PSNR/SSIM with skimage<=0.17 defaults, Lab L restore, hole crop."""

import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from tests.conftest import assert_close, expected_at_collection, params
from tests.golden import _dgp

MODES = list(expected_at_collection("dgp").get("degradations", {}).get("metrics_genx_vs_img0", {}))
# README: metrics PSNR/SSIM 1e-4 relative (the skimage version may move the Lab conversion slightly);
# l1/mse share it. Measured here <= 3.8e-7 abs (PSNR ~ 10-30 dB), on all four ISAs.
METRIC_RTOL = 1e-4
# The L-restored image: a fixed float32 colour-conversion rounding difference of 3.8e-6 on every ISA;
# README forward bound 1e-5.
RESTORE_ATOL = 1e-5
# The CSV prints 6 decimals of the library's own values: rounding moves them by <= 5e-7.
CSV_ATOL = 1e-6


@pytest.mark.parametrize("mode", params(MODES))
def test_metrics_genx_vs_img0(golden, mode):
  gd = golden("dgp")
  ref = gd.expected["degradations"]["metrics_genx_vs_img0"][mode]
  x = _dgp.nhwc(gd.npz("g_forward.npz")["x"][0:1])[0]
  deg = gd.npz("degradations.npz")
  t = _dgp.u8_to_nhwc(deg["deg_img0_uint8"])[0]
  got = dgp.metrics(x, t, mode)
  for k in ("l1_loss_origin", "mse_loss_origin", "psnr", "ssim"):
    assert_close(got[k], ref[k], rtol=METRIC_RTOL, what=f"{mode} {k}")
  if mode == "inpainting":
    assert list(dgp.hole_begin_end(x.shape[0])) == ref["hole_begin_end"]
  if mode == "colorization":
    x2 = dgp.restore_l_channel((x + 1) / 2, (t + 1) / 2) * 2 - 1
    assert_close(x2[None], _dgp.nhwc(deg["metrics_colorization_x2"]), atol=RESTORE_ATOL,
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
  assert [ln.split(",")[0] for ln in lines[1:]] == ["a", "mean"]
  for row in lines[1:]:   # one image: its row and the mean row are the same values
    for key, v in zip(lines[0].split(",")[1:], row.split(",")[1:]):
      assert abs(float(v) - want[key]) <= CSV_ATOL, (row, key)
