"""Unit tests of the Swapping Autoencoder ops against PyTorch (bilinear x2, grid_sample crops,
nearest noise resize) and of the official channel rules at the 256 px church configuration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import swapping_autoencoder as sae
from jaxinv.converters.table import flatten_paths
from jaxinv.ops.resize import resize_nearest

torch = pytest.importorskip("torch")
F = torch.nn.functional


def test_upsample_bilinear2x_matches_torch():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
  ref = F.interpolate(torch.from_numpy(x), scale_factor=2, mode="bilinear", align_corners=False)
  got = sae.upsample_bilinear2x(jnp.transpose(x, (0, 2, 3, 1)))
  np.testing.assert_allclose(np.transpose(got, (0, 3, 1, 2)), ref.numpy(), atol=1e-6)


def test_random_crops_match_grid_sample():
  rng = np.random.default_rng(1)
  b, n, p, h = 2, 3, 8, 20
  x = rng.normal(size=(b, 3, h, h + 4)).astype(np.float32)
  d = {k: np.array(v) for k, v in sae.crop_draws(jax.random.key(3), b, n).items()}
  d["u_offset"][0] = 0.999   # push a crop past the border (zero padding)
  flip, scale, offset = (np.asarray(v) for v in sae.crop_params(d, (0.2, 0.6)))
  lin = torch.linspace(-1, 1, p)
  gx = lin[None, None, :] * torch.from_numpy(flip[:, :, :, 0] * scale[:, :, :, 0]) + \
      torch.from_numpy(offset[:, :, :, 0])
  gy = lin[None, :, None] * torch.from_numpy(scale[:, :, :, 1]) + torch.from_numpy(offset[:, :, :, 1])
  gx, gy = torch.broadcast_tensors(gx, gy)
  grid = torch.stack([gx, gy], -1)
  xt = torch.from_numpy(x).repeat_interleave(n, 0)
  ref = F.grid_sample(xt, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
  got = sae.random_crops(jnp.transpose(x, (0, 2, 3, 1)), d, p, (0.2, 0.6), n)
  got = np.transpose(np.asarray(got).reshape(b * n, p, p, 3), (0, 3, 1, 2))
  np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


def test_swap_pairs_and_noise_resize():
  v = jnp.arange(6)
  np.testing.assert_array_equal(sae.swap_pairs(v), [1, 0, 3, 2, 5, 4])
  z = np.random.default_rng(2).normal(size=(1, 1, 4, 4)).astype(np.float32)
  ref = F.interpolate(torch.from_numpy(z), size=(12, 8), mode="nearest").numpy()
  got = resize_nearest(jnp.transpose(z, (0, 2, 3, 1)), (12, 8))
  np.testing.assert_array_equal(np.transpose(got, (0, 3, 1, 2)), ref)


def test_make_noise_modes():
  cfg = sae.from_options(dict(crop_size=64, netE_scale_capacity=0.125, netG_scale_capacity=0.0625,
                              netD_scale_capacity=0.0625, spatial_code_ch=4, global_code_ch=16,
                              patch_size=16, netPatchD_scale_capacity=0.5, netPatchD_max_nc=16))
  assert sae.make_noise(cfg, (4, 4), "zero") is None
  r = sae.make_noise(cfg, (4, 4), "random", jax.random.key(0), batch=3)
  assert list(r) == cfg.noise_layers()
  assert r["UpsamplingResBlock128.conv2"].shape == (3, 64, 64, 1)
  f = sae.make_noise(cfg, (2, 2), "fixed", fixed={k: v[:1] for k, v in r.items()})
  assert f["HeadResnetBlock0.conv1"].shape == (1, 2, 2, 1)
  with pytest.raises(ValueError, match="key"):
    sae.make_noise(cfg, (4, 4), "random")


def test_church_channel_rules_give_the_official_sizes():
  from jaxinv.experiments.train_sae import CHURCH_OPTIONS
  cfg = sae.from_options(CHURCH_OPTIONS)
  shapes = jax.eval_shape(lambda: sae.init_params(cfg, jax.random.key(0)))
  count = {k: sum(int(np.prod(v.shape)) for v in flatten_paths(shapes[k]).values())
           for k in ("E", "G", "D", "Dpatch")}
  # Official counts for the church configuration (notes: E 30.6M, G 25.1M, D 28.9M, Dpatch 24.5M).
  for part, millions in {"E": 30.6, "G": 25.1, "D": 28.9, "Dpatch": 24.5}.items():
    assert abs(count[part] / 1e6 - millions) < 0.05, (part, count[part])


@pytest.mark.parametrize("taps,pad,gain", [((1, 2, 1), (1, 0, 1, 0), 1.0),
                                           ((1, 3, 3, 1), (2, 2, 2, 2), 1.0),
                                           ((1, 3, 3, 1), (1, 1, 1, 1), 4.0)])
def test_blur_matches_upfirdn2d_ref(taps, pad, gain):
  from jaxinv.models.upfirdn import make_kernel, upfirdn2d_ref
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 9, 7, 3)), jnp.float32)
  t, b, l, r = pad
  ref = upfirdn2d_ref(x, make_kernel(taps) * gain, pad=(l, r, t, b))
  np.testing.assert_allclose(sae.blur(x, taps, pad, gain), ref, atol=1e-6)
