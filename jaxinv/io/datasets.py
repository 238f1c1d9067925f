"""Prepared TFDS datasets as image sources, addressed by one string each.

A *dataset spec* names a split of a TFDS dataset the user has prepared::

    tfds:NAME?split=SPLIT&data_dir=DIR&key=image

``NAME`` is what ``tfds.builder`` takes (``celeb_a_hq/256``, ``lsun/church_outdoor:3.1.0``);
``split`` defaults to ``train`` and may be a TFDS slice (``test[:100]``); ``data_dir``
defaults to TFDS's own (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``); ``key`` is the
image feature (default ``image``). One example is the spec plus ``#INDEX``
(``tfds:mnist?split=test#12``), which is how results name it.

Datasets stored as ``array_record`` are read by random access with
``tfds.data_source``, without TensorFlow. ``tfrecord`` datasets (TFDS's older default)
are read one example at a time through ``tfds.load``, which needs TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import urllib.parse

import numpy as np

__all__ = ["PREFIX", "DatasetSpec", "is_tfds", "parse", "list_examples", "read_uint8", "stem"]

PREFIX = "tfds:"


class DatasetError(ValueError):
  """A TFDS spec or dataset that cannot be used (unknown, not prepared, wrong feature)."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  split: str = "train"
  data_dir: str | None = None
  key: str = "image"
  index: int | None = None

  def example(self, index: int) -> str:
    query = {"split": self.split}
    if self.data_dir:
      query["data_dir"] = self.data_dir
    if self.key != "image":
      query["key"] = self.key
    return f"{PREFIX}{self.name}?{urllib.parse.urlencode(query, safe='/[]:')}#{index}"


def is_tfds(spec) -> bool:
  return isinstance(spec, str) and spec.startswith(PREFIX)


def parse(spec: str) -> DatasetSpec:
  if not is_tfds(spec):
    raise DatasetError(f"{spec!r} is not a TFDS spec (tfds:NAME?split=SPLIT&data_dir=DIR)")
  body, _, fragment = spec[len(PREFIX):].partition("#")
  name, _, query = body.partition("?")
  if not name:
    raise DatasetError(f"{spec!r}: no dataset name (tfds:NAME?split=SPLIT)")
  fields = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
  unknown = set(fields) - {"split", "data_dir", "key"}
  if unknown:
    raise DatasetError(f"{spec!r}: unknown field(s) {sorted(unknown)}; known: split, data_dir, key")
  one = {k: v[-1] for k, v in fields.items()}
  index = None
  if fragment:
    if not fragment.isdigit():
      raise DatasetError(f"{spec!r}: example index #{fragment} is not a number")
    index = int(fragment)
  return DatasetSpec(name=name, split=one.get("split") or "train", data_dir=one.get("data_dir") or None,
                     key=one.get("key") or "image", index=index)


def _tfds():
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise DatasetError("TFDS image sources need tensorflow-datasets: pip install 'jaxinv[tfds]'") from None
  return tfds


class _TFRecordSource:
  """Random access over a tfrecord dataset by one-example TFDS slices (needs TensorFlow)."""

  def __init__(self, tfds, spec: DatasetSpec, length: int):
    self.tfds, self.spec, self.length = tfds, spec, length

  def __len__(self):
    return self.length

  def __getitem__(self, i):
    base, bracket, rng = self.spec.split.partition("[")
    offset = 0
    if bracket:   # a sliced split: index within the slice
      start = rng.rstrip("]").split(":")[0]
      offset = int(start) if start.strip() else 0
      if offset < 0:
        raise DatasetError(f"tfds:{self.spec.name}: negative slice starts are not supported here")
    split = f"{base}[{offset + i}:{offset + i + 1}]"
    ds = self.tfds.load(self.spec.name, split=split, data_dir=self.spec.data_dir,
                        shuffle_files=False, download=False)
    return next(iter(self.tfds.as_numpy(ds)))


@functools.lru_cache(maxsize=16)
def _source(name: str, split: str, data_dir: str | None):
  tfds = _tfds()
  spec = DatasetSpec(name, split, data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:   # TFDS raises several kinds for unknown / unprepared datasets
    raise DatasetError(f"tfds:{name}: cannot open the dataset ({type(e).__name__}: {str(e).splitlines()[0]}); prepare it "
                       f"first (tfds build {name}) or pass data_dir=DIR") from None
  if not builder.is_prepared():
    raise DatasetError(f"tfds:{name}: not prepared under {builder.data_dir}; run `tfds build {name}` "
                       f"(downloads are not possible here) or pass data_dir=DIR")
  base = split.partition("[")[0]
  if base not in builder.info.splits:
    raise DatasetError(f"tfds:{name}: no split {base!r}; splits: {', '.join(builder.info.splits)}")
  fmt = getattr(builder.info, "file_format", None)
  fmt = str(getattr(fmt, "value", fmt) or "tfrecord")
  if fmt == "array_record":
    return tfds.data_source(name, split=split, data_dir=data_dir)
  try:
    import tensorflow  # noqa: F401
  except ImportError:
    raise DatasetError(f"tfds:{name} is stored as {fmt}; reading it needs tensorflow "
                       f"(pip install tensorflow), or re-prepare it with --file_format=array_record"
                       ) from None
  return _TFRecordSource(tfds, spec, builder.info.splits[split].num_examples)


def list_examples(spec: str, limit: int | None = None) -> list[str]:
  """The example refs of a split, in the dataset's order (the first ``limit`` when given)."""
  s = parse(spec)
  if s.index is not None:
    return [spec]
  n = len(_source(s.name, s.split, s.data_dir))
  if n == 0:
    raise DatasetError(f"{spec}: the split holds no examples")
  n = min(n, limit) if limit else n
  return [s.example(i) for i in range(n)]


def read_uint8(ref: str) -> np.ndarray:
  """One example's image as ``[H, W, 3]`` uint8 RGB (gray replicated, alpha dropped)."""
  s = parse(ref)
  if s.index is None:
    raise DatasetError(f"{ref}: names a split, not one example (add #INDEX)")
  src = _source(s.name, s.split, s.data_dir)
  if not 0 <= s.index < len(src):
    raise DatasetError(f"{ref}: index {s.index} out of range (split has {len(src)} examples)")
  example = src[s.index]
  if s.key not in example:
    raise DatasetError(f"{ref}: no feature {s.key!r}; features: {', '.join(example)} (set key=...)")
  img = np.asarray(example[s.key])
  if img.dtype != np.uint8 or img.ndim not in (2, 3):
    raise DatasetError(f"{ref}: feature {s.key!r} is {img.dtype} {img.shape}, not an 8-bit image")
  if img.ndim == 2:
    img = img[..., None]
  if img.shape[-1] == 1:
    img = np.repeat(img, 3, axis=-1)
  elif img.shape[-1] == 4:
    img = img[..., :3]
  elif img.shape[-1] != 3:
    raise DatasetError(f"{ref}: {img.shape[-1]} channels; expected 1, 3 or 4")
  return np.ascontiguousarray(img)


def stem(ref: str) -> str:
  """A file-name-safe name for one example: ``NAME-SPLIT-INDEX``."""
  s = parse(ref)
  safe = lambda t: re.sub(r"[^A-Za-z0-9_.-]+", "_", t).strip("_")
  return f"{safe(s.name)}-{safe(s.split)}-{s.index:06d}"
