"""jaxinv.ops.resize against PyTorch's F.interpolate for every mode, sizes up and down."""

import numpy as np
import pytest

from jaxinv.ops import resize as R

torch = pytest.importorskip("torch")
F = torch.nn.functional

# torch computes each source coordinate in float32: an error of ~ulp(n_in) = 1e-6 at n_in 13 moves
# a tap weight by as much, times the difference between neighbouring N(0, 1) samples (< 8): 8e-6.
# Our weights are exact (float64, rounded once to float32).
ATOL = 1e-5


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "area"])
@pytest.mark.parametrize("size", [(7, 5), (16, 16), (29, 40)])
def test_matches_interpolate(mode, size):
  x = np.random.RandomState(0).randn(2, 3, 13, 11).astype(np.float32)
  kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
  want = F.interpolate(torch.from_numpy(x), size=size, mode=mode, **kw).numpy()
  got = np.asarray(R.resize(np.transpose(x, (0, 2, 3, 1)), size, mode))
  np.testing.assert_allclose(np.transpose(got, (0, 3, 1, 2)), want, atol=ATOL)
  if mode == "nearest":
    np.testing.assert_array_equal(np.transpose(R.resize_nearest(np.transpose(x, (0, 2, 3, 1)), size),
                                               (0, 3, 1, 2)), want)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_align_corners(mode):
  x = np.random.RandomState(1).randn(1, 2, 9, 6).astype(np.float32)
  want = F.interpolate(torch.from_numpy(x), size=(20, 20), mode=mode, align_corners=True).numpy()
  got = np.asarray(R.resize(np.transpose(x, (0, 2, 3, 1)), 20, mode, align_corners=True))
  np.testing.assert_allclose(np.transpose(got, (0, 3, 1, 2)), want, atol=ATOL)


def test_unknown_mode():
  with pytest.raises(ValueError, match="unknown resize mode"):
    R.resize_matrix(4, 8, "lanczos3")
