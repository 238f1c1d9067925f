"""upfirdn2d against the standalone rosinality cases (stylegan2_rosinality/fixtures.npz)."""

import numpy as np
import pytest

from jaxinv.models import upfirdn
from tests.conftest import assert_close

# upfirdn2d is a short FIR (<= 16 taps of a normalised kernel) over O(1) inputs: float32 rounding of
# two summation orders differs by a few ulp (~1e-7; measured 3.6e-7). atol = rtol = 1e-5 is the
# README's port tolerance (rtol 1e-5), ~30x the measured difference.


def _cases(golden):
  return golden("stylegan2_rosinality").expected["upfirdn2d_cases"]


def _pad4(pad):
  return (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else tuple(pad)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_upfirdn2d_cases(golden, impl):
  g = golden("stylegan2_rosinality")
  f = g.npz("fixtures.npz")
  x = np.transpose(f["upfirdn_x"], (0, 2, 3, 1))
  fn = upfirdn.upfirdn2d_ref if impl == "ref" else upfirdn.upfirdn2d_fast
  for name, c in _cases(golden).items():
    k = f[f"upfirdn_{name}_kernel"]
    out = fn(x, k, up=c["up"], down=c["down"], pad=_pad4(c["pad"]))
    out = np.transpose(np.asarray(out), (0, 3, 1, 2))
    assert list(out.shape) == c["out_shape"], name
    assert_close(out, f[f"upfirdn_{name}"], atol=1e-5, rtol=1e-5, what=f"{impl} {name}")
