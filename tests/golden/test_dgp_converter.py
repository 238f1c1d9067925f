"""dgp-biggan converter: detection, model-dir round trip, refusals."""

import jax
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.converters import dgp_biggan
from jaxinv.converters.base import ConversionError
from jaxinv.io import torch_pickle
from jaxinv.models import biggan, registry


def test_detect_and_convert_files(golden, tmp_path):
  gd = golden("dgp")
  ck = gd.expected["checkpoint"]
  files = [(ck["G_file"], "biggan", ck["G_keys"]), (ck["D_file"], "biggan_d", ck["D_keys"])]
  files += [(te["finetuned_state_dict_file"], "biggan", None)
            for te in gd.expected["trajectories"].values() if te.get("finetuned_state_dict_file")]
  for name, family, keys in files:
    obj = torch_pickle.load(gd.path(name))
    if keys is not None:
      assert sorted(obj) == sorted(keys)
    assert converters.detect(obj) == dgp_biggan.NAME
    dest = tmp_path / name
    res = converters.convert_file(gd.path(name), dest)
    assert res.family == family
    model = registry.load_model(dest)
    assert model.family == family and model.config == res.config
    flat_a = jax.tree_util.tree_leaves(model.params)
    flat_b = jax.tree_util.tree_leaves(res.params)
    assert all(np.array_equal(a, b) for a, b in zip(flat_a, flat_b))


def test_refuses_missing_and_misshaped(golden):
  gd = golden("dgp")
  sd = dict(torch_pickle.load(gd.path(gd.expected["checkpoint"]["G_file"])))
  conv2 = sorted(k for k in sd if k.endswith(".conv2.weight"))[-1]
  gain = sorted(k for k in sd if k.endswith(".bn1.gain.weight"))[-1]
  bad = dict(sd)
  del bad[conv2]
  with pytest.raises(ConversionError, match="missing"):
    dgp_biggan.convert(bad)
  bad = dict(sd)
  bad[gain] = bad[gain][:, :-1]
  with pytest.raises(ConversionError):
    dgp_biggan.convert(bad)
  bad = dict(sd, **{"blocks.0.0.extra.weight": np.zeros(3, np.float32)})
  with pytest.raises(ConversionError, match="unexpected"):
    dgp_biggan.convert(bad)


def test_named_constructors_match_official_widths():
  c = biggan.BigGANConfig.dgp_128()
  assert c.in_channels[0] == 1536 and c.out_channels[-1] == 96 and c.dim_z == 120
  c = biggan.BigGANConfig.dgp_256()
  assert c.num_blocks == 6 and c.dim_z == 119 and c.z_chunk == 17 and c.cond_dim == 145
