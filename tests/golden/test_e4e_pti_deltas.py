"""From the CLI alone, on the fixture files: the e4e checkpoint gives each photo its pivot
(``--init encoder``), PTI tunes the generator read from the NVIDIA pickle, one copy per photo,
and keeps each photo's generator as a compact delta checkpoint (``OUT/deltas/``) that
``jaxinv edit`` reads back; a missing or damaged delta folder is a one-line error.

Tolerances: pivots = the official e4e codes within the e4e forward bound, 1e-4 · max(1,
max|codes|) (README §Tolerances; thread floor 2e-6). Renders: PTI writes its final render
(made inside the vmapped tuning program) rounded to uint8 and ``edit`` truncates (e4e's
tensor2im); a render from the reloaded deltas in another program differs by float noise
(~1e-6), which can cross a rounding edge: PNGs agree within 1 level (under AVX2 one pixel
differs by 1). The untuned generator's render differs by more, so the check can fail.
"""

import os
import shutil

import jax
import numpy as np
import pytest

from jaxinv.cli import main
from jaxinv.inversion.methods import pti
from jaxinv.io import images as image_io
from jaxinv.io.deltas import INDEX_FILE, load_deltas
from jaxinv.models.registry import load_model
from tests.conftest import golden_root
from tests.golden import _pti_common as C

FORWARD_RTOL = 1e-4


@pytest.fixture(scope="module")
def run(golden, tmp_path_factory):
  g = golden(C.FOLDER)
  d = tmp_path_factory.mktemp("pti_deltas")
  gen, lp, enc = str(d / "G"), str(d / "lpips"), str(d / "e4e")
  assert main(["convert", str(g.path(g.expected["pti"]["build"]["pickle"]["file"])), gen]) == 0
  l = g.expected["pti"]["build"]["lpips"]
  assert main(["convert", str(g.path(l["lin_file"])), lp, "--option",
               f"backbone={g.path(l['backbone_file'])}"]) == 0
  e4e = g.expected["e4e"]
  assert main(["convert", str(g.path(e4e["checkpoint"]["file"])), enc, "--option",
               f"input_size={e4e['config']['input_size']}"]) == 0
  base = golden_root().parent.parent
  paths = [str(base / im["path"]) for im in e4e["images"]]
  out = str(d / "out")
  assert main(["invert", "--method", "pti", "--generator", gen, "--lpips", lp,
               "--init", "encoder", "--encoder", enc, "--images", *paths, "--out", out,
               "--pti-steps", "2", "--batch", str(len(paths))]) == 0
  return g, gen, enc, paths, out


def test_pti_from_the_cli(run):
  """Pivots are the official e4e codes; each photo got its own generator copy."""
  g, gen, enc, paths, out = run
  codes = g.npz("fixtures.npz")["e4e.codes"]
  with np.load(os.path.join(out, "result.npz")) as r:
    res = {k: r[k] for k in r.files}
  assert set(res) == {"w_pivot", "steps", "loss", "names"}       # deltas live in deltas/
  err = np.abs(res["w_pivot"] - codes).max()
  assert err <= FORWARD_RTOL * max(1.0, np.abs(codes).max()), f"pivots off by {err:.3g}"
  assert res["w_pivot"].shape[0] == len(paths) and (res["steps"] >= 1).all()
  delta = load_deltas(os.path.join(out, "deltas"), names=res["names"])
  leaves = [jax.tree.leaves(jax.tree.map(lambda v: v[i], delta)) for i in range(len(paths))]
  for i in range(len(paths)):
    assert any(np.abs(v).max() > 0 for v in leaves[i])
    for j in range(i):
      assert any(np.abs(a - b).max() > 0 for a, b in zip(leaves[i], leaves[j])), (i, j)


