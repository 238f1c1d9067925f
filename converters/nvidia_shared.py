"""What the NVIDIA StyleGAN2-ADA and StyleGAN3 generator converters read the same way.

Both ``training.networks*.Generator`` modules take the same top-level init kwargs
(``z_dim``, ``c_dim``, ``w_dim``, ``img_resolution``, ``img_channels``, ``mapping_kwargs``) and
store their mapping network and ``w_avg`` under the same names.
"""

from __future__ import annotations

from jaxinv.converters.table import ConversionError, Rule, linear_to_io

__all__ = ["MAPPING_RULES", "mapping_settings", "read_config", "generator_extras"]

MAPPING_RULES = [
    Rule(r"mapping\.embed\.weight", "mapping/embed/weight", linear_to_io),
    Rule(r"mapping\.embed\.bias", "mapping/embed/bias"),
    Rule(r"mapping\.fc(\d+)\.weight", r"mapping/dense\1/weight", linear_to_io),
    Rule(r"mapping\.fc(\d+)\.bias", r"mapping/dense\1/bias"),
    Rule(r"mapping\.w_avg", "truncation/w_avg"),
]


def mapping_settings(kw: dict, default_mapping_layers: int) -> dict:
  """The config fields a Generator's init kwargs give directly: ``resolution``, ``z_dim``,
  ``w_dim``, ``c_dim``, ``image_channels``, ``mapping_layers`` (``default_mapping_layers`` when
  unset: the family's own default) and ``mapping_lr_mul``. Refuses mapping networks whose
  hidden widths differ from ``w_dim`` or whose activation is not leaky ReLU."""
  mk = dict(kw.get("mapping_kwargs") or {})
  w_dim = int(kw["w_dim"])
  for key in ("embed_features", "layer_features"):
    if mk.get(key) not in (None, w_dim):
      raise ConversionError(f"mapping_kwargs {key}={mk[key]} is not supported (only w_dim)")
  if mk.get("activation", "lrelu") != "lrelu":
    raise ConversionError(f"mapping activation {mk['activation']!r} is not supported")
  return dict(resolution=int(kw["img_resolution"]), z_dim=int(kw["z_dim"]), w_dim=w_dim,
              c_dim=int(kw.get("c_dim", 0)), image_channels=int(kw.get("img_channels", 3)),
              mapping_layers=int(mk.get("num_layers", default_mapping_layers)),
              mapping_lr_mul=float(mk.get("lr_multiplier", 0.01)))


def read_config(build, what: str):
  """``build()``, with a malformed record (missing key, wrong type or value) reported as one
  :class:`ConversionError` naming ``what`` (``build``'s own ConversionErrors pass unchanged)."""
  try:
    return build()
  except ConversionError:
    raise
  except (KeyError, TypeError, ValueError) as e:
    raise ConversionError(f"{what} not understood: {e}") from None


def generator_extras(cfg, part: str, truncation_psi=None, truncation_layers=None) -> dict:
  """The model extras of a converted NVIDIA generator: NVIDIA's defaults (psi 1 on every row,
  constant noise) unless given, and the pickle part it came from."""
  return {"truncation_psi": 1.0 if truncation_psi is None else float(truncation_psi),
          "truncation_layers": cfg.num_ws if truncation_layers is None else int(truncation_layers),
          "randomize_noise": False, "nvidia_part": part}
