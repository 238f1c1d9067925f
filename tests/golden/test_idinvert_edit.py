"""IDInvert's editing functions and boundary handling against the official NumPy editor (README §7, §8)."""

import numpy as np
import pytest

from jaxinv import editing
from tests.conftest import assert_close, expected_at_collection, optional_path

# README §8: edits (pure NumPy) <= 1e-6. They are a few float32 multiply-adds of codes |x| <= ~10
# (step * boundary + code): rounding ~ 10 * 6e-8 = 6e-7 per element at worst; measured here
# <= 1.2e-7 on every ISA.
EDIT_TOL = 1e-6
MANIPULATIONS = [k for k in expected_at_collection("idinvert").get("edit", {}) if k.startswith("manipulate")]


@pytest.fixture(scope="module")
def g(golden):
  return golden("idinvert")


@pytest.fixture(scope="module")
def arrays(g):
  return g.npz(g.expected["files"]["arrays"])


@pytest.fixture(scope="module")
def dims(g):
  pool = g.expected["model_pool_entry"]
  return pool["num_layers"], pool["w_space_dim"]


def _codes(spec, arrays, w_dim):
  """The few code expressions expected.json uses: 'codes[a:b]', 'edit.codes', 'gen.w[:, :w_dim]'."""
  if spec == "edit.codes":
    return arrays["edit.codes"]
  if spec == "gen.w[:, :w_dim]":
    return arrays["gen.w"][:, :w_dim]
  if spec == "edit.boundary[:, 0]":
    return arrays["edit.boundary"][:, 0]
  if spec.startswith("codes[") and spec.endswith("]"):
    a, b = spec[6:-1].split(":")
    return arrays["edit.codes"][int(a):int(b)]
  raise AssertionError(f"unknown code expression {spec!r} in expected.json")


def _edit(g, name):
  if name not in g.expected["edit"]:
    pytest.skip(f"this case records no {name} edit")
  return g.expected["edit"][name]


def test_boundary_file_crop(g, arrays, dims):
  path = optional_path(g.dir, g.expected["files"].get("boundary"), "boundary file")
  b = editing.load_boundary(path)
  assert b["boundary"].ndim == 3 and b["manipulate_layers"] is not None
  got = editing.crop_boundary(b["boundary"], *dims)
  assert_close(got, arrays["edit.boundary"], atol=EDIT_TOL, what="edit.boundary")


def test_edit_codes(arrays):
  want = np.concatenate([arrays["invert.indomain.z_final"], arrays["enc.code"][1:]])
  assert_close(arrays["edit.codes"], want, atol=0, what="edit.codes (fixture consistency)")


def test_interpolate(g, arrays, dims):
  s = _edit(g, "interpolate")
  got = editing.interpolate(_codes(s["src"], arrays, dims[1]), _codes(s["dst"], arrays, dims[1]),
                            step=s["step"])
  assert_close(got, arrays["edit.interpolate"], atol=EDIT_TOL, what="edit.interpolate")


def test_mix_style(g, arrays, dims):
  s = _edit(g, "mix_style")
  got = editing.mix_style(_codes(s["style"], arrays, dims[1]), _codes(s["content"], arrays, dims[1]),
                          num_layers=dims[0], mix_layers=s["mix_layers"])
  assert_close(got, arrays["edit.mix_style"], atol=EDIT_TOL, what="edit.mix_style")


@pytest.mark.parametrize("name", MANIPULATIONS)
def test_manipulate(g, arrays, dims, name):
  s = g.expected["edit"][name]
  if "edit.boundary" not in arrays.files:
    pytest.skip("this case stores no boundary (edit.boundary) to manipulate along")
  boundary = arrays["edit.boundary"] if s["is_boundary_layerwise"] else _codes(
      s.get("boundary", "edit.boundary[:, 0]"), arrays, dims[1])
  got = editing.manipulate(
      _codes(s["codes"], arrays, dims[1]), boundary, s["start"], s["end"], s["step"],
      layerwise=True, num_layers=dims[0], manipulate_layers=s["manipulate_layers"],
      is_code_layerwise=s["is_code_layerwise"], is_boundary_layerwise=s["is_boundary_layerwise"],
      strength=s["strength"])
  assert_close(got, arrays[f"edit.{name}"], atol=EDIT_TOL, what=f"edit.{name}")


def test_strength_rule(g, dims):
  pool = g.expected["model_pool_entry"]
  s = _edit(g, "manipulate_w_strength")["strength"]
  assert editing.layerwise_manipulation_strength(
      dims[0], pool["truncation_psi"], pool["truncation_layers"]) == pytest.approx(s)
