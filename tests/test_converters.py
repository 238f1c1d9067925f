"""Converter behaviour on bad input: clear errors, nothing left behind; fused-scale PGGAN parity."""

import collections
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.models import pggan
from jaxinv.models.registry import load_model
from tests.conftest import assert_close, golden_file

torch = pytest.importorskip("torch")

PGGAN_FILE = golden_file("mganprior", "pggan", "checkpoint")


def _state():
  return collections.OrderedDict(
      (k, torch.from_numpy(np.array(v))) for k, v in converters.read_source(PGGAN_FILE).items())


def test_missing_key_is_named_and_no_output_left(tmp_path):
  sd = _state()
  del sd["layer3.wscale.bias"]
  src = tmp_path / "partial.pth"
  torch.save(sd, src)
  dest = tmp_path / "out"
  with pytest.raises(converters.ConversionError, match="layer3"):
    converters.convert_file(src, dest)
  assert not dest.exists()
  assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []


def test_unexpected_key_is_named(tmp_path):
  sd = _state()
  sd["layer1.extra.weight"] = torch.zeros(3)
  src = tmp_path / "extra.pth"
  torch.save(sd, src)
  with pytest.raises(converters.ConversionError, match="layer1.extra.weight"):
    converters.convert_file(src, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_wrong_shape_is_named(tmp_path):
  sd = _state()
  sd["layer3.conv.weight"] = torch.zeros(32, 32, 5, 5)
  src = tmp_path / "shape.pth"
  torch.save(sd, src)
  with pytest.raises(converters.ConversionError, match="layer3.conv.weight"):
    converters.convert_file(src, tmp_path / "out")


def test_other_architecture_and_forced_format(tmp_path):
  src = tmp_path / "other.pth"
  torch.save({"encoder.fc.weight": torch.zeros(3, 3)}, src)
  with pytest.raises(converters.FormatError, match="unrecognised checkpoint"):
    converters.convert_file(src, tmp_path / "out")
  with pytest.raises(converters.FormatError, match="does not look like"):
    converters.convert_file(src, tmp_path / "out", format="genforce-pggan")
  with pytest.raises(converters.FormatError, match="unknown format"):
    converters.convert_file(PGGAN_FILE, tmp_path / "out", format="nope")


def test_existing_destination_is_kept(tmp_path):
  dest = tmp_path / "out"
  dest.mkdir()
  (dest / "keep.txt").write_text("x")
  with pytest.raises(ValueError, match="already exists"):
    converters.convert_file(PGGAN_FILE, dest)
  assert (dest / "keep.txt").exists()


def _torch_fused_upconv(x_nchw, weight_hwio, bias):
  """The genforce fused up-conv, written from the fixture README's description, in torch."""
  cin = weight_hwio.shape[2]
  scale = np.sqrt(2.0) / np.sqrt(9 * cin)
  x = x_nchw / torch.sqrt(torch.mean(x_nchw ** 2, dim=1, keepdim=True) + 1e-8)
  k = torch.nn.functional.pad(weight_hwio * scale, (0, 0, 0, 0, 1, 1, 1, 1))
  k = k[1:, 1:] + k[:-1, 1:] + k[1:, :-1] + k[:-1, :-1]
  k = k.permute(2, 3, 0, 1)
  y = torch.nn.functional.conv_transpose2d(x, k, stride=2, padding=1) / scale
  y = y * scale + bias.view(1, -1, 1, 1)
  return torch.nn.functional.leaky_relu(y, 0.2)


def test_fused_scale_pggan_converts_and_matches_reference(tmp_path):
  """A fused_scale=True genforce checkpoint: inferred, converted, and its up-conv equals torch's."""
  cfg = pggan.PGGANConfig(resolution=16, z_dim=512, fused_scale=True, fmaps_base=128, fmaps_max=16)
  rng = np.random.RandomState(0)
  sd = collections.OrderedDict(lod=torch.tensor(0.0))
  shapes = cfg.feature_shapes()
  for i in range(2 * cfg.num_blocks):
    cin, cout = shapes[i][-1], shapes[i + 1][-1]
    if i >= 2 and i % 2 == 0:
      sd[f"layer{i}.weight"] = torch.from_numpy(rng.randn(3, 3, cin, cout).astype(np.float32))
    else:
      k = 4 if i == 0 else 3
      sd[f"layer{i}.conv.weight"] = torch.from_numpy(rng.randn(cout, cin, k, k).astype(np.float32))
    sd[f"layer{i}.wscale.bias"] = torch.from_numpy(rng.randn(cout).astype(np.float32) * 0.2)
  for b in range(cfg.num_blocks):
    c = cfg.channels_at(4 * 2 ** b)
    sd[f"output{b}.conv.weight"] = torch.from_numpy(rng.randn(3, c, 1, 1).astype(np.float32))
    sd[f"output{b}.wscale.bias"] = torch.from_numpy(rng.randn(3).astype(np.float32))
  src = tmp_path / "fused.pth"
  torch.save(sd, src)
  converters.convert_file(src, tmp_path / "m")
  model = load_model(tmp_path / "m")
  assert model.config == cfg
  z = jnp.asarray(rng.randn(2, 512).astype(np.float32))
  with jax.default_matmul_precision("highest"):
    f2 = model.module.apply(model.variables(), z, 0, 2)
    f3 = model.module.apply(model.variables(), f2, 2, 3)
  ref = _torch_fused_upconv(torch.from_numpy(np.asarray(f2).transpose(0, 3, 1, 2).copy()),
                            sd["layer2.weight"], sd["layer2.wscale.bias"])
  assert_close(np.asarray(f3).transpose(0, 3, 1, 2), ref.numpy(), atol=1e-4, what="fused up-conv")
