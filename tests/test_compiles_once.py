"""A method run batch after batch compiles its program once: the second batch compiles nothing."""


import numpy as np
import pytest

from tests.conftest import count_compiles


def test_idinvert_second_batch_compiles_nothing():
  from jaxinv.inversion.methods import idinvert
  from jaxinv.models.registry import load_model
  models = idinvert.models_from(load_model("demo-digits"), load_model("demo-digits-encoder"))
  rng = np.random.RandomState(0)
  settings = idinvert.IDInvertSettings(steps=3, feat_weight=0.0, reg_weight=0.5)
  batches = [rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32) for _ in range(2)]
  first = idinvert.invert(models, batches[0], settings, progress=False)
  with count_compiles() as c:
    second = idinvert.invert(models, batches[1], settings, progress=False)
  assert c.count == 0, f"the second batch compiled {c.count} programs"
  assert not np.allclose(first.wp, second.wp)      # it did run on the new batch


def test_padinv_second_batch_compiles_nothing(golden):
  from jaxinv.inversion.methods import padinv
  from jaxinv.models import padinv as padinv_model
  from tests.golden import padinv_common
  _, gen, _ = padinv_common.load(golden("padinv"))
  module = padinv_model.PadInvGenerator(gen.config)
  res = gen.config.resolution
  settings = padinv.PadInvSettings(steps=2, lpips_weight=0.0)
  rng = np.random.RandomState(0)
  starts = [padinv.initial_variables(gen.config, gen.params, 2) for _ in range(2)]
  targets = [rng.uniform(-1, 1, (2, res, res, 3)).astype(np.float32) for _ in range(2)]
  padinv.refine(module, gen.params, starts[0], targets[0], settings, progress=False)
  with count_compiles() as c:
    out = padinv.refine(module, gen.params, starts[1], targets[1], settings, progress=False)
  assert c.count == 0, f"the second batch compiled {c.count} programs"
  assert out.loss.shape == (2, 2)


def _driver_second_batch_compiles_nothing(method, data, names):
  """Runs ``method`` through the driver on ``names[:1]`` then on ``names[1:]`` (batch 1): the
  later batches — same spec, same shapes — compile nothing."""
  from jaxinv.inversion import run
  load = lambda idx, off=0: {k: v[[i + off for i in idx]] for k, v in data.items()}
  first = run.run(method, names[:1], load, seed=0, batch=1, progress=False)
  with count_compiles() as c:
    rest = run.run(method, names[1:], lambda idx: load(idx, 1), seed=0, batch=1, progress=False)
  assert c.count == 0, f"later batches compiled {c.count} programs"
  assert rest.stepwise["loss"].shape[1] == len(names) - 1
  return first, rest


def test_mganprior_driver_second_batch_compiles_nothing():
  from jaxinv.inversion import objectives
  from jaxinv.inversion.methods import mganprior
  from jaxinv.models.registry import load_model
  g = load_model("demo-digits")
  cfg = mganprior.MGANpriorConfig(codes=2, layer=2, loss=objectives.LossConfig(loss="mse"),
                                  optimizer="adam", lr=0.05, steps=3)
  rng = np.random.RandomState(0)
  data = {"observation": rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)}
  _driver_second_batch_compiles_nothing(mganprior.Method(g.module, g.params, cfg), data,
                                        ["a", "b", "c"])


def test_style_driver_second_batch_compiles_nothing(golden):
  from jaxinv.inversion import objectives, style_spaces
  from jaxinv.models.registry import load_model
  from jaxinv import converters
  import tempfile
  gd = golden("stylegan2_rosinality")
  with tempfile.TemporaryDirectory() as d:
    converters.convert_file(str(gd.path(gd.expected["checkpoint"]["file"])), d + "/G")
    g = load_model(d + "/G")
  res = g.config.resolution
  method = style_spaces.Method(g.module, g.params, style_spaces.StyleSpace("wp"),
                               objectives.LossConfig(loss="mse"), "adam", 0.05, 2)
  rng = np.random.RandomState(0)
  data = {"observation": rng.uniform(-1, 1, (3, res, res, 3)).astype(np.float32)}
  _driver_second_batch_compiles_nothing(method, data, ["a", "b", "c"])


@pytest.mark.slow   # ~150 s: DGP compiles a program per stage kind plus the candidate search
def test_dgp_driver_second_batch_compiles_nothing_and_keys_images_by_name(golden):
  import dataclasses
  from jaxinv.inversion.methods import dgp
  from tests.golden import _dgp
  gd = golden("dgp")
  (G, gp), (D, dp) = _dgp.load_g(gd), _dgp.load_d(gd)
  sched = dgp.load_schedule("in128_SR_D_biased")
  sched = dataclasses.replace(sched, select_num=2, stages=tuple(
      dataclasses.replace(s, iterations=1) for s in sched.stages))
  res = G.config.resolution
  rng = np.random.RandomState(0)
  data = {"origin": rng.uniform(-1, 1, (3, res, res, 3)).astype(np.float32),
          "class": np.asarray([0, 1, 2], np.int32)}
  method = dgp.Method(G, gp, D, dp, sched)
  first, _ = _driver_second_batch_compiles_nothing(method, data, ["a", "b", "c"])
  # image "a" again, second of a batch of 2: the same candidates, z and losses (keys by name;
  # float order only between a vmap of 1 and of 2 generator copies)
  from jaxinv.inversion import run
  again = run.run(method, ["b", "a"], lambda idx: {k: v[[1 - i for i in idx]] for k, v in data.items()},
                  seed=0, batch=2, progress=False)
  for k in ("z0", "z"):
    np.testing.assert_allclose(again.arrays[k][1], first.arrays[k][0], rtol=0, atol=1e-5, err_msg=k)
  np.testing.assert_allclose(again.stepwise["loss"][:, 1], first.stepwise["loss"][:, 0], rtol=1e-5)
