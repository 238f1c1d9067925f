"""jaxinv.io.inflight: one atomic ``.npz`` per checkpoint, every dtype back as saved, stale files
swept, a checkpoint of another batch refused."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.io.inflight import InflightStore


def _state():
  return {"z": np.arange(6, dtype=np.float32).reshape(2, 3),
          "half": jnp.full((2, 2), 1.5, jnp.bfloat16),      # .npz stores it as raw bytes
          "count": np.array(7, np.int32)}


def test_round_trip_keeps_values_dtypes_and_records(tmp_path):
  store = InflightStore(str(tmp_path))
  state = _state()
  store.save("batch", [["h", "a"]], state, 4, {"loss": np.ones((4, 2), np.float32)})
  got, step, records = store.restore("batch", state, with_records=True)
  assert step == 4 and sorted(records) == ["loss"] and records["loss"].shape == (4, 2)
  for k, v in state.items():
    assert got[k].dtype == v.dtype, k
    np.testing.assert_array_equal(np.asarray(got[k], np.float32), np.asarray(v, np.float32))


def test_newer_step_replaces_older_and_stale_files_go(tmp_path):
  store = InflightStore(str(tmp_path))
  d = tmp_path / "inflight" / "batch"
  store.save("batch", [["h", "a"]], _state(), 2)
  (d / ".tmp-torn.npz").write_bytes(b"half a file")      # what a kill mid-write leaves
  (d / "step_00000001").mkdir()                           # an older jaxinv's orbax folder
  (d / "records_00000001.npz").write_bytes(b"")
  store.save("batch", [["h", "a"]], _state(), 4)
  assert sorted(p.name for p in d.iterdir()) == ["meta.json", "step_00000004.npz"]
  assert store.restore("batch", _state())[1] == 4


def test_checkpoint_of_another_structure_is_refused(tmp_path):
  store = InflightStore(str(tmp_path))
  store.save("batch", [["h", "a"]], _state(), 2)
  with pytest.raises(ValueError, match="does not match this batch"):
    store.restore("batch", {"z": np.zeros((2, 3), np.float32)})
  with pytest.raises(ValueError, match="shape"):
    store.restore("batch", dict(_state(), z=np.zeros((3, 3), np.float32)))
  assert store.restore("other", _state()) is None
