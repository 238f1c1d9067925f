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
  # Every degradation is linear, so the loss is quadratic in x and a central difference is exact up
  # to rounding: |error| <= 2·eps32·loss/(2h) ~ 6e-8·1/0.2 = 3e-7, far below the 1e-3 relative bound.
  h = 0.1
  for seed in range(3):
    d = _img(x.shape, 10 + seed)
    fd = (float(loss(x + h * d)) - float(loss(x - h * d))) / (2 * h)
    np.testing.assert_allclose(float(jnp.vdot(g, d)), fd, rtol=1e-3, atol=1e-6)


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
  with pytest.raises(ValueError, match=r"2x2 observation.*largest sensible factor here is 8"):
    tasks.make_task("super-resolve", 32, factor=16)
  assert tasks.make_task("super-resolve", 32, factor=8).factor == 8   # 4 px: the smallest accepted
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


# ----------------------------------------------------------------------------- CLI: invert --task, edit

@pytest.fixture(scope="module")
def pggan_dir(tmp_path_factory):
  from jaxinv import converters
  from tests.conftest import golden_file
  dest = tmp_path_factory.mktemp("models") / "pggan"
  converters.convert_file(golden_file("mganprior", "pggan", "checkpoint"), dest)
  return dest


def _run(*argv):
  from jaxinv.cli import main
  return main([str(a) for a in argv])


def _photo(path, size=48, seed=0):
  yy, xx = np.mgrid[0:size, 0:size]
  img = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], -1).astype(np.uint8)
  Image.fromarray(img).save(path)
  return path


def _check_task_grid(path, stem, cells, task):
  """``<stem>_grid.png``: one labelled row, observation | restored | ground truth (when known, with
  the PSNR under the restoration); the given cells (None = not checked) where the layout puts them."""
  from jaxinv.io import images as image_io
  labels = ["observation", f"restored ({task})", "ground truth"][:len(cells)]
  captions = [["", "PSNR 00.00 dB", ""]] if len(cells) == 3 else None
  _, lay = image_io.labeled_grid([[np.zeros((32, 32, 3), np.uint8)] * len(cells)], [stem], labels,
                                 captions)
  grid = np.asarray(Image.open(path).convert("RGB"))
  assert grid.shape[:2] == (lay.top(1), lay.left(len(cells)))
  for c, want in enumerate(cells):
    if want is not None:
      cell = grid[lay.top(0):lay.top(0) + lay.cell, lay.left(c):lay.left(c) + lay.cell]
      np.testing.assert_array_equal(cell[::lay.scale, ::lay.scale], want[..., :3])


FAST = ("--loss", "mse", "--steps", "2", "--codes", "2", "--layer", "4", "--chunk", "2")


def test_invert_super_resolve_writes_task_outputs(pggan_dir, tmp_path):
  img = _photo(tmp_path / "a.png")
  out = tmp_path / "out"
  assert _run("invert", "--generator", pggan_dir, "--images", img, "--task", "super-resolve",
              "--factor", "4", "--out", out, *FAST) == 0
  obs = np.asarray(Image.open(out / "a_observation.png"))
  assert obs.shape == (8, 8, 3)
  assert np.asarray(Image.open(out / "a_restored.png")).shape == (32, 32, 3)
  restored = np.asarray(Image.open(out / "a_restored.png"))
  truth = np.asarray(Image.open(img).convert("RGB").resize((32, 32), Image.BICUBIC))
  _check_task_grid(out / "a_grid.png", "a", [None, restored, truth], "super-resolve")
  import json
  s = json.loads((out / "config.json").read_text())["settings"]
  assert (s["task"], s["factor"], s["downsample"], s["steps"]) == ("super-resolve", 4, "bilinear", 2)


