"""``jaxinv invert --method pti`` end to end on the fixture generator (rosinality file) and
LPIPS files: a batch of photos, one generator copy per image, outputs consistent with each
other; and the LPIPS feature wrapper the projector uses equals the LPIPS distance."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.cli import main
from jaxinv.inversion.methods import pti
from jaxinv.io import images as image_io
from jaxinv.io.deltas import load_deltas
from jaxinv.models.registry import load_model
from tests.conftest import golden_root


@pytest.fixture(scope="module")
def models(golden, tmp_path_factory):
  g = golden("e4e_pti")
  d = tmp_path_factory.mktemp("pti")
  gen, lp = str(d / "G"), str(d / "lpips")
  assert main(["convert", str(g.path(g.expected["e4e"]["rosinality_conversion"]["file"])),
               gen]) == 0
  l = g.expected["pti"]["build"]["lpips"]
  assert main(["convert", str(g.path(l["lin_file"])), lp, "--option",
               f"backbone={g.path(l['backbone_file'])}"]) == 0
  return g, gen, lp


def test_lpips_features_give_the_lpips_distance(models):
  g, gen, lp = models
  m = load_model(lp)
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.uniform(k1, (2, 64, 64, 3)) * 255
  b = jax.random.uniform(k2, (2, 64, 64, 3)) * 255
  f = pti.lpips_features(m.module, m.params)
  dist = jnp.sum(jnp.square(f(a) - f(b)), axis=1)
  want = m.module.apply({"params": m.params}, a / 127.5 - 1, b / 127.5 - 1)
  np.testing.assert_allclose(dist, want, rtol=1e-5)   # float32 reordering of the same sum


@pytest.mark.slow   # ~2 min wall on the shared 2-core machine (compiles both phases + LPIPS)
def test_invert_pti_batch(models, tmp_path):
  g, gen, lp = models
  base = golden_root().parent.parent
  paths = [str(base / g.expected["case_config"]["pti"]["image"]),
           str(base / g.expected["e4e"]["images"][1]["path"])]
  out = str(tmp_path / "out")
  assert main(["invert", "--method", "pti", "--generator", gen, "--lpips", lp,
               "--projector-lpips", lp, "--images", *paths, "--out", out, "--projector-steps", "3", "--pti-steps", "2",
               "--locality-reg", "--batch", "2"]) == 0
  with np.load(os.path.join(out, "result.npz")) as r:
    res = {k: r[k] for k in r.files}
  assert res["w_pivot"].shape[0] == 2 and list(res["steps"]) == [2, 2]
  assert set(res) == {"w_pivot", "steps", "loss", "names"}
  delta = load_deltas(os.path.join(out, "deltas"), names=res["names"])
  model = load_model(gen)
  for i, name in enumerate(res["names"]):
    d = jax.tree.map(lambda v: v[i], delta)
    assert any(np.abs(v).max() > 0 for v in jax.tree.leaves(d))
    p = pti.apply_delta(model.params, d)
    img = model.module.apply({"params": p}, None, res["w_pivot"][i:i + 1],
                             method=model.module.synthesis)[0]
    png = image_io.load_rgb_uint8(os.path.join(out, f"{name}.png")).astype(int)
    assert np.abs(png - image_io.to_uint8(np.asarray(img)).astype(int)).max() <= 1
  # each image has its own copy: the two deltas differ
  a, b = (jax.tree.leaves(jax.tree.map(lambda v: v[i], delta)) for i in (0, 1))
  assert any(np.abs(x - y).max() > 0 for x, y in zip(a, b))


def test_invert_pti_refusals(models, tmp_path, capsys):
  g, gen, lp = models
  out = str(tmp_path / "out")
  img = str(golden_root().parent.parent / g.expected["case_config"]["pti"]["image"])
  assert main(["invert", "--method", "pti", "--generator", lp, "--lpips", lp, "--images", img,
               "--out", out]) == 2
  assert "lpips" in capsys.readouterr().err
  assert main(["invert", "--method", "pti", "--generator", gen, "--lpips", gen, "--images", img,
               "--out", out]) == 2
  capsys.readouterr()
  for extra in (["--init", "encoder"], ["--init", str(tmp_path / "init.npz")]):
    assert main(["invert", "--method", "pti", "--generator", gen, "--lpips", lp, "--images", img,
                 "--out", out, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--init" in err, err
  assert not os.path.exists(out)


@pytest.mark.slow   # compiles phase 2 (~1 min wall on the shared machine)
def test_invert_pti_with_e4e_pivots(models, tmp_path):
  """--pivots: the e4e codes of the photo are its pivot (the fixture e4e decoder and the PTI
  generator share num_ws and w_dim), phase 1 is skipped."""
  g, gen, lp = models
  e4e = g.expected["e4e"]
  enc = str(tmp_path / "e4e")
  assert main(["convert", str(g.path(e4e["checkpoint"]["file"])), enc, "--option",
               f"input_size={e4e['config']['input_size']}"]) == 0
  base = golden_root().parent.parent
  img = str(base / e4e["images"][0]["path"])
  out = str(tmp_path / "out")
  assert main(["invert", "--method", "pti", "--generator", gen, "--lpips", lp,
               "--projector-lpips", lp, "--pivots", enc,
               "--images", img, "--out", out, "--pti-steps", "1"]) == 0
  codes = g.npz("fixtures.npz")["e4e.codes"][:1]
  with np.load(os.path.join(out, "result.npz")) as r:
    assert np.abs(r["w_pivot"] - codes).max() <= 1e-4 * max(1.0, np.abs(codes).max())
    assert list(r["steps"]) == [1]


@pytest.mark.slow   # ~85 s: PTI compiled for batches of 2 and 1
def test_invert_pti_result_independent_of_position_and_batch(models, tmp_path):
  """Each image's draws come from its own name's key: the second photo inverted alone
  (batch 1) equals the same photo as the second of a batch of 2. Same arithmetic per image in
  a vmap of 1 or 2 copies: float order only; pivots at the projector's 1e-5, losses at the
  golden PTI bound 1e-4 relative (e4e_pti README)."""
  g, gen, lp = models
  base = golden_root().parent.parent
  paths = [str(base / g.expected["case_config"]["pti"]["image"]),
           str(base / g.expected["e4e"]["images"][1]["path"])]
  common = ["--method", "pti", "--generator", gen, "--lpips", lp, "--projector-lpips", lp,
            "--projector-steps", "3", "--pti-steps", "2"]
  assert main(["invert", *common, "--images", *paths, "--batch", "2",
               "--out", str(tmp_path / "both")]) == 0
  assert main(["invert", *common, "--images", paths[1], "--batch", "1",
               "--out", str(tmp_path / "alone")]) == 0
  with np.load(tmp_path / "both" / "result.npz") as a, np.load(tmp_path / "alone" / "result.npz") as b:
    assert list(b["names"]) == [a["names"][1]]
    np.testing.assert_allclose(b["w_pivot"][0], a["w_pivot"][1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(b["loss"][:, 0], a["loss"][:, 1], rtol=1e-4)
    assert np.abs(a["w_pivot"][0] - a["w_pivot"][1]).max() > 1e-3   # distinct photos differ
