"""Unit tests of jaxinv.editing: boundary files (safe loading, structure checks), directions."""

import os

import numpy as np
import pytest

from jaxinv import editing


def _pickled_npy(path, obj):
  np.save(path, np.array(obj, dtype=object), allow_pickle=True)


def test_roundtrip_pickled_and_plain(tmp_path):
  b = np.random.RandomState(0).randn(1, 4, 8).astype(np.float32)
  _pickled_npy(tmp_path / "b.npy", {"boundary": b, "meta_data": {"manipulate_layers": [0, 2]}})
  got = editing.load_boundary(tmp_path / "b.npy")
  np.testing.assert_array_equal(got["boundary"], b)
  assert got["manipulate_layers"] == [0, 2]
  editing.save_boundary(tmp_path / "p.npz", b, [0, 2])
  again = editing.load_boundary(tmp_path / "p.npz")
  np.testing.assert_array_equal(again["boundary"], b)
  assert again["manipulate_layers"] == [0, 2]
  editing.save_boundary(tmp_path / "all.npz", b, None)
  assert editing.load_boundary(tmp_path / "all.npz")["manipulate_layers"] is None
  np.save(tmp_path / "raw.npy", b)
  assert editing.load_boundary(tmp_path / "raw.npy")["boundary"].shape == (1, 4, 8)


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_refuses_code(tmp_path):
  _pickled_npy(tmp_path / "evil.npy", {"boundary": _Evil()})
  with pytest.raises(editing.BoundaryError, match="refusing"):
    editing.load_boundary(tmp_path / "evil.npy")


@pytest.mark.parametrize("obj,match", [
    ({"direction": np.zeros((1, 4))}, "'boundary'"),
    ({"boundary": np.zeros((2, 4), np.float32)}, r"\[1, \.\.\.\]"),
    ({"boundary": np.zeros((1, 4, 8), np.float32), "meta_data": {"manipulate_layers": [9]}},
     "outside"),
    ({"boundary": np.zeros((1, 4), np.float32), "other": 1}, "unexpected keys"),
])
def test_structure_checks(tmp_path, obj, match):
  _pickled_npy(tmp_path / "b.npy", obj)
  with pytest.raises(editing.BoundaryError, match=match):
    editing.load_boundary(tmp_path / "b.npy")


def test_parse_indices():
  assert editing.parse_indices("0-3,5") == [0, 1, 2, 3, 5]
  assert editing.parse_indices(None) == []
  with pytest.raises(ValueError):
    editing.parse_indices("0-9", 0, 4)


def test_sefa_is_eigenbasis():
  rs = np.random.RandomState(1)
  w = [rs.randn(6, 10), rs.randn(6, 4)]
  dirs, vals = editing.sefa_directions(w, num=3)
  assert dirs.shape == (3, 6) and np.all(np.diff(vals) <= 0)
  np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1, atol=1e-6)
  a = np.concatenate(w, 1)
  a = a / np.linalg.norm(a, axis=0)
  np.testing.assert_allclose(a @ a.T @ dirs[0], vals[0] * dirs[0], rtol=1e-4, atol=1e-4)


def test_pca_recovers_main_axis():
  rs = np.random.RandomState(2)
  x = rs.randn(2000, 5) * np.array([5, 1, 0.5, 0.2, 0.1]) + 3
  dirs, var, mean = editing.pca_directions(x, num=2)
  assert abs(abs(dirs[0, 0]) - 1) < 1e-2 and var[0] > var[1]
  np.testing.assert_allclose(mean, 3, atol=0.3)


def test_manipulate_non_layerwise_shape():
  out = editing.manipulate(np.zeros((2, 4)), np.ones((1, 4)), -1, 1, 3)
  assert out.shape == (2, 3, 4)
  np.testing.assert_allclose(out[0, :, 0], [-1, 0, 1])
