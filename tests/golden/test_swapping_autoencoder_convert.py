"""Converting the official Swapping Autoencoder checkpoint: auto-detection, the architecture inferred
from shapes agrees with the official option rules, parameter counts, every tensor placed exactly
(layouts), refusals, and the model directory round trip through ``jaxinv convert``."""

import json

import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import swapping_autoencoder as conv
from jaxinv.converters.table import flatten_paths
from jaxinv.models import swapping_autoencoder as sae
from tests.golden import sae_common as C


@pytest.fixture(scope="module")
def conv_result(golden):
  g = golden(C.FOLDER)
  sd, res = C.converted(g)
  return g, sd, res


def test_detect(conv_result):
  g, sd, res = conv_result
  assert converters.detect(sd) == conv.NAME


def test_config_matches_official_rules(conv_result):
  g, sd, res = conv_result
  opts = g.expected["options_all"]
  assert res.config == sae.from_options(opts)
  assert res.config.crop_size == opts["crop_size"]
  n = sae.infer_config({k: v.shape for k, v in sd.items()}).code_stride
  assert 2 ** opts["netE_num_downsampling_sp"] == n


def test_parameter_counts(conv_result):
  g, sd, res = conv_result
  for part, want in g.expected["checkpoint"]["num_parameters"].items():
    got = sum(int(np.prod(np.shape(v))) for v in flatten_paths(res.params[part]).values())
    assert got == want, f"{part}: {got} parameters, official {want}"


def test_every_tensor_in_place(conv_result):
  g, sd, res = conv_result
  flat = flatten_paths(res.params)
  used = 0
  for item in g.expected["checkpoint"]["keys"]:
    key = item["key"]
    if item["kind"] != "parameter":
      continue
    ours = flat[key.replace(".", "/")]
    if key == "G.ToRGB.bias":
      ours = np.asarray(ours).reshape(item["shape"])
    else:
      ours = C.torch_layout(item["shape"], ours)
    np.testing.assert_array_equal(ours, sd[key], err_msg=key)
    used += 1
  assert used == len(flat)


def test_refuses_truncated_and_wrong_options(conv_result):
  g, sd, res = conv_result
  bad = dict(sd)
  bad.pop("G.ToRGB.bias")
  with pytest.raises(converters.ConversionError, match="ToRGB"):
    conv.convert(bad, config=g.expected["options_all"])
  opts = dict(g.expected["options_all"], netG_scale_capacity=2 * g.expected["options_all"]["netG_scale_capacity"])
  with pytest.raises(converters.ConversionError, match="options do not describe"):
    conv.convert(sd, config=opts)


def test_convert_cli_roundtrip(conv_result, tmp_path):
  from jaxinv.cli import main
  from jaxinv.models.registry import load_model
  g, sd, res = conv_result
  opt = tmp_path / "options.json"
  opt.write_text(json.dumps(g.expected["options_all"]))
  dest = tmp_path / "sae"
  assert main(["convert", str(g.path(g.expected["checkpoint"]["file"])), str(dest),
               "--option", f"config={opt}"]) == 0
  m = load_model(dest, expect_family="swapping_autoencoder")
  assert m.config == res.config
  assert m.extras["options"]["lambda_R1"] == g.expected["options_all"]["lambda_R1"]
  a, b = flatten_paths(m.params), flatten_paths(res.params)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
