"""The layered-generator interface every generator config shares.

A generator is a sequence of ``num_layers`` layers; ``layer_names()`` names them and
``feature_shapes()`` gives, for ``k = 0 .. num_layers``, the ``(H, W, C)`` that layer ``k``
receives (None: nothing, a constant input; the last entry is the image). Multi-code composition and
every layer-wise method index layers through :meth:`LayeredConfig.check_layer`.
"""

from __future__ import annotations


class LayerIndexError(ValueError):
  """A composing-layer index outside the generator (the message lists every layer's shape)."""


class LayeredConfig:
  """Mixin for generator configs with ``num_layers``, ``resolution``, ``layer_names()`` and
  ``feature_shapes()``; ``FAMILY`` names the generator in messages."""

  FAMILY = "generator"

  def check_layer(self, k: int, allow_ends: bool = True) -> int:
    """``k`` if it is a layer index (``allow_ends=False``: strictly inside, as composition needs);
    otherwise :class:`LayerIndexError` listing what each index receives."""
    lo, hi = (0, self.num_layers) if allow_ends else (1, self.num_layers - 1)
    if not isinstance(k, int) or isinstance(k, bool) or not lo <= k <= hi:
      rows = []
      for i, (name, s) in enumerate(zip(self.layer_names() + ["(image)"], self.feature_shapes())):
        shape = "nothing (constant input)" if s is None else "H×W×C = " + "×".join(map(str, s))
        rows.append(f"  {i}: {name} receives {shape}")
      raise LayerIndexError(
          f"composing layer {k!r} is outside [{lo}, {hi}] for this {self.resolution}px "
          f"{self.FAMILY} ({self.num_layers} layers). Feature shape at each index:\n"
          + "\n".join(rows))
    return k
