"""3×3, stride-1, padding-1 convolutions with fewer multiplies (NHWC input, HWIO kernel).

Two exact rewrites of ``conv2d(x, w, padding=1)`` (same algebra, different float rounding):

* :func:`winograd_conv3x3` — Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast
  Algorithms for Convolutional Neural Networks", https://arxiv.org/abs/1509.09308): each 2×2
  output tile is ``Aᵀ[(G w Gᵀ) ⊙ (Bᵀ d B)]A`` of its 4×4 input tile ``d``, so the Cin×Cout
  multiplies become 16 batched matmuls ``[tiles, Cin] × [Cin, Cout]`` per four outputs instead of
  36 (2.25× fewer).
* :func:`upsample_conv3x3` — ``conv2d(upsample_nearest(x, 2), w, padding=1)`` computed at the low
  resolution: output phase ``(p, q)`` (row ``2i + p``, column ``2j + q``) reads only the low-res
  rows ``i - 1 + p, i + p`` (and likewise columns), with the 3 taps of ``w`` that land on the
  same low-res pixel summed, so it is one 2×2 convolution with ``4·Cout`` outputs (2.25× fewer).

Both carry a custom input gradient: the gradient of a stride-1 padding-1 3×3 convolution is the
same kind of convolution of the cotangent with the flipped, transposed kernel, so it takes the same
fast path; the kernel's gradient is the direct one (dropped by XLA when unused).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv3x3", "winograd_conv3x3", "upsample_conv3x3", "CONV_IMPLS"]

CONV_IMPLS = ("direct", "winograd")
_DIMS = ("NHWC", "HWIO", "NHWC")


def _direct(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMS)


def _flip_transpose(w):
  """The kernel whose padding-1 convolution is the input gradient of ``w``'s."""
  return jnp.swapaxes(w[::-1, ::-1], 2, 3)


# F(2, 3) in one dimension: y = Aᵀ[(G g) ⊙ (Bᵀ d)] for the 4-sample input d, 3-tap filter g.
# The transforms are written as sums of slices (element-wise, one fusion): as einsums with the
# small matrices, XLA:CPU runs them as transposing dots that cost more than the convolution.


def _filter_transform(w, axis):
  """``G g`` along ``axis`` of the kernel: 3 taps → 4, G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]]."""
  g0, g1, g2 = (lax.index_in_dim(w, i, axis) for i in range(3))
  half = jnp.asarray(0.5, w.dtype)
  return jnp.concatenate([g0, (g0 + g1 + g2) * half, (g0 - g1 + g2) * half, g2], axis=axis)


def _input_transform(rows):
  """``Bᵀ d`` along one axis: four slices d0..d3 → four transformed slices (adds only)."""
  d0, d1, d2, d3 = rows
  return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)


def _output_transform(m):
  """``Aᵀ m`` along one axis: four slices → the two outputs."""
  return (m[0] + m[1] + m[2], m[1] - m[2] - m[3])


def _winograd_forward(x, w):
  b, h, wd, cin = x.shape
  cout = w.shape[-1]
  th, tw = (h + 1) // 2, (wd + 1) // 2
  xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * th - h), (1, 1 + 2 * tw - wd), (0, 0)))
  rows = _input_transform([xp[:, a:a + 2 * th:2] for a in range(4)])            # [B, th, W+2, C]
  tiles = [t for r in rows for t in _input_transform([r[:, :, a:a + 2 * tw:2] for a in range(4)])]
  v = jnp.stack(tiles).reshape(16, b * th * tw, cin)
  u = _filter_transform(_filter_transform(w, 0), 1).reshape(16, cin, cout)
  m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))                    # [16, P, Cout]
  m = m.reshape(4, 4, b, th, tw, cout)
  rows_out = _output_transform(m)                                               # 2 × [4, B, ...]
  y = jnp.stack([jnp.stack(_output_transform(r)) for r in rows_out])
  # y[p, q, b, i, j, o] is output (2i + p, 2j + q).
  y = y.transpose(2, 3, 0, 4, 1, 5).reshape(b, 2 * th, 2 * tw, cout)
  return y[:, :h, :wd]


@jax.custom_vjp
def winograd_conv3x3(x, w):
  """``conv2d(x, w, padding=1)`` for ``x [B, H, W, Cin]``, ``w [3, 3, Cin, Cout]`` via F(2×2, 3×3)."""
  return _winograd_forward(x, w)


def _winograd_fwd(x, w):
  return _winograd_forward(x, w), (x, w)


def _winograd_bwd(res, g):
  x, w = res
  dx = _winograd_forward(g, _flip_transpose(w))
  _, w_vjp = jax.vjp(lambda k: _direct(x, k), w)
  return dx, w_vjp(g)[0]


winograd_conv3x3.defvjp(_winograd_fwd, _winograd_bwd)

def _phase_taps(w, axis, phase):
  """Along ``axis``, the 3 taps of ``w`` summed onto the 2 low-res rows output phase ``phase``
  reads (rows ``i - 1 + phase, i + phase``): phase 0 → (w0, w1 + w2), phase 1 → (w0 + w1, w2)."""
  g0, g1, g2 = (lax.index_in_dim(w, i, axis) for i in range(3))
  return jnp.concatenate([g0, g1 + g2] if phase == 0 else [g0 + g1, g2], axis=axis)


def _upsample_conv_forward(x, w):
  b, h, wd, _ = x.shape
  # Four 2×2 convolutions (one per output phase) rather than one with 4·Cout outputs: XLA:CPU
  # runs the input gradient of the wide one ~3× slower per FLOP.
  phases = [[lax.conv_general_dilated(x, _phase_taps(_phase_taps(w, 0, p), 1, q), (1, 1),
                                      ((1 - p, p), (1 - q, q)), dimension_numbers=_DIMS)
             for q in range(2)] for p in range(2)]
  y = jnp.stack([jnp.stack(r, axis=3) for r in phases], axis=2)                # [B, H, 2, W, 2, C]
  return y.reshape(b, 2 * h, 2 * wd, w.shape[-1])


def upsample_conv3x3(x, w):
  """``conv2d(upsample_nearest(x, 2), w, padding=1)`` computed at the low resolution."""
  return _upsample_conv_forward(x, w)


def conv3x3(x, w, impl: str = "direct"):
  """``conv2d(x, w, padding=1)`` by ``impl`` (one of :data:`CONV_IMPLS`)."""
  if impl == "direct":
    return _direct(x, w)
  if impl == "winograd":
    return winograd_conv3x3(x, w)
  raise ValueError(f"unknown conv implementation {impl!r}; choose one of {CONV_IMPLS}")
