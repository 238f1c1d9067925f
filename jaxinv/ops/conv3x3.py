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
  same low-res pixel summed, so it is four 2×2 convolutions at the low resolution (2.25× fewer
  multiplies), interleaved.

Winograd carries a custom input gradient: the gradient of a stride-1 padding-1 3×3 convolution is
the same kind of convolution of the cotangent with the flipped, transposed kernel, whose
Winograd-domain kernel is the forward one with its tiles permuted, so the backward pass reuses the
transformed kernel; the kernel's gradient is the direct one (dropped by XLA when unused). Being a
``jax.custom_vjp``, it supports reverse mode only: forward-mode (``jax.jvp``, ``jacfwd``) through it
raises; pick ``"direct"`` or ``"polyphase"`` for that.

Models pick an implementation by name (:data:`CONV_IMPLS`, :func:`conv3x3`,
:func:`upsample2_conv3x3`); ``"fast"`` is the choice measured on CPU (see
:data:`WINOGRAD_MIN_CHANNELS`), ``"auto"`` is ``$JAXINV_CONV_IMPL``, else ``"fast"`` on CPU and
``"direct"`` on accelerators.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["conv3x3", "upsample2_conv3x3", "winograd_conv3x3", "upsample_conv3x3", "resolve",
           "CONV_IMPLS"]

CONV_IMPLS = ("auto", "direct", "polyphase", "winograd", "fast")
_DIMS = ("NHWC", "HWIO", "NHWC")


def _direct(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMS)


# F(2, 3) in one dimension: y = Aᵀ[(G g) ⊙ (Bᵀ d)] for the 4-sample input d, 3-tap filter g, with
#   Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
#   G  = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]
#   Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]].
# Bᵀ and Aᵀ are applied as sums of slices (they fuse into one element-wise pass each); the kernel
# transform is one [16, 9] × [9, Cin·Cout] dot (as an element-wise stack or an einsum with the
# small matrices XLA:CPU takes several times longer).
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_G2 = np.einsum("ia,jb->ijab", _G, _G).reshape(16, 9)
# G·flip(g) is G·g with rows 0 and 3 swapped, so the Winograd-domain kernel of the spatially
# flipped kernel is that of the kernel with tiles (i, j) → (π i, π j), π = (3, 1, 2, 0).
_FLIP = np.array([4 * (3 - i if i in (0, 3) else i) + (3 - j if j in (0, 3) else j)
                  for i in range(4) for j in range(4)])


def _input_transform(rows):
  """``Bᵀ d`` along one axis: four slices d0..d3 → four transformed slices."""
  d0, d1, d2, d3 = rows
  return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)


def _output_transform(m):
  """``Aᵀ m`` along one axis: four slices → the two outputs."""
  return (m[0] + m[1] + m[2], m[1] - m[2] - m[3])


def _kernel_transform(w):
  """``G w Gᵀ`` of ``w [3, 3, Cin, Cout]`` as ``[16, Cin, Cout]`` (tile index 4 i + j)."""
  cin, cout = w.shape[2:]
  u = lax.dot(jnp.asarray(_G2, w.dtype), w.reshape(9, cin * cout), precision=lax.Precision.HIGHEST)
  return u.reshape(16, cin, cout)


def _winograd(x, u, transposed: bool):
  """Padding-1 3×3 convolution of ``x`` whose Winograd-domain kernel is ``u [16, Cin, Cout]``;
  ``transposed``: with the kernel flipped spatially and its channel axes swapped (``x`` has
  Cout channels, the result Cin), i.e. the input gradient of the convolution ``u`` stands for."""
  b, h, wd, c = x.shape
  th, tw = (h + 1) // 2, (wd + 1) // 2
  xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * th - h), (1, 1 + 2 * tw - wd), (0, 0)))
  rows = _input_transform([xp[:, a:a + 2 * th:2] for a in range(4)])             # [B, th, W+2, C]
  tiles = [t for r in rows for t in _input_transform([r[:, :, a:a + 2 * tw:2] for a in range(4)])]
  if transposed:
    tiles = [tiles[i] for i in _FLIP]
  v = jnp.stack(tiles).reshape(16, b * th * tw, c)
  m = lax.dot_general(v, u, (((2,), (2 if transposed else 1,)), ((0,), (0,))))     # [16, P, Co]
  m = m.reshape(16, b, th, tw, m.shape[-1])
  if transposed:
    m = m[_FLIP]
  m = m.reshape((4, 4) + m.shape[1:])
  y = jnp.stack([jnp.stack(_output_transform(r)) for r in _output_transform(m)])
  # y[p, q, b, i, j, o] is output (2i + p, 2j + q).
  y = y.transpose(2, 3, 0, 4, 1, 5).reshape(b, 2 * th, 2 * tw, y.shape[-1])
  return y[:, :h, :wd]


