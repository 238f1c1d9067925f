"""jaxinv.evaluation as a library: rows and means without the CLI, refusals as InputFileError."""

import numpy as np
import pytest
from PIL import Image

from jaxinv import evaluation, metrics
from jaxinv.io.errors import InputFileError
from jaxinv.io.results import write_metrics_csv


def _save(path, seed, size=16):
  a = np.random.RandomState(seed).randint(0, 256, (size, size, 3)).astype(np.uint8)
  Image.fromarray(a).save(path)
  return a


def test_rows_means_and_invert_naming(tmp_path):
  pred, gt = tmp_path / "pred", tmp_path / "gt"
  pred.mkdir()
  gt.mkdir()
  want = {}
  for i, stem in enumerate(("a", "b")):
    g = _save(gt / f"{stem}.png", i)
    p = _save(pred / f"{stem}_restored.png", 10 + i)      # an invert --task output's prediction
    _save(pred / f"{stem}_observation.png", 20 + i)         # and a picture of the run: skipped
    want[stem] = metrics.image_metrics(p, g)
  rows = evaluation.evaluate_dirs(str(pred), str(gt))
  assert [r["name"] for r in rows] == ["a", "b", "mean"]
  for r in rows[:2]:
    assert r == {"name": r["name"], **want[r["name"]]}
  for k in evaluation.DEFAULT_COLUMNS:
    assert rows[-1][k] == pytest.approx((want["a"][k] + want["b"][k]) / 2, rel=1e-12)
  out = tmp_path / "m.csv"
  write_metrics_csv(str(out), rows, evaluation.DEFAULT_COLUMNS)
  lines = out.read_text().splitlines()
  assert lines[0] == "name,psnr,ssim,ssim_skimage" and lines[-1].startswith("mean,")
  assert float(lines[1].split(",")[1]) == pytest.approx(want["a"]["psnr"], abs=5e-7)


def test_refusals_are_input_file_errors(tmp_path):
  pred, gt = tmp_path / "pred", tmp_path / "gt"
  pred.mkdir()
  gt.mkdir()
  _save(gt / "a.png", 0)
  _save(gt / "b.png", 1)
  _save(pred / "a.png", 2)
  with pytest.raises(evaluation.EvaluationError, match="without prediction: b") as e:
    evaluation.evaluate_dirs(str(pred), str(gt))
  assert isinstance(e.value, InputFileError)
  assert [r["name"] for r in evaluation.evaluate_dirs(str(pred), str(gt), subset=True)] == ["a", "mean"]
  (pred / "c.png").write_bytes(b"not a png")
  (gt / "c.png").write_bytes(b"not a png")
  with pytest.raises(InputFileError, match="nothing written"):
    evaluation.evaluate_dgp(str(pred), str(gt), "SR", subset=True)
