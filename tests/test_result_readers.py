"""The library's result readers: what each accepts, and one named refusal for everything else."""

import json

import numpy as np
import pytest

from jaxinv.io.results import (ResultFileError, read_multicode_result, read_pivot_result,
                               read_wp_result, result_setting, write_config, write_npz)


def _npz(tmp_path, name="result.npz", **arrays):
  path = tmp_path / name
  write_npz(path, **arrays)
  return str(path)


def test_multicode_result(tmp_path):
  z, alpha = np.ones((2, 3, 4), np.float32), np.ones((2, 3, 5), np.float32)
  got_z, got_alpha, names = read_multicode_result(_npz(tmp_path, z=z, alpha=alpha,
                                                       names=np.asarray(["a", "b"])))
  np.testing.assert_array_equal(got_z, z)
  np.testing.assert_array_equal(got_alpha, alpha)
  assert names == ["a", "b"]
  assert read_multicode_result(_npz(tmp_path, z=z, alpha=alpha))[2] == ["0000", "0001"]
  bad = _npz(tmp_path, "bad.npz", z=z, alpha=np.ones((2, 4, 5), np.float32))
  with pytest.raises(ResultFileError, match="bad.npz.*not \\[B,N,D\\]"):
    read_multicode_result(bad)


def test_wp_result_checks_the_generator_shape(tmp_path):
  path = _npz(tmp_path, wp=np.zeros((3, 4, 8), np.float32))
  wp, names = read_wp_result(path, 4, 8)
  assert wp.shape == (3, 4, 8) and names == ["0000", "0001", "0002"]
  with pytest.raises(ResultFileError, match="is not \\[B, 6, 8\\] for this generator"):
    read_wp_result(path, 6, 8)


def test_pivot_result(tmp_path):
  w = np.zeros((2, 4, 8), np.float32)
  names = np.asarray(["x", "y"])
  codes, got, tuned = read_pivot_result(_npz(tmp_path, "pti.npz", w_pivot=w, names=names))
  assert tuned and got == ["x", "y"] and codes.shape == (2, 4, 8)
  assert read_pivot_result(_npz(tmp_path, "wp.npz", wp=w))[2] is False
  with pytest.raises(ResultFileError, match="without names"):
    read_pivot_result(_npz(tmp_path, "nonames.npz", w_pivot=w))
  with pytest.raises(ResultFileError, match="needs wp or w_pivot"):
    read_pivot_result(_npz(tmp_path, "other.npz", z=w))


def test_result_setting(tmp_path):
  path = _npz(tmp_path, z=np.zeros((1, 1, 1), np.float32))
  with pytest.raises(ResultFileError, match="cannot read the setting 'layer'"):
    result_setting(path, "layer")
  write_config(str(tmp_path), {"layer": 4})
  assert result_setting(path, "layer") == 4
  (tmp_path / "config.json").write_text(json.dumps({"settings": {}}))
  with pytest.raises(ResultFileError):
    result_setting(path, "layer")
