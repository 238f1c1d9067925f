"""IDInvert image loading and the generator variant (repeat_w=False, final tanh) (README §1, §4, §8)."""

import numpy as np
import jax.numpy as jnp
import pytest

from jaxinv import converters
from jaxinv.io import images
from jaxinv.models import registry
from tests.conftest import assert_close, optional_path
from tests.golden._idinvert import fwd_tol



@pytest.fixture(scope="module")
def g(golden):
  return golden("idinvert")


@pytest.fixture(scope="module")
def arrays(g):
  return g.npz(g.expected["files"]["arrays"])


@pytest.fixture(scope="module")
def paths(g):
  d = optional_path(g.dir, g.expected["files"].get("images_dir"), "IDInvert example images")
  return [str(optional_path(d, n, f"example image {n}")) for n in g.expected["images"]]


@pytest.fixture(scope="module")
def generator(g, tmp_path_factory):
  dest = tmp_path_factory.mktemp("gen") / "generator"
  converters.convert_file(g.path(g.expected["files"]["generator"]), dest)
  return registry.load_model(dest, expect_family="stylegan")


def test_load_source_uint8(arrays, paths):
  got = np.stack([images.load_rgb_uint8(p) for p in paths])
  np.testing.assert_array_equal(got, arrays["load.image_src_uint8"])


def test_load_resized_uint8_exact(g, arrays, paths):
  r = g.expected["model_pool_entry"]["resolution"]
  got = np.stack([images.load_idinvert_uint8(p, r) for p in paths])
  diff = np.abs(got.astype(int) - arrays["load.image_uint8"]).max()
  assert diff == 0, f"cv2-style bilinear resize off by {diff} levels"


def test_preprocess(g, arrays, paths):
  r = g.expected["model_pool_entry"]["resolution"]
  got = images.load_images(paths, r, loader="idinvert")
  want = np.transpose(arrays["preprocess.image"], (0, 2, 3, 1))
  assert_close(got, want, atol=0, what="preprocess.image")


def test_generator_variant(g, generator):
  pool = g.expected["model_pool_entry"]
  cfg = generator.config
  assert cfg.repeat_w is pool["repeat_w"] and cfg.final_tanh is pool["final_tanh"]
  assert cfg.num_ws == pool["num_layers"] and cfg.w_dim == pool["w_space_dim"]
  assert generator.extras["truncation_psi"] == pool["truncation_psi"]
  assert generator.extras["truncation_layers"] == pool["truncation_layers"]


def test_mapping_truncation_synthesis(g, arrays, generator):
  m, v = generator.module, generator.variables()
  w = m.apply(v, jnp.asarray(arrays["gen.z"]), method="mapping")
  assert_close(np.asarray(w).reshape(w.shape[0], -1), arrays["gen.w"],
               atol=fwd_tol(arrays["gen.w"]), what="gen.w")
  ex = generator.extras
  wp = m.apply(v, w, ex["truncation_psi"], ex["truncation_layers"], method="truncate")
  assert_close(wp, arrays["gen.wp"], atol=fwd_tol(arrays["gen.wp"]), what="gen.wp")
  for src, name in [("gen.wp", "gen.image_from_z"), ("gen.wplus_input", "gen.image_from_wplus")]:
    img = m.apply(v, None, jnp.asarray(arrays[src]), method="synthesis")
    got = np.transpose(np.asarray(img), (0, 3, 1, 2))
    assert_close(got, arrays[name], atol=fwd_tol(arrays[name]), what=name)
    if name == "gen.image_from_z":
      u8 = np.transpose(images.to_uint8(np.transpose(arrays[name], (0, 2, 3, 1))), (0, 1, 2, 3))
      np.testing.assert_array_equal(u8, arrays["gen.image_from_z_uint8"])
      mine = images.to_uint8(np.asarray(img))
      assert np.abs(mine.astype(int) - arrays["gen.image_from_z_uint8"]).max() <= 1


def test_every_synthesis_layer(arrays, generator):
  m, v = generator.module, generator.variables()
  out = m.apply(v, jnp.asarray(arrays["gen.wplus_input"][:1]), method="intermediates")
  names = [k[len("gen.synth."):] for k in arrays.files if k.startswith("gen.synth.")]
  assert names
  for name in names:
    want = arrays[f"gen.synth.{name}"]
    got = np.transpose(np.asarray(out[name]), (0, 3, 1, 2))
    assert_close(got, want, atol=fwd_tol(want), what=f"gen.synth.{name}")
