"""The torch-free checkpoint reader: parity with torch.load, legacy format, refusal of code."""

import os
import pickle
import zipfile

import numpy as np
import pytest

from jaxinv.io import torch_pickle

torch = pytest.importorskip("torch")  # installed by the [convert] extra, used here only as the reference


def _roundtrip(tmp_path, obj, **save_kwargs):
  path = tmp_path / "ckpt.pth"
  torch.save(obj, path, **save_kwargs)
  return torch_pickle.load(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_matches_torch_for_dtypes_views_and_nesting(tmp_path, zip_format):
  base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
  obj = {
      "w": torch.randn(4, 3, 3, 3),
      "transposed": base.transpose(0, 2),           # non-contiguous view
      "slice": base[1, :, 1:3],                     # offset view into a shared storage
      "half": torch.randn(5).half(),
      "long": torch.arange(7),
      "bool": torch.tensor([True, False]),
      "scalar": torch.tensor(3.5),
      "nested": {"list": [torch.ones(2), 3, "text"], "tuple": (1.5, torch.zeros(1, 2))},
  }
  got = _roundtrip(tmp_path, obj, _use_new_zipfile_serialization=zip_format)
  for key in ("w", "transposed", "slice", "half", "long", "bool", "scalar"):
    np.testing.assert_array_equal(got[key], obj[key].numpy(), err_msg=key)
    assert got[key].dtype == obj[key].numpy().dtype
  np.testing.assert_array_equal(got["nested"]["list"][0], np.ones(2, np.float32))
  assert got["nested"]["list"][1:] == [3, "text"]
  np.testing.assert_array_equal(got["nested"]["tuple"][1], np.zeros((1, 2), np.float32))


def test_state_dict_and_parameters(tmp_path):
  net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
  got = _roundtrip(tmp_path, net.state_dict())
  assert list(got) == list(net.state_dict())
  for k, v in net.state_dict().items():
    np.testing.assert_array_equal(got[k], v.numpy())
  params = _roundtrip(tmp_path, {"p": torch.nn.Parameter(torch.ones(3))})
  np.testing.assert_array_equal(params["p"], np.ones(3, np.float32))


def test_refuses_pickled_code_without_running_it(tmp_path):
  marker = tmp_path / "ran"

  class Evil:
    def __reduce__(self):
      return (os.system, (f"touch {marker}",))

  path = tmp_path / "evil.pth"
  torch.save({"x": torch.ones(1), "evil": Evil()}, path)
  with pytest.raises(torch_pickle.UnsafeCheckpointError, match="posix.system|os.system"):
    torch_pickle.load(path)
  assert not marker.exists()


def test_refuses_whole_module_pickle(tmp_path):
  path = tmp_path / "module.pth"
  torch.save(torch.nn.Linear(2, 2), path)
  with pytest.raises(torch_pickle.UnsafeCheckpointError, match="state_dict"):
    torch_pickle.load(path)


def test_truncated_and_garbage_files(tmp_path):
  path = tmp_path / "ok.pth"
  torch.save({"w": torch.randn(64, 64)}, path)
  data = path.read_bytes()
  cut = tmp_path / "cut.pth"
  cut.write_bytes(data[: len(data) // 2])
  with pytest.raises(torch_pickle.CheckpointError, match="cut.pth"):
    torch_pickle.load(cut)
  junk = tmp_path / "junk.pth"
  junk.write_bytes(b"not a checkpoint at all")
  with pytest.raises(torch_pickle.CheckpointError, match="junk.pth"):
    torch_pickle.load(junk)
  empty = tmp_path / "empty.pth"
  empty.write_bytes(b"")
  with pytest.raises(torch_pickle.CheckpointError, match="empty"):
    torch_pickle.load(empty)
  with pytest.raises(torch_pickle.CheckpointError, match="no such file"):
    torch_pickle.load(tmp_path / "missing.pth")


def test_xz_compressed(tmp_path):
  import lzma
  path = tmp_path / "a.pth"
  torch.save({"w": torch.randn(3, 3)}, path)
  xz = tmp_path / "a.pth.xz"
  xz.write_bytes(lzma.compress(path.read_bytes()))
  np.testing.assert_array_equal(torch_pickle.load(xz)["w"], torch_pickle.load(path)["w"])


def test_argparse_namespace_becomes_attribute_bag(tmp_path):
  import argparse
  path = tmp_path / "train.pt"
  torch.save({"g_ema": {"w": torch.ones(2)}, "args": argparse.Namespace(size=32, lr=0.002)}, path)
  got = torch_pickle.load(path)
  assert got["args"].size == 32 and got["args"].lr == 0.002


def _zip_pickle(tmp_path, pickled, name="x.pth"):
  path = tmp_path / name
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", pickled)
  return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_plain_python_values_of_any_protocol(tmp_path, protocol):
  obj = {"c": complex(1, 2), "s": {1, 2}, "f": frozenset([3]), "sl": slice(1, 5)}
  assert torch_pickle.load(_zip_pickle(tmp_path, pickle.dumps(obj, protocol=protocol))) == obj


def test_stream_cannot_set_state_on_allowed_functions(tmp_path):
  """BUILD on an allow-listed function (e.g. to replace its defaults) is refused, and the
  reader's own functions stay as they were."""
  before = torch_pickle._rebuild_parameter.__defaults__
  stream = (b"\x80\x02ctorch._utils\n_rebuild_parameter\n"
            b"N}X\x0c\x00\x00\x00__defaults__(K\x01ts\x86b.")
  with pytest.raises(torch_pickle.CheckpointError):
    torch_pickle.load(_zip_pickle(tmp_path, stream))
  assert torch_pickle._rebuild_parameter.__defaults__ == before


def test_network_pickles_get_the_same_guards(tmp_path):
  """NVIDIA network pickles go through the same guards: BUILD on an allow-listed function is
  refused (the function stays as it was) and a damaged opcode stream is a one-line error."""
  from jaxinv.io import nvidia_pickle
  before = torch_pickle._rebuild_parameter.__defaults__
  path = tmp_path / "net.pkl"
  path.write_bytes(b"\x80\x04\x8c\x0ctorch._utils\x8c\x12_rebuild_parameter\x93"
                   b"}(\x8c\x0c__defaults__)ub.")
  with pytest.raises(torch_pickle.CheckpointError, match="sets state"):
    nvidia_pickle.load(path)
  assert torch_pickle._rebuild_parameter.__defaults__ == before
  path.write_bytes(b"\x80\x04\x8c\xff\x00\x00\x00abc.")     # a string longer than the file
  with pytest.raises(torch_pickle.CheckpointError, match="damaged pickle stream"):
    nvidia_pickle.load(path)
