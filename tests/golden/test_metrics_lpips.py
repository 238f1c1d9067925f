"""LPIPS v0.1 (AlexNet, VGG16) vs ``metrics/lpips_fixtures.npz``, converted through ``jaxinv convert``."""

import functools

import jax
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.models import registry
from tests.conftest import assert_close

ATOL = 1e-4  # LPIPS distances, per-layer terms, maps
NETS = ("alex", "vgg")


def _nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def g(golden):
  return golden("metrics")


@pytest.fixture(scope="module")
def d(g):
  return g.npz("lpips_fixtures.npz")


@pytest.fixture(scope="module")
def models(g, tmp_path_factory):
  out = {}
  root = tmp_path_factory.mktemp("lpips")
  for net in NETS:
    e = g.expected["nets"][net]
    dest = root / net
    converters.convert_file(g.path(e["lin_file"]), dest, backbone=g.path(e["backbone_file"]))
    m = registry.load_model(dest, expect_family="lpips")
    fn = jax.jit(functools.partial(m.module.apply, method="all_outputs"))
    out[net] = (m, fn)
  return out


def _sizes(g):
  return [f"{h}x{w}" for h, w in g.expected["sizes"]]


def _check(g, d, models, net, hw):
  m, fn = models[net]
  x, y = _nhwc(d[f"in0_{hw}"]), _nhwc(d[f"in1_{hw}"])
  out = fn({"params": m.params}, x, y)
  assert_close(out["dist"], d[f"{net}_dist_{hw}"], atol=ATOL, what=f"{net} dist {hw}")
  assert_close(out["dist"], g.expected["nets"][net][f"dist_{hw}"], atol=ATOL, what=f"{net} json dist {hw}")
  assert_close(out["per_layer"], d[f"{net}_perlayer_{hw}"], atol=ATOL, what=f"{net} per-layer {hw}")
  # normalize=True maps [0, 1] inputs by 2x − 1 first: the same pass on the round-tripped pair.
  o01 = fn({"params": m.params}, 2 * ((x + 1) / 2) - 1, 2 * ((y + 1) / 2) - 1)
  assert_close(o01["dist"], d[f"{net}_dist_normalize01_{hw}"], atol=ATOL, what=f"{net} normalize {hw}")
  for k in [k for k in d.files if k.startswith(f"{net}_spatialmap") and k.endswith(hw)]:
    idx = [0, 2] if "pairs0and2" in k else slice(None)
    assert_close(out["spatial"][np.asarray(idx) if isinstance(idx, list) else idx], d[k][:, 0],
                 atol=ATOL, what=k)
  for k, mp in enumerate(out["lin_out"]):
    key = f"{net}_lin_out_l{k}_{hw}"
    if key in d.files:
      assert_close(mp, d[key][:, 0], atol=ATOL, what=key)


@pytest.mark.parametrize("net", NETS)
def test_lpips_small(g, d, models, net):
  _check(g, d, models, net, _sizes(g)[0])


def test_lpips_alex_large(g, d, models):
  for hw in _sizes(g)[1:]:
    _check(g, d, models, "alex", hw)


@pytest.mark.slow
def test_lpips_vgg_large(g, d, models):
  for hw in _sizes(g)[1:]:
    _check(g, d, models, "vgg", hw)


@pytest.mark.parametrize("net", NETS)
def test_lpips_internals(g, d, models, net):
  """ScalingLayer output, unit-normalised features, channel norms and lin maps of pair 0."""
  m, _ = models[net]
  hw = _sizes(g)[0]
  x, y = _nhwc(d[f"in0_{hw}"]), _nhwc(d[f"in1_{hw}"])
  bound = m.module.bind({"params": m.params})
  assert_close(bound.scale(x[:1]), _nhwc(d[f"{net}_scaled_in0_pair0_{hw}"]), atol=ATOL, what="scaled")
  feats0, feats1 = bound.features(x[:1]), bound.features(y[:1])
  for k in range(5):
    for side, f in (("in0", feats0[k]), ("in1", feats1[k])):
      f = np.asarray(f)
      norm = np.sqrt((f.astype(np.float64) ** 2).sum(-1, keepdims=True))
      chk = _nhwc(d[f"{net}_feat_chnorm_l{k}_{side}_pair0_{hw}"])
      assert_close(norm, chk, atol=ATOL, rtol=1e-5, what=f"{net} chnorm l{k} {side}")
      assert_close(f / (norm + 1e-10), _nhwc(d[f"{net}_feat_norm_l{k}_{side}_pair0_{hw}"]),
                   atol=ATOL, what=f"{net} featnorm l{k} {side}")
  with pytest.raises(ValueError, match="NHWC"):
    bound(x[0], y[0])


@pytest.mark.slow  # compiling AlexNet's backward pass takes ~40 s on the shared CPUs
def test_lpips_as_loss_is_differentiable(models):
  from jaxinv.models.lpips import lpips_distance
  m, _ = models["alex"]
  rng = np.random.RandomState(0)
  x = rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32)
  y = rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32)
  vg = jax.jit(jax.value_and_grad(lambda p, a, b: lpips_distance(p, a, b, net="alex"), argnums=1))
  v, gx = vg(m.params, x, y)
  assert gx.shape == x.shape and np.isfinite(np.asarray(gx)).all() and float(v) > 0
  v0, _ = vg(m.params, x, x)
  assert abs(float(v0)) < 1e-9


def test_whole_lpips_state_dict_and_model_dir_backbone(g, tmp_path):
  """The converter also takes an already-converted backbone dir, and refuses a lin file alone."""
  e = g.expected["nets"]["alex"]
  bb = tmp_path / "alex_bb"
  res = converters.convert_file(g.path(e["backbone_file"]), bb)
  assert res.family == "alexnet"
  converters.convert_file(g.path(e["lin_file"]), tmp_path / "lp", backbone=bb)
  with pytest.raises(converters.ConversionError, match="backbone"):
    converters.convert_file(g.path(e["lin_file"]), tmp_path / "lp2")


def test_whole_lpips_module_state_dict(g, tmp_path):
  """A saved ``lpips.LPIPS().state_dict()`` (net.slice*, lin*, lins.* aliases, scaling_layer) converts
  to the same params as lin file + backbone."""
  torch = pytest.importorskip("torch")
  from jaxinv.converters.table import flatten_paths
  from jaxinv.io import torch_pickle
  e = g.expected["nets"]["alex"]
  lin = torch_pickle.load(g.path(e["lin_file"]))
  bb = torch_pickle.load(g.path(e["backbone_file"]))
  slices = {}
  for key in e["lpips_module_state_dict_keys"]:
    if key.startswith("net.slice"):
      idx = key.split(".")[2]
      slices[key] = bb[f"features.{idx}.{key.split('.')[-1]}"]
  sd = {"scaling_layer.shift": np.array([-.030, -.088, -.188], np.float32).reshape(1, 3, 1, 1),
        "scaling_layer.scale": np.array([.458, .448, .450], np.float32).reshape(1, 3, 1, 1)}
  sd.update(slices)
  sd.update(lin)
  sd.update({"lins." + k[len("lin"):]: v for k, v in lin.items()})
  assert sorted(sd) == sorted(e["lpips_module_state_dict_keys"])
  src = tmp_path / "lpips_full.pth"
  torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, src)
  a = converters.convert_file(src, tmp_path / "a")
  b = converters.convert_file(g.path(e["lin_file"]), tmp_path / "b", backbone=g.path(e["backbone_file"]))
  fa, fb = flatten_paths(a.params), flatten_paths(b.params)
  assert sorted(fa) == sorted(fb)
  for k in fa:
    np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg=k)
