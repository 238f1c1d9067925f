"""StyleGAN2-ADA discriminators (native and legacy TF pickles, ``part=D``) against nvidia_stylegan/.

Tolerance (README §8): forward arrays (D blocks, epilogue, cmap, scores) of an independent
float32 port ≤ 1e-4 · max(1, max|expected|); the official code's own thread-count floor is 1e-6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import nvidia_stylegan2_ada
from jaxinv.cli import main
from jaxinv.models import stylegan2
from tests.conftest import assert_close

FOLDER = "nvidia_stylegan"
FORWARD_REL = 1e-4


def forward_atol(expected):
  return FORWARD_REL * max(1.0, float(np.abs(expected).max()))


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


def _tags(g):
  f = g.npz("fixtures.npz")
  return [t for t, m in g.expected["models"].items()
          if m["kind"] in ("ada", "tf") and f"{t}.d.img" in f.files]


def test_discriminator_every_array(g):
  tags = _tags(g)
  if not tags:
    pytest.skip("no StyleGAN2-ADA discriminator arrays in this case")
  f = g.npz("fixtures.npz")
  for tag in tags:
    m = g.expected["models"][tag]
    obj = converters.read_source(g.path(m["pickle"]["file"]))
    conv = nvidia_stylegan2_ada.convert(obj, part="D")
    cfg = conv.config
    assert cfg.c_dim == m["c_dim"] and cfg.resolution == m["img_resolution"]
    d = stylegan2.NvidiaDiscriminator(cfg)
    fn = jax.jit(lambda x, c: d.apply({"params": conv.params}, x, c, method=d.intermediates))
    img = jnp.asarray(f[f"{tag}.d.img"].transpose(0, 2, 3, 1))
    c = jnp.asarray(f[f"{tag}.d.c"]) if f"{tag}.d.c" in f.files else None
    assert (c is not None) == bool(cfg.c_dim)
    for n in m["d_batches"]:
      out = fn(img[:n], None if c is None else c[:n])
      want = f[f"{tag}.d.out{n}"]
      assert_close(out["out"], want, atol=forward_atol(want), what=f"{tag}.d.out{n}")
      if n != len(img):
        continue
      for name in [k for k in f.files if k.startswith(f"{tag}.d.")]:
        key = name[len(f"{tag}.d."):]
        if key in ("img", "c") or key.startswith("out"):
          continue
        got = np.asarray(out[key])
        got = got.transpose(0, 3, 1, 2) if got.ndim == 4 else got
        want = f[name]
        assert_close(got[: want.shape[0]], want, atol=forward_atol(want), what=name)


def test_cli_converts_discriminator_part(g, tmp_path):
  tags = _tags(g)
  if not tags:
    pytest.skip("no StyleGAN2-ADA discriminator in this case")
  tag = tags[0]
  src = str(g.path(g.expected["models"][tag]["pickle"]["file"]))
  assert main(["convert", src, str(tmp_path / "D"), "--option", "part=D"]) == 0
  from jaxinv.models.registry import load_model
  model = load_model(tmp_path / "D")
  assert model.family == "stylegan2-nvidia-discriminator"
  assert main(["convert", src, str(tmp_path / "X"), "--option", "part=X"]) == 2