def test_invert_task_defaults_and_refusals(pggan_dir, tmp_path, capsys):
  from jaxinv.cli import build_parser, task_args
  args = build_parser().parse_args(["invert", "--generator", "x", "--images", "y", "--out", "z",
                                    "--task", "colorize"])
  task_args.apply_defaults(args)
  assert (args.layer, args.codes, args.steps, args.vgg_lambda) == (4, 20, 1500, 1.0)
  args = build_parser().parse_args(["invert", "--generator", "x", "--images", "y", "--out", "z",
                                    "--task", "inpaint", "--mask", "m.png", "--vgg-lambda", "0.5"])
  task_args.apply_defaults(args)
  assert (args.layer, args.codes, args.steps, args.vgg_lambda) == (4, 30, 3000, 0.5)
  img = _photo(tmp_path / "a.png")
  zero = tmp_path / "zero.png"
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(zero)
  cases = [(("--task", "super-resolve", "--factor", "3"), "does not divide"),
           (("--task", "super-resolve"), "largest sensible factor here is 8"),  # default 16
           (("--task", "inpaint", "--mask", zero), "all zero"),
           (("--task", "inpaint",), "needs --mask"),
           (("--task", "colorize", "--mask", zero), "only applies"),
           (("--task", "denoise",), "needs --sigma")]
  for extra, msg in cases:
    out = tmp_path / "never"
    assert _run("invert", "--generator", pggan_dir, "--images", img, "--out", out, *FAST, *extra) == 2
    assert msg in capsys.readouterr().err, extra
    assert not out.exists()


def test_invert_observed_inpaint_and_edit(pggan_dir, tmp_path):
  img = _photo(tmp_path / "a.png", size=32)
  mask = np.zeros((64, 64), np.uint8)
  mask[16:48, 16:48] = 255
  Image.fromarray(mask).save(tmp_path / "m.png")
  out = tmp_path / "out"
  assert _run("invert", "--generator", pggan_dir, "--images", img, "--task", "inpaint", "--mask",
              tmp_path / "m.png", "--observed", "--out", out, *FAST) == 0
  obs = np.asarray(Image.open(out / "a_observation.png")).astype(int)
  assert np.all(np.abs(obs[8:24, 8:24] - 128) <= 1)  # the hole is 0 (mid-grey) in the observation
  _check_task_grid(out / "a_grid.png", "a", [None, np.asarray(Image.open(out / "a_restored.png"))],
                   "inpaint")   # no ground-truth column with --observed
  b = np.random.RandomState(0).randn(1, 512)
  np.save(tmp_path / "b.npy", b / np.linalg.norm(b))
  ed = tmp_path / "edit"
  assert _run("edit", "--generator", pggan_dir, "--result", out / "result.npz", "--boundary",
              tmp_path / "b.npy", "--frames", "3", "--out", ed) == 0
  assert sorted(p.name for p in (ed / "a").iterdir()) == ["frame_000.png", "frame_001.png", "frame_002.png"]
  # the strip: one labelled row, a column per frame headed by its distance along the boundary
  # (default --max-step 4.2: -4.2, 0, +4.2), each cell the frame PNG
  from jaxinv.io import images as image_io
  frames = [np.asarray(Image.open(ed / "a" / f"frame_{t:03d}.png")) for t in range(3)]
  strip = np.asarray(Image.open(ed / "a_strip.png").convert("RGB"))
  _, lay = image_io.labeled_grid([frames], ["a"], ["d=-4.20", "d=+0.00", "d=+4.20"])
  assert strip.shape[:2] == (lay.top(1), lay.left(3)) and lay.cell >= 96
  for c, frame in enumerate(frames):
    np.testing.assert_array_equal(strip[lay.top(0):lay.top(0) + lay.cell:lay.scale,
                                        lay.left(c):lay.left(c) + lay.cell:lay.scale], frame)
  assert (strip[:lay.origin[0], lay.left(0):] < 128).any()     # the distance labels
  np.save(tmp_path / "bad.npy", np.ones((1, 100)))
  assert _run("edit", "--generator", pggan_dir, "--result", out / "result.npz", "--boundary",
              tmp_path / "bad.npy", "--frames", "3", "--out", tmp_path / "e2") == 2


def test_boundary_frames_formula():
  z = jnp.asarray(np.random.RandomState(0).randn(2, 3, 4).astype(np.float32))
  n = np.array([1.0, 0, 0, 0], np.float32)
  f = np.asarray(tasks.boundary_frames(z, n[None], 4.2, 5))
  assert f.shape == (5, 2, 3, 4)
  np.testing.assert_allclose(f[:, 0, 0, 0] - np.asarray(z)[0, 0, 0], [-4.2, -2.1, 0, 2.1, 4.2], atol=1e-6)
  np.testing.assert_array_equal(f[:, :, :, 1:], np.broadcast_to(np.asarray(z)[None, :, :, 1:], (5, 2, 3, 3)))