def test_edit_reads_the_tuned_generators(run, tmp_path):
  """``edit --factors 0`` renders each pivot with its tuned generator: PTI's own render."""
  g, gen, enc, paths, out = run
  model = load_model(gen)
  with np.load(os.path.join(out, "result.npz")) as r:
    names, wp = [str(s) for s in r["names"]], r["w_pivot"]
  delta = load_deltas(os.path.join(out, "deltas"), names=names, like=pti.trainable(model.params))
  direction = str(tmp_path / "d.npy")
  np.save(direction, np.ones((1, model.config.w_dim), np.float32))
  edits = str(tmp_path / "edits")
  assert main(["edit", "--mode", "interfacegan", "--generator", gen, "--result",
               os.path.join(out, "result.npz"), "--boundary", direction, "--factors", "0",
               "--out", edits]) == 0
  render = jax.jit(lambda p, w: model.module.apply({"params": p}, None, w,
                                                   method=model.module.synthesis))
  for i, name in enumerate(names):
    pti_png = image_io.load_rgb_uint8(os.path.join(out, f"{name}.png")).astype(int)
    edit_png = image_io.load_rgb_uint8(os.path.join(edits, f"{name}_strip.png")).astype(int)
    assert np.abs(edit_png - pti_png).max() <= 1, name
    img = np.asarray(render(pti.apply_delta(model.params, jax.tree.map(lambda v: v[i], delta)),
                            wp[i:i + 1]))[0]
    assert np.abs(image_io.to_uint8(img).astype(int) - pti_png).max() <= 1, name
    plain = np.asarray(render(model.params, wp[i:i + 1]))[0]
    assert np.abs(image_io.to_uint8(plain).astype(int) - pti_png).max() > 1, \
        f"{name}: the untuned generator renders the same PNG; the test cannot tell them apart"


def _edit(gen, result, tmp_path, capsys):
  direction = str(tmp_path / "d.npy")
  with np.load(result) as r:
    w_dim = r["w_pivot"].shape[-1]
  np.save(direction, np.ones((1, w_dim), np.float32))
  edits = str(tmp_path / "edits")
  rc = main(["edit", "--mode", "interfacegan", "--generator", gen, "--result", result,
             "--boundary", direction, "--factors", "0", "--out", edits])
  err = capsys.readouterr().err.strip()
  return rc, err, os.path.exists(edits)


def _damaged(run, tmp_path, name):
  g, gen, enc, paths, out = run
  copy = str(tmp_path / name)
  shutil.copytree(out, copy)
  return gen, copy


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage_data", "changed_values",
                                    "no_index", "other_run"])
def test_damaged_deltas_are_refused(run, tmp_path, capsys, damage):
  gen, copy = _damaged(run, tmp_path, damage)
  deltas = os.path.join(copy, "deltas")
  if damage == "missing":
    shutil.rmtree(deltas)
  elif damage == "empty":
    shutil.rmtree(deltas)
    os.makedirs(deltas)
  elif damage == "garbage_data":
    for root, _, files in os.walk(os.path.join(deltas, "tree")):
      for f in files:
        if f not in ("_METADATA", "_CHECKPOINT_METADATA"):
          with open(os.path.join(root, f), "wb") as fh:
            fh.write(b"\0garbage")
  elif damage == "changed_values":
    import json
    p = os.path.join(deltas, INDEX_FILE)
    index = json.load(open(p))
    key = sorted(index["sha256"])[0]
    index["sha256"][key] = "0" * 64
    json.dump(index, open(p, "w"))
  elif damage == "no_index":
    os.remove(os.path.join(deltas, INDEX_FILE))
  elif damage == "other_run":
    with np.load(os.path.join(copy, "result.npz")) as r:
      res = {k: r[k] for k in r.files}
    res["names"] = res["names"][::-1].copy()
    np.savez(os.path.join(copy, "result.npz"), **res)
  rc, err, wrote = _edit(gen, os.path.join(copy, "result.npz"), tmp_path, capsys)
  assert rc == 2, err
  assert len(err.splitlines()) == 1 and "deltas" in err, err
  assert not wrote


def test_deltas_of_another_generator_are_refused(run, tmp_path, capsys):
  """The e4e decoder is a StyleGAN2 too, with another channel table: its parameters do not
  take these deltas."""
  g, gen, enc, paths, out = run
  shapes = lambda p: jax.tree.map(np.shape, pti.trainable(p))
  if shapes(load_model(enc).params["decoder"]) == shapes(load_model(gen).params):
    pytest.skip("this case's e4e decoder has the PTI generator's shapes")
  rc, err, wrote = _edit(enc, os.path.join(out, "result.npz"), tmp_path, capsys)
  assert rc == 2 and len(err.splitlines()) == 1 and "generator" in err, err
  assert not wrote
