"""Writes small TFDS image datasets (array_record, PNG-encoded ``image`` feature) without TensorFlow."""

from __future__ import annotations

import io
import os

import numpy as np

_PENDING: dict = {}


def _builder_class():
  import tensorflow_datasets as tfds

  class JaxinvTestImages(tfds.core.GeneratorBasedBuilder):
    """Images handed over by :func:`write_dataset` (split ``train``), with their ``name``."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3)), "name": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      from PIL import Image
      for i, (name, u8) in enumerate(_PENDING["images"]):
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="PNG")
        yield f"{i:06d}", {"image": buf.getvalue(), "name": name}

  return JaxinvTestImages


_CLASS = None


def write_dataset(data_dir: str, images: list[tuple[str, np.ndarray]]) -> str:
  """Prepares ``jaxinv_test_images`` under ``data_dir``; returns its spec ``tfds:…?split=train&data_dir=…``."""
  global _CLASS
  if _CLASS is None:
    _CLASS = _builder_class()
  _PENDING["images"] = images
  _CLASS(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return f"tfds:jaxinv_test_images?split=train&data_dir={os.path.abspath(data_dir)}"
