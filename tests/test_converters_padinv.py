"""PadInv converters: auto-detection, Hammer runner layout, refusals (fixture checkpoints)."""

import json

import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import padinv as C
from jaxinv.io import torch_pickle
from tests.conftest import golden_root

GOLDEN = golden_root() / "padinv"


@pytest.fixture(scope="module")
def ckpts():
  names = json.loads((GOLDEN / "expected.json").read_text())["checkpoint_keys"]
  return {n: torch_pickle.load(GOLDEN / n) for n in names}


def test_each_checkpoint_detected_once(ckpts):
  found = {n: converters.detect(o) for n, o in ckpts.items()}
  assert sorted(v for v in found.values() if v.startswith("padinv")) == [
      "padinv-encoder", "padinv-generator"]


def _gen(ckpts):
  return next(o for o in ckpts.values() if C.GENERATOR.detect(o))


def _enc(ckpts):
  return next(o for o in ckpts.values() if C.ENCODER.detect(o))


def test_generator_uses_smooth_weights_and_generator_w_avg(ckpts):
  obj = _gen(ckpts)
  res = C.GENERATOR.convert(obj)
  sm = obj["models"]["generator_smooth"]
  np.testing.assert_array_equal(res.params["synthesis"]["layer0"]["bias"], sm["synthesis.layer0.bias"])
  np.testing.assert_array_equal(res.params["w_avg"], obj["models"]["generator"]["w_avg"])
  raw = C.GENERATOR.convert(obj, use_smooth=False)
  assert not np.array_equal(raw.params["synthesis"]["layer0"]["weight"],
                            res.params["synthesis"]["layer0"]["weight"])


def test_bare_models_dict_is_accepted(ckpts):
  obj = _gen(ckpts)
  assert C.GENERATOR.detect(obj["models"])
  assert C.GENERATOR.convert(obj["models"]).config == C.GENERATOR.convert(obj).config


def test_truncated_generator_is_refused(ckpts):
  obj = _gen(ckpts)
  sm = dict(obj["models"]["generator_smooth"])
  del sm["synthesis.layer3.noise"]
  with pytest.raises(converters.ConversionError, match="missing"):
    C.GENERATOR.convert({"models": {"generator_smooth": sm, "generator": obj["models"]["generator"]}})


def test_encoder_unknown_key_is_refused(ckpts):
  obj = _enc(ckpts)
  sd = dict(obj["models"]["encoder"])
  sd["latent_heads.0.extra.weight"] = np.zeros((2, 2), np.float32)
  bad = dict(obj, models=dict(obj["models"], encoder=sd))
  with pytest.raises(converters.ConversionError):
    C.ENCODER.convert(bad)


def test_encoder_needs_w_avg(ckpts):
  obj = _enc(ckpts)
  bad = dict(obj, models={"encoder": obj["models"]["encoder"]})
  with pytest.raises(converters.ConversionError, match="w_avg"):
    C.ENCODER.convert(bad)
