"""Multi-host runs of the StyleGAN spaces (z, w, w+, multi-code) and of PadInv through ``jaxinv
invert``: two processes of one ``jax.distributed`` job give the one-process result.

The driver cuts batches from the whole image list and gives every other one to each process (the
first collects the others' through ``OUT/.jaxinv-work``), so with ``--batch 1`` both runs execute
the same programs on the same single-image batches: the results are bit-equal.

Tiny cases: the rosinality fixture's 32 px StyleGAN2 on the church examples, and the PadInv
fixture's 64 px generator and encoder on its images; 3 steps each.
"""

import json
import sys

import numpy as np
import pytest

from jaxinv.cli import main
from tests import sweep_helpers as H
from tests.conftest import golden_root, optional_path
from tests.golden import padinv_common

CHURCH = golden_root().parent / "data" / "mganprior_examples" / "gan_inversion" / "church"
STEPS = 3
STYLE_SPACES = {"z": [], "w": [], "wp": [], "multi": ["--codes", "2", "--layer", "4"]}


@pytest.fixture(scope="module")
def models(golden, tmp_path_factory):
  root = tmp_path_factory.mktemp("two_processes")
  ros = golden("stylegan2_rosinality")
  assert main(["convert", str(ros.path(ros.expected["checkpoint"]["file"])), str(root / "sg2")]) == 0
  pad = golden(padinv_common.FOLDER)
  found = padinv_common._checkpoints(pad.dir)
  gan = pad.dir / found["padinv-generator"][0]
  assert main(["convert", str(gan), str(root / "padinv_G")]) == 0
  assert main(["convert", str(pad.dir / found["padinv-encoder"][0]), str(root / "padinv_E"),
               "--option", f"gan_checkpoint={gan}"]) == 0
  cfg = json.loads(pad.path("config.json").read_text())
  padinv_images = [str(optional_path(pad.dir, f"../../data/{im['file']}", f"PadInv case image {im['file']}"))
                   for im in cfg["images"]]
  return root, padinv_images


def _commands(models, out):
  root, padinv_images = models
  common = ["--loss", "mse", "--optimizer", "adam", "--lr", "0.05", "--steps", str(STEPS),
            "--chunk", "2", "--batch", "1"]
  cmds = {space: ["invert", "--generator", str(root / "sg2"), "--images", str(CHURCH), "--space",
                  space, *extra, "--out", str(out / space), *common]
          for space, extra in STYLE_SPACES.items()}
  cmds["padinv"] = ["invert", "--method", "padinv", "--generator", str(root / "padinv_G"),
                    "--encoder", str(root / "padinv_E"), "--images", *padinv_images, "--steps",
                    str(STEPS), "--lpips-lambda", "0", "--wnorm-lambda", "0.003", "--chunk", "2",
                    "--batch", "1", "--out", str(out / "padinv")]
  return cmds


def _result(out):
  with np.load(out / "result.npz") as f:
    return {k: f[k] for k in f.files}


# Four style spaces and PadInv, each compiled once in the test process and once in each of the two
# processes: ~1-2 min on 2 shared cores.
@pytest.mark.slow
def test_two_processes_equal_one(models, tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  for argv in _commands(models, one).values():
    assert main(argv) == 0
  cmds = _commands(models, two)
  script = ("import sys, json; from jaxinv.cli import main; "
            "sys.exit(max(main(a) for a in json.loads(sys.argv[1])))")
  outs = H.run_processes([sys.executable, "-c", script, json.dumps(list(cmds.values()))],
                         timeout=600)
  # Each process ran its own batches (their progress labels): the first 1 and 3, the second 2.
  (_, err0), (_, err1) = outs
  assert "1-1/3" in err0 and "3-3/3" in err0 and "2-2/3" not in err0, err0[-2000:]
  assert "2-2/3" in err1 and "1-1/3" not in err1 and "3-3/3" not in err1, err1[-2000:]
  for name in cmds:
    a, b = _result(one / name), _result(two / name)
    assert set(a) == set(b) and len(a["names"]) >= 2, (name, sorted(a))
    for k in a:
      np.testing.assert_array_equal(b[k], a[k], err_msg=f"{name} {k}")
    cfg = json.loads((two / name / "config.json").read_text())
    assert cfg["process_count"] == 2, name
    assert not (two / name / ".jaxinv-work").exists()


@pytest.fixture(scope="module")
def e4e_pti_models(golden, tmp_path_factory):
  g = golden("e4e_pti")
  root = tmp_path_factory.mktemp("two_processes_e4e_pti")
  e4e = g.expected["e4e"]
  assert main(["convert", str(g.path(e4e["checkpoint"]["file"])), str(root / "e4e"),
               "--option", f"input_size={e4e['config']['input_size']}"]) == 0
  assert main(["convert", str(g.path(e4e["rosinality_conversion"]["file"])), str(root / "G")]) == 0
  lp = g.expected["pti"]["build"]["lpips"]
  assert main(["convert", str(g.path(lp["lin_file"])), str(root / "lpips"), "--option",
               f"backbone={g.path(lp['backbone_file'])}"]) == 0
  base = golden_root().parent.parent
  images = [str(base / im["path"]) for im in e4e["images"]]
  if len(images) < 2:
    pytest.skip("this case has fewer than 2 e4e images (one per process)")
  return root, images


# PTI's two phases compiled in the test process and in each of two processes: ~1 min.
@pytest.mark.slow
def test_e4e_and_pti_two_processes_equal_one(e4e_pti_models, tmp_path):
  root, images = e4e_pti_models
  one, two = tmp_path / "one", tmp_path / "two"

  def commands(out):
    return {"e4e": ["invert", "--method", "e4e", "--encoder", str(root / "e4e"), "--images", *images,
                    "--batch", "1", "--out", str(out / "e4e")],
            "pti": ["invert", "--method", "pti", "--generator", str(root / "G"), "--lpips",
                    str(root / "lpips"), "--projector-lpips", str(root / "lpips"), "--images",
                    *images, "--projector-steps", "3", "--pti-steps", "2", "--batch", "1",
                    "--out", str(out / "pti")]}
  for argv in commands(one).values():
    assert main(argv) == 0
  cmds = commands(two)
  script = ("import sys, json; from jaxinv.cli import main; "
            "sys.exit(max(main(a) for a in json.loads(sys.argv[1])))")
  H.run_processes([sys.executable, "-c", script, json.dumps(list(cmds.values()))], timeout=600)
  for name in cmds:
    a, b = _result(one / name), _result(two / name)
    assert set(a) == set(b) and len(a["names"]) == len(images), (name, sorted(a))
    for k in a:
      np.testing.assert_array_equal(b[k], a[k], err_msg=f"{name} {k}")
    assert json.loads((two / name / "config.json").read_text())["process_count"] == 2, name
  # PTI's tuned generators (one delta per image) too.
  from jaxinv.io.deltas import load_deltas
  import jax
  da, db = (load_deltas(str(d / "pti" / "deltas"), names=list(_result(one / "pti")["names"]))
            for d in (one, two))
  for x, y in zip(jax.tree.leaves(da), jax.tree.leaves(db)):
    np.testing.assert_array_equal(y, x)
