"""A method run batch after batch compiles its program once: the second batch compiles nothing."""


import numpy as np

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
