"""The safe NVIDIA network-pickle reader against nvidia_stylegan/ (every tensor, every file).

Tolerance: pickle loading is exact (README §8) — every tensor bit-identical.
"""

import io
import pickle

import numpy as np
import pytest

from jaxinv.io import nvidia_pickle as nv
from jaxinv.io.torch_pickle import CheckpointError

FOLDER = "nvidia_stylegan"


def _tags(g, kind=None):
  return [t for t, m in g.expected["models"].items() if kind is None or (m["kind"] == "tf") == (kind == "tf")]


def _walk(obj, path="<root>"):
  yield path, obj
  for name, child in obj.children.items():
    yield from _walk(child, name if path == "<root>" else f"{path}.{name}")


def _subset(small, big):
  """Every key of ``small`` is in ``big`` with an equal (recursively: subset) value."""
  if isinstance(small, dict):
    return isinstance(big, dict) and all(k in big and _subset(v, big[k]) for k, v in small.items())
  return small == big


@pytest.fixture(scope="module")
def g(golden):
  return golden(FOLDER)


def test_native_pickles_every_tensor_and_record(g):
  f = g.npz("fixtures.npz")
  tags = _tags(g, "native")
  if not tags:
    pytest.skip("no native network pickle in this case")
  for tag in tags:
    m = g.expected["models"][tag]
    top = nv.load(g.path(m["pickle"]["file"]))
    assert list(top) == m["pickle_keys"]
    for part, want_class in m["safe_reader"]["top_level_classes"].items():
      got = top[part]
      assert (type(got).__name__ if isinstance(got, dict) else got.class_name) == want_class
    for part, shapes in m["state_dict"].items():
      if shapes is None:
        continue
      sd = nv.state_dict(top[part])
      assert list(sd) == list(shapes), (tag, part)       # torch order: params, buffers, children
      assert {k: list(v.shape) for k, v in sd.items()} == shapes, (tag, part)
      assert all(v.dtype == np.float32 for v in sd.values())
    for part, kwargs in m["init_kwargs"].items():
      if kwargs is not None:
        assert top[part].init_kwargs == kwargs, (tag, part)
    walked = list(_walk(top["G_ema"]))
    listed = m["safe_reader"]["persistent_objects_G_ema"]
    assert [(p, o.class_name, o.version) for p, o in walked] == [
        (r["path"], r["class_name"], r["version"]) for r in listed]
    for (_, o), r in zip(walked, listed):
      assert r["module_src"] in o.module_src        # kept as text, never run
    # values: the stored arrays the fixtures quote
    sd = nv.state_dict(top["G_ema"])
    np.testing.assert_array_equal(sd["mapping.w_avg"], f[f"{tag}.w_avg"])
    if f"{tag}.magnitude_ema" in f.files:
      mags = [v for k, v in sd.items() if k.endswith(".magnitude_ema")]
      np.testing.assert_array_equal(np.stack(mags), f[f"{tag}.magnitude_ema"])


def _torch_reference(path):
  """Every tensor of a native pickle decoded by PyTorch itself (an independent check)."""
  torch = pytest.importorskip("torch")
  import torch._utils as tu

  class Ref(pickle.Unpickler):
    def find_class(self, module, name):
      if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
        return lambda meta: meta["state"]
      if (module, name) == ("torch.storage", "_load_from_bytes"):
        return lambda b: torch.load(io.BytesIO(b), weights_only=True)
      if module == "torch._utils":
        return getattr(tu, name)
      if (module, name) == ("dnnlib.util", "EasyDict"):
        return dict
      return super().find_class(module, name)

  def flat(state, prefix=""):
    out = {}
    for group in ("_parameters", "_buffers"):
      for k, v in (state.get(group) or {}).items():
        if v is not None:
          out[prefix + k] = v.detach().numpy()
    for k, child in (state.get("_modules") or {}).items():
      out.update(flat(child, f"{prefix}{k}."))
    return out
  with open(path, "rb") as fh:
    top = Ref(fh).load()
  return {part: flat(v) for part, v in top.items() if isinstance(v, dict) and "_modules" in v}


def test_native_tensors_bit_identical_to_torch(g):
  tags = _tags(g, "native")
  if not tags:
    pytest.skip("no native network pickle in this case")
  for tag in tags:
    path = g.path(g.expected["models"][tag]["pickle"]["file"])
    ref = _torch_reference(path)
    top = nv.load(path)
    for part, want in ref.items():
      got = nv.state_dict(top[part])
      assert list(got) == list(want)
      for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{tag} {part} {k}")


