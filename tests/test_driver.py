"""The library driver (jaxinv.inversion.run.run) on a toy method: keys by name, batches, resume."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxinv.inversion import run
from tests.conftest import count_compiles


def _loss(variables, data, shared):
  r = variables["v"] - data["target"]
  return jnp.sum(r * r) + shared["w"] * jnp.sum(jnp.sin(variables["v"])), {}


_OPT = optax.adam(0.05)


@dataclasses.dataclass(frozen=True, eq=False)
class Toy:
  steps: int = 12
  fail_after: int | None = None   # raise after this many steps have been checkpointed
  name = "toy"

  def settings(self):
    return {"steps": self.steps}

  def run_batch(self, data, keys, ctx):
    init = {"v": jax.vmap(lambda k: jax.random.normal(k, (3,)))(jnp.asarray(keys))}
    if self.fail_after is not None and ctx.checkpoint is not None:
      save = ctx.checkpoint.save

      def save_then_fail(state, step, records=None):
        save(state, step, records)
        if step >= self.fail_after:
          raise KeyboardInterrupt("simulated kill")
      ctx.checkpoint.save = save_then_fail
    res = run.optimize_batch(ctx, _loss, init, {"target": jnp.asarray(data["target"])}, _OPT,
                             self.steps, shared={"w": 0.3})
    return run.BatchOutput({"v": res.variables["v"]}, {"loss": res.loss},
                           {"": np.zeros((len(keys), 4, 4, 3), np.float32)})


NAMES = [f"img{i}" for i in range(5)]
TARGETS = np.arange(15, dtype=np.float32).reshape(5, 3) / 10


def _run(method, names=NAMES, batch=2, **kw):
  index = {n: i for i, n in enumerate(NAMES)}
  load = lambda idx: {"target": TARGETS[[index[names[i]] for i in idx]]}
  return run.run(method, names, load, seed=7, batch=batch, progress=False, chunk=4, **kw)


def test_same_image_same_result_whatever_its_batch_and_position():
  whole = _run(Toy(), batch=2)
  assert whole.stepwise["loss"].shape == (12, 5) and whole.arrays["v"].shape == (5, 3)
  alone = _run(Toy(), names=["img3"], batch=1)
  other = _run(Toy(), names=list(reversed(NAMES)), batch=3)
  np.testing.assert_array_equal(alone.arrays["v"][0], whole.arrays["v"][3])
  np.testing.assert_allclose(other.arrays["v"][::-1], whole.arrays["v"], rtol=0, atol=1e-6)
  np.testing.assert_allclose(other.stepwise["loss"][:, ::-1], whole.stepwise["loss"], atol=1e-6)
  assert whole.settings["image_keys"] == run.describe(7)


def test_repeated_names_are_refused():
  with pytest.raises(ValueError, match="unique"):
    _run(Toy(), names=["img0", "img0"])


def test_finished_batches_are_not_recomputed(tmp_path):
  first = _run(Toy(), work_dir=str(tmp_path))
  with count_compiles() as c:
    again = _run(Toy(), work_dir=str(tmp_path))
  assert c.count == 0            # every batch came from done/, nothing ran
  np.testing.assert_array_equal(again.arrays["v"], first.arrays["v"])
  np.testing.assert_array_equal(again.stepwise["loss"], first.stepwise["loss"])


def test_interrupted_batch_resumes_to_the_uninterrupted_result(tmp_path, capsys):
  clean = _run(Toy())
  with pytest.raises(KeyboardInterrupt):
    _run(Toy(fail_after=4), work_dir=str(tmp_path))   # first batch stops after its first chunk
  done = list((tmp_path / "done").iterdir())
  inflight = list((tmp_path / "inflight").glob("*/step_*"))
  assert not done and [p.name for p in inflight] == ["step_00000004.npz"]
  resumed = _run(Toy(), work_dir=str(tmp_path))
  assert "at step 4/12" in capsys.readouterr().err
  np.testing.assert_array_equal(resumed.stepwise["loss"], clean.stepwise["loss"])
  np.testing.assert_array_equal(resumed.arrays["v"], clean.arrays["v"])
  assert not list((tmp_path / "inflight").glob("*/step_*"))


def test_write_result(tmp_path):
  res = _run(Toy(steps=2))
  run.write_result(str(tmp_path), res, {"extra": 1})
  f = np.load(tmp_path / "result.npz")
  assert list(f["names"]) == NAMES and f["v"].shape == (5, 3) and f["loss"].shape == (2, 5)
  assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{n}.png" for n in NAMES)
  import json
  cfg = json.loads((tmp_path / "config.json").read_text())["settings"]
  assert cfg["method"] == "toy" and cfg["extra"] == 1 and cfg["method_settings"]["steps"] == 2


def test_a_run_records_only_its_own_methods_flags():
  from jaxinv.cli import build_parser
  from jaxinv.cli.common import run_settings
  p = build_parser()
  mg = run_settings(p.parse_args(["invert", "--generator", "G", "--images", "x", "--out", "o"]))
  dgp = run_settings(p.parse_args(["invert", "--method", "dgp", "--generator", "G", "--images",
                                   "x", "--out", "o"]))
  assert "schedule" not in mg and "pti_steps" not in mg and "codes" in mg and "init_type" in mg
  assert "schedule" in dgp and "init_type" not in dgp and "seed" in dgp
