"""Unit tests for jaxinv.tasks: shapes, batching, differentiability, refusals, torch parity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxinv import tasks


def _img(shape, seed=0):
  return jnp.asarray(np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32))


@pytest.mark.parametrize("mode", tasks.DOWNSAMPLE_MODES)
def test_downsample_single_and_batched(mode):
  xb = _img((2, 16, 16, 3))
  yb = tasks.downsample(xb, 4, mode)
  assert yb.shape == (2, 4, 4, 3)
  y0 = tasks.downsample(xb[0], 4, mode)
  np.testing.assert_allclose(y0, yb[0], atol=1e-6)


@pytest.mark.parametrize("name,kw", [("colorize", {}), ("super-resolve", {"factor": 2}),
                                      ("inpaint", {"mask": np.pad(np.ones((4, 4)), 6)}),
                                      ("reconstruct", {})])
def test_task_degrade_is_differentiable_and_jittable(name, kw):
  t = tasks.make_task(name, 16, **kw)
  x, obs = _img((16, 16, 3), 1), t.observe(_img((16, 16, 3), 2))
  loss = jax.jit(lambda v: jnp.mean(jnp.square(t.degrade(v) - obs)))
  g = jax.grad(loss)(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
  assert float(jnp.abs(g).sum()) > 0


def test_torch_interpolate_parity():
  torch = pytest.importorskip("torch")
  x = np.random.RandomState(3).randn(1, 3, 24, 24).astype(np.float32)
  xt = torch.from_numpy(x)
  nhwc = np.transpose(x, (0, 2, 3, 1))
  for mode in ("bilinear", "bicubic", "nearest", "area"):
    for f in (2, 3, 4):
      kw = {} if mode in ("nearest", "area") else {"align_corners": False}
      want = torch.nn.functional.interpolate(xt, scale_factor=1 / f, mode=mode, **kw).numpy()
      got = np.asarray(tasks.downsample(nhwc, f, mode))
      np.testing.assert_allclose(got, np.transpose(want, (0, 2, 3, 1)), atol=1e-5, err_msg=f"{mode} f{f}")
    kw = {} if mode in ("nearest", "area") else {"align_corners": False}
    if mode != "area":
      want = torch.nn.functional.interpolate(xt, scale_factor=3, mode=mode, **kw).numpy()
      np.testing.assert_allclose(tasks.upsample(nhwc, 3, mode), np.transpose(want, (0, 2, 3, 1)),
                                 atol=1e-5, err_msg=f"up {mode}")
    for size in (7, 40):
      if mode == "area" and size > 24:
        continue
      want = torch.nn.functional.interpolate(xt, size=(size, size), mode=mode, **kw).numpy()
      np.testing.assert_allclose(tasks.resize(nhwc, size, mode), np.transpose(want, (0, 2, 3, 1)),
                                 atol=1e-5, err_msg=f"resize {mode} {size}")


def test_gray_repeats_channels():
  y = tasks.to_gray(_img((2, 8, 8, 3)))
  assert y.shape == (2, 8, 8, 3)
  np.testing.assert_array_equal(y[..., 0], y[..., 1])


def test_denoise_observation_uses_key():
  k = jax.random.PRNGKey(0)
  t = tasks.make_task("denoise", 8, sigma=0.1, key=k)
  gt = jnp.zeros((8, 8, 3))
  a, b = t.observe(gt), t.observe(gt)
  np.testing.assert_array_equal(a, b)
  assert 0.05 < float(jnp.std(a)) < 0.2
  assert t.degrade(gt) is gt or np.array_equal(t.degrade(gt), gt)
  with pytest.raises(ValueError, match="key"):
    tasks.make_task("denoise", 8, sigma=0.1)
  with pytest.raises(ValueError, match="sigma"):
    tasks.make_task("denoise", 8, key=k)


def test_refusals(tmp_path):
  with pytest.raises(ValueError, match="does not divide"):
    tasks.make_task("super-resolve", 32, factor=3)
  with pytest.raises(ValueError, match="unknown task"):
    tasks.make_task("deblur", 32)
  with pytest.raises(ValueError, match="downsample mode"):
    tasks.make_task("super-resolve", 32, factor=2, downsample="box")
  with pytest.raises(ValueError, match="all zero"):
    tasks.make_task("inpaint", 8, mask=np.zeros((8, 8)))
  with pytest.raises(ValueError, match="all one"):
    tasks.make_task("inpaint", 8, mask=np.ones((8, 8)))
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"not a png")
  with pytest.raises(ValueError, match="bad.png"):
    tasks.load_mask(bad, 8)


def test_mask_files_of_any_mode_and_size(tmp_path):
  m = np.zeros((64, 48), np.uint8)
  m[16:40, 8:24] = 255
  want = None
  for mode in ("L", "RGB", "RGBA", "P", "1", "I;16"):
    im = Image.fromarray(m, "L")
    if mode == "I;16":
      im = Image.fromarray(m.astype(np.uint16) * 257)
    else:
      im = im.convert(mode)
    p = tmp_path / f"m_{mode.replace(';', '')}.png"
    im.save(p)
    got = tasks.load_mask(p, 32)
    assert got.shape == (32, 32, 3), mode
    if want is None:
      want = got
    np.testing.assert_array_equal(got, want, err_msg=mode)
  # torch legacy nearest: src = floor(dst · in/out)
  rows = (np.arange(32) * 64 / 32).astype(int)
  cols = np.floor(np.arange(32) * np.float32(48 / 32)).astype(int)
  np.testing.assert_array_equal(want[..., 0], m[rows][:, cols] / 255.0)


def test_colorize_restore_keeps_target_luma():
  rng = np.random.RandomState(0)
  out = np.repeat(rng.uniform(0, 1, (8, 8, 1)), 3, axis=-1).astype(np.float32)  # grey: Cb = Cr = 128
  tgt = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
  r = tasks.colorize_restore01(out, tgt)
  y_t = np.asarray(Image.fromarray((tgt * 255).astype(np.uint8)).convert("YCbCr"))[..., 0]
  np.testing.assert_array_equal(r[..., 0], y_t)
  np.testing.assert_array_equal(r[..., 2], y_t)