def test_tf_pickle(g):
  tags = _tags(g, "tf")
  if not tags:
    pytest.skip("no legacy TF pickle in this case")
  f = g.npz("fixtures.npz")
  for tag in tags:
    m = g.expected["models"][tag]
    p = m["pickle"]
    nets = nv.load(g.path(p["file"]))
    assert isinstance(nets, tuple) and [n.name for n in nets] == [
        {"G": "G", "D": "D", "Gs": "Gs"}[k] for k in m["safe_reader"]["networks"]]
    assert [n.state["version"] for n in nets] == m["safe_reader"]["versions"]
    assert all(n.state["build_module_src"] == p["build_module_src"] for n in nets)
    assert nets[0].static_kwargs == p["g_static_kwargs"] and nets[1].static_kwargs == p["d_static_kwargs"]
    for net_name, net in (("G", nets[0]), ("D", nets[1])):
      groups = p["tf_variables"][net_name]
      if not isinstance(groups, dict):          # a network without components
        groups = {"own": groups}
      assert sorted(groups) == sorted(["own", *net.components])
      for comp, listed in groups.items():
        got_net = net if comp == "own" else net.components[comp]
        got = [[k, list(v.shape)] for k, v in got_net.variables.items()]
        assert got == listed, (net_name, comp)
    # Gs → the PyTorch G_ema state dict (legacy.py's rules); filters are not stored in TF files
    sd = nv.tf_to_torch_generator_state(nets[2])
    want = m["state_dict"]["G_ema"]
    assert {k: list(v.shape) for k, v in sd.items()} == {
        k: s for k, s in want.items() if not k.endswith("resample_filter")}
    assert _subset(nv.tf_generator_kwargs(nets[2]), p["expected_pytorch_kwargs"]["G"])
    np.testing.assert_array_equal(sd["mapping.w_avg"], f[f"{tag}.w_avg"])


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_both_numpy_module_names(tmp_path, numpy_module):
  value = {"gain": np.float64(0.125), "size": np.arange(3, dtype=np.int64), "flag": np.bool_(True)}
  data = pickle.dumps(value, protocol=3)   # GLOBAL opcodes, bytes without _codecs
  for name in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
    data = data.replace(b"c" + name + b"\n", b"c" + numpy_module.encode() + b"\n")
  assert numpy_module.encode() in data
  path = tmp_path / "np.pkl"
  path.write_bytes(data)
  got = nv.load(path)
  assert got["gain"] == 0.125 and got["flag"] and got["size"].tolist() == [0, 1, 2]


def _reduce_pickle(module, name, arg):
  return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
          + pickle.dumps((arg,), protocol=2)[2:-1] + b"R.")


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"),
                                          ("torch_utils.persistence", "persistent_class"),
                                          ("numpy", "load")])
def test_off_list_global_refused_nothing_runs(tmp_path, module, name):
  marker = tmp_path / "ran"
  path = tmp_path / "evil.pkl"
  path.write_bytes(_reduce_pickle(module, name, f"touch {marker}"))
  with pytest.raises(nv.UnsafePickleError, match=f"{module}.{name}"):
    nv.load(path)
  assert not marker.exists()


def test_object_arrays_refused(tmp_path):
  path = tmp_path / "obj.pkl"
  path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
  with pytest.raises(nv.UnsafePickleError):
    nv.load(path)


def test_malformed_files(tmp_path):
  empty = tmp_path / "empty.pkl"
  empty.write_bytes(b"")
  with pytest.raises(CheckpointError, match="empty"):
    nv.load(empty)
  with pytest.raises(CheckpointError, match="no such file"):
    nv.load(tmp_path / "missing.pkl")


def test_truncated_pickle(g, tmp_path):
  tag = _tags(g, "native")[0] if _tags(g, "native") else _tags(g)[0]
  data = g.path(g.expected["models"][tag]["pickle"]["file"]).read_bytes()
  cut = tmp_path / "cut.pkl"
  cut.write_bytes(data[: len(data) // 2])
  with pytest.raises(CheckpointError):
    nv.load(cut)


def _poisoned_copy(g, tag, tmp_path):
  """The tag's pickle with every module_src placeholder replaced (same byte length, so the
  opcodes and frames stay valid) by code that would create files if it were executed."""
  m = g.expected["models"][tag]
  data = g.path(m["pickle"]["file"]).read_bytes()
  count = 0
  for placeholder in m["pickle"]["module_src_placeholders"].values():
    old = placeholder.encode()
    code = b"import os;os.system('touch PWNED');open('PWNED2','w')#"
    assert len(code) <= len(old)
    new = code + b"x" * (len(old) - len(code))
    count += data.count(old)
    data = data.replace(old, new)
  assert count > 0
  path = tmp_path / "poisoned.pkl"
  path.write_bytes(data)
  return path


def test_embedded_source_never_runs(g, tmp_path, monkeypatch):
  from jaxinv.cli import main
  tags = [t for t, m in g.expected["models"].items() if m["kind"] == "ada"]
  if not tags:
    pytest.skip("no native StyleGAN2-ADA pickle in this case")
  tag = tags[0]
  monkeypatch.chdir(tmp_path)
  poisoned = _poisoned_copy(g, tag, tmp_path)
  top = nv.load(poisoned)
  assert "os.system" in top["G_ema"].module_src        # read as text ...
  clean_dir, poisoned_dir = tmp_path / "clean", tmp_path / "poisoned"
  assert main(["convert", str(g.path(g.expected["models"][tag]["pickle"]["file"])),
               str(clean_dir)]) == 0
  assert main(["convert", str(poisoned), str(poisoned_dir)]) == 0
  assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()   # ... never run
  from jaxinv.io.checkpoints import load_model_dir
  from jaxinv.converters.table import flatten_paths
  a, b = (flatten_paths(load_model_dir(d)[1]) for d in (clean_dir, poisoned_dir))
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_cli_refuses_off_list_pickle(tmp_path, capsys):
  from jaxinv.cli import main
  marker = tmp_path / "ran"
  path = tmp_path / "evil.pkl"
  path.write_bytes(_reduce_pickle("os", "system", f"touch {marker}"))
  assert main(["convert", str(path), str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "os.system" in err
  assert not marker.exists() and not (tmp_path / "out").exists()
