"""upfirdn2d: the fast variant agrees with the reference; basic identities."""

import numpy as np
import pytest

from jaxinv.models import upfirdn
from tests.conftest import assert_close


@pytest.mark.parametrize("up,down,pad,ksize", [
    (1, 1, (0, 0, 0, 0), 1), (2, 1, (2, 1, 2, 1), 4), (1, 2, (1, 1, 1, 1), 4),
    (2, 2, (0, 3, 1, -1), 3), (3, 1, (-2, 0, 1, 2), 4), (1, 3, (2, -1, -1, 2), 5),
    (4, 2, (1, 2, 3, 0), 2)])
def test_fast_matches_ref(up, down, pad, ksize):
  rng = np.random.RandomState(0)
  x = rng.randn(2, 7, 9, 3).astype(np.float32)
  k = rng.randn(ksize, ksize + 1 if ksize > 1 else 1).astype(np.float32)
  for flip in (True, False):
    a = upfirdn.upfirdn2d_ref(x, k, up, down, pad, flip)
    b = upfirdn.upfirdn2d_fast(x, k, up, down, pad, flip)
    assert a.shape == b.shape
    assert_close(b, a, atol=1e-5, what=f"up {up} down {down} pad {pad} flip {flip}")


def test_identity_and_kernel_norm():
  x = np.random.RandomState(1).randn(1, 5, 6, 2).astype(np.float32)
  assert_close(upfirdn.upfirdn2d(x, np.ones((1, 1), np.float32)), x, what="1x1 identity")
  k = upfirdn.make_kernel([1, 3, 3, 1])
  assert k.shape == (4, 4) and abs(float(k.sum()) - 1) < 1e-6