@jax.custom_vjp
def winograd_conv3x3(x, w):
  """``conv2d(x, w, padding=1)`` for ``x [B, H, W, Cin]``, ``w [3, 3, Cin, Cout]`` via F(2×2, 3×3)."""
  return _winograd(x, _kernel_transform(w), False)


def _winograd_fwd(x, w):
  u = _kernel_transform(w)
  return _winograd(x, u, False), (x, w, u)


def _winograd_bwd(res, g):
  x, w, u = res
  _, w_vjp = jax.vjp(lambda k: _direct(x, k), w)
  return _winograd(g, u, True), w_vjp(g)[0]


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


# Measured on a 2-core AVX-512 CPU (experiments/bench/results/cpu_2core_conv3x3.txt), forward +
# input gradient: Winograd is 1.3-1.7x faster than XLA's direct convolution for 512 → 512
# channels (4² … 32² maps), even at 256 channels (64², VGG's 256-channel layers) and slower below
# (0.4-0.8x: the transforms move 4x the activations, the matmuls are too thin to hide it); the
# polyphase up-convolution is 1.7-2.1x faster at every measured width.
WINOGRAD_MIN_CHANNELS = 512
ENV_VAR = "JAXINV_CONV_IMPL"


def resolve(impl: str) -> str:
  """The implementation ``impl`` stands for: ``"auto"`` is ``$JAXINV_CONV_IMPL`` when set, else
  ``"fast"`` (polyphase up-convolutions, Winograd for wide layers: the measured choice, 1.4-1.7x
  per benchmark step) when JAX's default backend is the CPU and ``"direct"`` elsewhere (GPU/TPU
  convolution libraries already run near peak; not measured against these forms)."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv implementation {impl!r}; choose one of {CONV_IMPLS}")
  if impl == "auto":
    env = os.environ.get(ENV_VAR)
    if env:
      if env not in CONV_IMPLS or env == "auto":
        raise ValueError(f"${ENV_VAR}={env!r}; choose one of {CONV_IMPLS[1:]}")
      return env
    return "fast" if jax.default_backend() == "cpu" else "direct"
  return impl


def conv3x3(x, w, impl: str = "direct"):
  """``conv2d(x, w, padding=1)`` by ``impl`` (one of :data:`CONV_IMPLS`): ``"winograd"`` always
  takes F(2×2, 3×3), ``"fast"`` when both channel counts are ≥ WINOGRAD_MIN_CHANNELS."""
  impl = resolve(impl)
  wide = min(w.shape[2], w.shape[3]) >= WINOGRAD_MIN_CHANNELS
  if impl == "winograd" or (impl == "fast" and wide):
    return winograd_conv3x3(x, w)
  return _direct(x, w)


def upsample2_conv3x3(x, w, impl: str = "direct"):
  """``conv2d(upsample_nearest(x, 2), w, padding=1)`` by ``impl``: the polyphase form for
  ``"polyphase"``, ``"winograd"`` and ``"fast"``."""
  impl = resolve(impl)
  if impl == "direct":
    b, h, wd, c = x.shape
    up = jnp.broadcast_to(x[:, :, None, :, None], (b, h, 2, wd, 2, c)).reshape(b, 2 * h, 2 * wd, c)
    return _direct(up, w)
  return upsample_conv3x3(x, w)
