"""jaxinv.io.datasets: TFDS splits as image sources (array_record, read without TensorFlow)."""

import numpy as np
import pytest

from jaxinv.io import datasets, images
from tests import tfds_images


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
  rng = np.random.default_rng(0)
  pics = [(f"im{i}", rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)) for i in range(3)]
  return tfds_images.write_dataset(str(tmp_path_factory.mktemp("tfds")), pics), pics


def test_split_lists_and_reads_every_example(spec):
  spec, pics = spec
  refs = images.list_images([spec])
  assert len(refs) == 3 and all(r.startswith(spec + "#") for r in refs)
  read = [images.load_rgb_uint8(r) for r in refs]
  # TFDS orders examples by its own key hash; each stored picture comes back bit-exact, once.
  matches = sorted(next(i for i, (_, p) in enumerate(pics) if p.shape == r.shape and (p == r).all())
                   for r in read)
  assert matches == [0, 1, 2]
  assert images.list_images([spec], limit=2) == refs[:2]
  assert images.image_stem(refs[1]) == "jaxinv_test_images-train-000001"
  x = images.load_image(refs[0], 16)
  assert x.shape == (16, 16, 3) and x.dtype == np.float32 and -1 <= x.min() <= x.max() <= 1


def test_sliced_split(spec):
  spec, _ = spec
  whole = images.list_images([spec])
  sliced = images.list_images([spec.replace("split=train", "split=train[1:]")])
  assert len(sliced) == 2
  assert (images.load_rgb_uint8(sliced[0]) == images.load_rgb_uint8(whole[1])).all()


def test_parse_round_trip_and_errors(spec):
  spec, _ = spec
  s = datasets.parse(spec + "#2")
  assert (s.name, s.split, s.index) == ("jaxinv_test_images", "train", 2)
  assert datasets.parse(s.example(2)) == s
  with pytest.raises(datasets.DatasetError, match="unknown field"):
    datasets.parse("tfds:mnist?splt=train")
  with pytest.raises(datasets.DatasetError, match="not a number"):
    datasets.parse("tfds:mnist#x")
  with pytest.raises(images.ImageError, match="out of range"):
    images.load_rgb_uint8(spec + "#3")
  with pytest.raises(images.ImageError, match="no split 'test'"):
    images.list_images([spec.replace("split=train", "split=test")])
  with pytest.raises(images.ImageError, match="no feature 'picture'"):
    images.load_rgb_uint8(spec + "&key=picture#0")
  with pytest.raises(images.ImageError, match="cannot open the dataset"):
    images.list_images([spec.replace("jaxinv_test_images", "no_such_dataset_here")])


def test_output_stems_name_tfds_examples_and_refuse_repeats(spec):
  from jaxinv.cli.common import UserError, output_stems
  spec, _ = spec
  refs = images.list_images([spec], limit=2)
  assert output_stems(["/a/x.png"] + refs) == ["x", "jaxinv_test_images-train-000000",
                                               "jaxinv_test_images-train-000001"]
  with pytest.raises(UserError, match=r"several context images share the name \['x'\]"):
    output_stems(["/a/x.png", "/b/x.jpg"], "context images")
