"""3×3, stride-1, padding-1 convolutions with fewer multiplies (NHWC input, HWIO kernel).

Two exact rewrites of ``conv2d(x, w, padding=1)`` (same algebra, different float rounding):

* :func:`winograd_conv3x3` — Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray, "Fast
  Algorithms for Convolutional Neural Networks", https://arxiv.org/abs/1509.09308): each m×m
  output tile is ``Aᵀ[(G w Gᵀ) ⊙ (Bᵀ d B)]A`` of its (m+2)×(m+2) input tile ``d``, so the
  Cin×Cout multiplies become (m+2)² batched matmuls ``[tiles, Cin] × [Cin, Cout]`` per m² outputs
  instead of 9·m²: 2.25× fewer for m = 2, 4× fewer for m = 4. The matrices come from the
  Cook–Toom construction (:func:`winograd_matrices`) on the points :data:`WINOGRAD_POINTS`.
* :func:`upsample_conv3x3` — ``conv2d(upsample_nearest(x, 2), w, padding=1)`` computed at the low
  resolution: output phase ``(p, q)`` (row ``2i + p``, column ``2j + q``) reads only the low-res
  rows ``i - 1 + p, i + p`` (and likewise columns), with the 3 taps of ``w`` that land on the
  same low-res pixel summed, so it is four 2×2 convolutions at the low resolution (2.25× fewer
  multiplies), interleaved.

What these forms compute from the kernel alone (Winograd-domain kernels, summed phase taps) is
split off as :func:`prepare`, applied by :func:`apply_prepared`: a frozen generator's kernels are
then transformed once per run rather than at every step (``conv3x3`` = ``apply_prepared ∘
prepare``, so both give the same bits). Winograd carries a custom input gradient: the gradient of
a stride-1 padding-1 3×3 convolution is the same kind of convolution of the cotangent with the
flipped, transposed kernel, whose Winograd-domain form :func:`prepare` also makes; the gradient
with respect to the Winograd-domain kernel is the exact one (so a kernel gradient through
``prepare`` is right), and XLA drops it when unused. Under ``vmap`` (a loop's batch of images) the
Winograd forms run the samples of every image as one batch (:func:`_per_sample`). Being
``jax.custom_vjp``s, they and the polyphase up-convolution support reverse mode only: forward-mode
(``jax.jvp``, ``jacfwd``) through them raises; pick ``"direct"`` for that.

Models pick an implementation by name (:data:`CONV_IMPLS`, :func:`conv3x3`,
:func:`upsample2_conv3x3`); ``"fast"`` is the choice measured on CPU (:func:`winograd_tile`),
``"auto"`` is ``$JAXINV_CONV_IMPL``, else ``"fast"`` on CPU and ``"direct"`` on accelerators.
"""

from __future__ import annotations

import functools
import math
import os
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["conv3x3", "upsample2_conv3x3", "winograd_conv3x3", "upsample_conv3x3", "direct_conv3x3",
           "resolve", "prepare", "apply_prepared", "winograd_matrices", "winograd_kernels", "CONV_IMPLS"]

CONV_IMPLS = ("auto", "direct", "polyphase", "winograd", "fast")
_DIMS = ("NHWC", "HWIO", "NHWC")


def _direct(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMS)


# Interpolation points of the Cook–Toom construction per output tile size m (plus the point at
# infinity). m = 2: the classic F(2, 3). m = 4: of the point sets measured on 512 → 512 channels
# (float32 output vs float64, relative to the largest output), {0, ±1, 2, -½} erred least:
# 6.7e-6, against 2.5e-5 for {0, ±1, ±2}, 2.0e-5 for {0, ±1, ±½}, 6.7e-5 for {0, ±1, ±3}
# (F(2, 3): 1.0e-6).
WINOGRAD_POINTS = {2: (0, 1, -1), 4: (0, 1, -1, 2, Fraction(-1, 2))}
# F(2, 2) for the 2×2 phase kernels of the up-convolution.
PHASE_POINTS = (0, 1)


@functools.lru_cache(maxsize=None)
def winograd_matrices(m: int, r: int = 3):
  """``(Aᵀ [m, α], G [α, r], Bᵀ [α, α])`` of F(m, r), α = m + r − 1, as float64 arrays:
  ``y_k = Σ_j g_j d_{k+j} = (Aᵀ[(G g) ⊙ (Bᵀ d)])_k`` for an r-tap filter ``g`` and α samples ``d``
  (points: :data:`WINOGRAD_POINTS` for r = 3, :data:`PHASE_POINTS` for the 2-tap phases).

  Cook–Toom: the linear convolution ``s = g * h`` (``h`` of length m) is interpolated from its
  values at the points ``a_i`` and its leading coefficient (the point at infinity), so
  ``s = C[(E₃ g) ⊙ (E_m h)]`` with the evaluation matrices ``E_n`` (rows ``[1, a, …, a^{n-1}]``;
  ``[0, …, 0, 1]`` at infinity) and ``C`` the interpolation (columns: the Lagrange basis
  polynomials; at infinity ``Π (x − a_i)``); correlation is its transpose, ``Aᵀ = E_mᵀ``,
  ``G = E₃``, ``Bᵀ = Cᵀ``. The Lagrange denominators are moved from ``Bᵀ`` into ``G``, which
  keeps ``Bᵀ`` to small integers and halves.
  """
  points = [Fraction(p) for p in (WINOGRAD_POINTS[m] if r == 3 else PHASE_POINTS)]
  alpha = m + r - 1
  assert len(points) == alpha - 1, (m, r)

  def monic(roots):                      # coefficients (low → high) of Π (x − r)
    c = [Fraction(1)]
    for r in roots:
      c = [Fraction(0)] + c
      for k in range(len(c) - 1):
        c[k] -= r * c[k + 1]
    return c + [Fraction(0)] * (alpha - len(c))

  a_t = [[p ** k for p in points] + [Fraction(int(k == m - 1))] for k in range(m)]
  g, b_t = [], []
  for i, p in enumerate(points):
    others = points[:i] + points[i + 1:]
    denominator = math.prod((p - q for q in others), start=Fraction(1))
    g.append([p ** k / denominator for k in range(r)])
    b_t.append(monic(others))
  g.append([Fraction(int(k == r - 1)) for k in range(r)])
  b_t.append(monic(points))
  as_array = lambda rows: np.array([[float(v) for v in row] for row in rows])
  return as_array(a_t), as_array(g), as_array(b_t)


def _tile_count(n: int, m: int) -> int:
  return -(-n // m)


def _transformed_tiles(x, m, rows):
  """``R d Rᵀ`` (``R = rows``, ``[k, α]``) of every α × α input tile, at stride ``m``, of the
  padding-1 map ``x [B, H, W, C]``, as ``[k², B·th·tw, C]``: the tiles are gathered by strided
  slices and transformed by one dot with ``R ⊗ R`` (on XLA:CPU faster than the same sums written
  element-wise)."""
  alpha = rows.shape[1]
  b, h, wd, c = x.shape
  th, tw = _tile_count(h, m), _tile_count(wd, m)
  xp = jnp.pad(x, ((0, 0), (1, m * th + 1 - h), (1, m * tw + 1 - wd), (0, 0)))
  d = jnp.stack([xp[:, i:i + m * th:m, j:j + m * tw:m] for i in range(alpha) for j in range(alpha)])
  v = lax.dot(jnp.asarray(np.kron(rows, rows), x.dtype), d.reshape(alpha * alpha, -1),
              precision=lax.Precision.HIGHEST)
  return v.reshape(v.shape[0], b * th * tw, c)


def _input_tiles(x, m):
  """``Bᵀ d B`` of every (m+2)² input tile of F(m, 3) as ``[α², B·th·tw, C]``."""
  return _transformed_tiles(x, m, winograd_matrices(m)[2])


def _kernel_transform(g, taps):
  """``G k Gᵀ`` for ``taps [r·r, …]`` (the r × r taps of kernels, row major) → ``[α², …]``."""
  g2 = np.einsum("ia,jb->ijab", g, g).reshape(g.shape[0] ** 2, -1)
  flat = taps.reshape(g2.shape[1], -1)
  return lax.dot(jnp.asarray(g2, taps.dtype), flat, precision=lax.Precision.HIGHEST).reshape(
      (-1,) + taps.shape[1:])


def _output_tiles(mm, m, shape):
  """``Aᵀ M A`` of ``mm [α², B·th·tw, C]``, interleaved into the ``[B, H, W, C]`` map ``shape``."""
  a_t = winograd_matrices(m)[0]
  b, h, wd = shape
  th, tw = _tile_count(h, m), _tile_count(wd, m)
  y = lax.dot(jnp.asarray(np.kron(a_t, a_t), mm.dtype), mm.reshape(mm.shape[0], -1),
              precision=lax.Precision.HIGHEST)
  y = y.reshape(m, m, b, th, tw, mm.shape[-1])           # y[p, q, b, i, j]: output (m i + p, m j + q)
  y = y.transpose(2, 3, 0, 4, 1, 5).reshape(b, m * th, m * tw, mm.shape[-1])
  return y[:, :h, :wd]


def _output_tiles_transposed(g, m):
  """The transpose of :func:`_output_tiles`: the cotangent ``g [B, H, W, C]`` → ``[α², P, C]``."""
  a_t = winograd_matrices(m)[0]
  b, h, wd, c = g.shape
  th, tw = _tile_count(h, m), _tile_count(wd, m)
  g = jnp.pad(g, ((0, 0), (0, m * th - h), (0, m * tw - wd), (0, 0)))
  g = g.reshape(b, th, m, tw, m, c).transpose(2, 4, 0, 1, 3, 5).reshape(m * m, -1)
  mm = lax.dot(jnp.asarray(np.kron(a_t, a_t).T, g.dtype), g, precision=lax.Precision.HIGHEST)
  return mm.reshape(mm.shape[0], b * th * tw, c)


def _tile_of(u) -> int:
  return {16: 2, 36: 4}[u.shape[0]]


def _per_sample(f):
  """``f(x, *kernels)`` — a function of a batch ``x [N, …]`` that treats its samples alike — with
  its ``vmap`` over ``x`` run as ``f`` of the merged ``[B·N, …]`` batch (a free reshape): vmap's
  own rules would put a transpose of the whole tensor around each of ``f``'s reshapes and
  Kronecker dots (measured: a third of a batch-8 inversion step). With batched kernels, plain vmap.
  Being a ``jax.custom_batching.custom_vmap``, reverse-mode autodiff does not pass through it:
  callers wrap it in a ``custom_vjp``."""
  merged = jax.custom_batching.custom_vmap(f)

  @merged.def_vmap
  def rule(axis_size, in_batched, x, *kernels):
    if any(in_batched[1:]):
      axes = tuple(0 if b else None for b in in_batched)
      return jax.vmap(f, in_axes=axes)(x, *kernels), True
    y = merged(x.reshape((-1,) + x.shape[2:]), *kernels)
    return y.reshape((axis_size, -1) + y.shape[1:]), True

  return merged


def _winograd_apply(x, u, kernel_in_axis):
  """F(m, 3) of ``x`` by the Winograd-domain kernel ``u``, contracting ``x``'s channels with
  ``u``'s axis ``kernel_in_axis`` (1: ``u [α², Cin, Cout]``; 2: the input gradient's flipped
  kernel, whose channel axes are read swapped)."""
  m = _tile_of(u)
  mm = lax.dot_general(_input_tiles(x, m), u, (((2,), (kernel_in_axis,)), ((0,), (0,))))
  return _output_tiles(mm, m, x.shape[:3])


_winograd_forward_merged = _per_sample(lambda x, u: _winograd_apply(x, u, 1))
_winograd_input_grad_merged = _per_sample(lambda g, u_flip: _winograd_apply(g, u_flip, 2))


def winograd_kernels(w, m: int):
  """``(u, u_flip)`` ``[α², Cin, Cout]``: ``G w Gᵀ`` of ``w [3, 3, Cin, Cout]`` and of ``w``
  flipped spatially (the input gradient's kernel, its channel axes read swapped)."""
  g = winograd_matrices(m)[1]
  taps = w.reshape((9,) + w.shape[2:])
  return _kernel_transform(g, taps), _kernel_transform(g[:, ::-1], taps)


@jax.custom_vjp
def _winograd_prepared(x, u, u_flip):
  return _winograd_forward_merged(x, u)


def _winograd_prepared_fwd(x, u, u_flip):
  return _winograd_forward_merged(x, u), (x, u_flip)


def _winograd_prepared_bwd(res, g):
  x, u_flip = res
  m = _tile_of(u_flip)
  du = lax.dot_general(_input_tiles(x, m), _output_tiles_transposed(g, m),
                       (((1,), (1,)), ((0,), (0,))))
  return _winograd_input_grad_merged(g, u_flip), du, jnp.zeros_like(u_flip)


_winograd_prepared.defvjp(_winograd_prepared_fwd, _winograd_prepared_bwd)


def winograd_conv3x3(x, w, tile: int = 2):
  """``conv2d(x, w, padding=1)`` for ``x [B, H, W, Cin]``, ``w [3, 3, Cin, Cout]`` via
  F(tile × tile, 3 × 3), ``tile`` one of :data:`WINOGRAD_POINTS`."""
  return _winograd_prepared(x, *winograd_kernels(w, tile))


def _phase_taps(w, axis, phase):
  """Along ``axis``, the 3 taps of ``w`` summed onto the 2 low-res rows output phase ``phase``
  reads (rows ``i - 1 + phase, i + phase``): phase 0 → (w0, w1 + w2), phase 1 → (w0 + w1, w2)."""
  g0, g1, g2 = (lax.index_in_dim(w, i, axis) for i in range(3))
  return jnp.concatenate([g0, g1 + g2] if phase == 0 else [g0 + g1, g2], axis=axis)


def phase_kernels(w):
  """``[2, 2, 2, 2, Cin, Cout]``: output phase ``(p, q)``'s 2×2 low-res kernel (taps summed)."""
  return jnp.stack([jnp.stack([_phase_taps(_phase_taps(w, 0, p), 1, q) for q in range(2)])
                    for p in range(2)])


def _upsample_conv_forward(x, k):
  b, h, wd, _ = x.shape
  # Four 2×2 convolutions (one per output phase) rather than one with 4·Cout outputs: XLA:CPU
  # runs the input gradient of the wide one ~3× slower per FLOP.
  phases = [[lax.conv_general_dilated(x, k[p, q], (1, 1), ((1 - p, p), (1 - q, q)),
                                      dimension_numbers=_DIMS)
             for q in range(2)] for p in range(2)]
  y = jnp.stack([jnp.stack(r, axis=3) for r in phases], axis=2)                # [B, H, 2, W, 2, C]
  return y.reshape(b, 2 * h, 2 * wd, k.shape[-1])


def _with_prepared_input_grad(forward, input_grad):
  """``f(x, k, k_flip) = forward(x, k)`` whose input gradient is ``input_grad(g, k_flip, x)``, a
  kernel prepared outside the step (autodiff's own transpose would reverse ``k`` inside it and read
  its channel axes swapped, which XLA:CPU runs on a slow convolution path inside a loop body, where
  the kernel arrives through the loop state); the kernel gradient is autodiff's, ``k_flip``'s zero."""
  @jax.custom_vjp
  def f(x, k, k_flip):
    return forward(x, k)

  def fwd(x, k, k_flip):
    return forward(x, k), (x, k, k_flip)

  def bwd(res, g):
    x, k, k_flip = res
    _, k_vjp = jax.vjp(lambda k: forward(x, k), k)
    return input_grad(g, k_flip, x), k_vjp(g)[0], jnp.zeros_like(k_flip)

  f.defvjp(fwd, bwd)
  return f


def _upsample_conv_input_grad(g, k_flip, x):
  # Each phase's input gradient is the 2×2 convolution of its cotangent with the flipped,
  # transposed phase kernel, padding mirrored.
  b, h, wd, _ = x.shape
  gp = g.reshape(b, h, 2, wd, 2, g.shape[-1])
  return sum(lax.conv_general_dilated(gp[:, :, p, :, q], k_flip[p, q], (1, 1),
                                      ((p, 1 - p), (q, 1 - q)), dimension_numbers=_DIMS)
             for p in range(2) for q in range(2))


_upsample_conv_phases = _with_prepared_input_grad(_upsample_conv_forward, _upsample_conv_input_grad)


def _phase_rows():
  # F(2×2, 2×2) inside the polyphase form: output phase p reads the (padded) low-res rows
  # 2t + p … 2t + p + 2 of tile t. With Bᵀ = [[-1, 1, 0], [0, 1, 0], [0, -1, 1]] phase 0's last
  # transformed row is phase 1's first, so both phases' rows are 5 combinations of the 4 rows
  # 2t … 2t + 3 (0-2: phase 0, 2-4: phase 1), likewise for columns: one dot with their Kronecker
  # square transforms the input once for all four phases.
  b_t = winograd_matrices(2, 2)[2]
  phase0, phase1 = np.pad(b_t, ((0, 0), (0, 1))), np.pad(b_t, ((0, 0), (1, 0)))
  assert np.array_equal(phase0[2], phase1[0])
  return np.concatenate([phase0, phase1[1:]])


_PHASE_ROWS = _phase_rows()


def phase_winograd_kernels(w):
  """``[9·4, Cin, Cout]``: the Winograd-domain F(2×2, 2×2) kernel of each output phase (p, q),
  Winograd index major."""
  k = phase_kernels(w)                                              # [p, q, 2, 2, Cin, Cout]
  taps = k.reshape((4, 4) + w.shape[2:]).swapaxes(0, 1)             # [tap, phase, Cin, Cout]
  return _kernel_transform(winograd_matrices(2, 2)[1], taps).reshape((36,) + w.shape[2:])


def _upsample_conv_winograd(x, u):
  """``conv2d(upsample_nearest(x, 2), w, padding=1)`` from :func:`phase_winograd_kernels`'
  ``u`` (the per-sample form; :func:`_upsample_winograd_prepared` carries its gradients)."""
  a_t = winograd_matrices(2, 2)[0]
  b, h, wd, c = x.shape
  th, tw = _tile_count(h, 2), _tile_count(wd, 2)
  v = _transformed_tiles(x, 2, _PHASE_ROWS).reshape(5, 5, -1, c)
  v = jnp.stack([v[2 * p:2 * p + 3, 2 * q:2 * q + 3].reshape(9, -1, c)
                 for p in range(2) for q in range(2)], axis=1).reshape(36, -1, c)
  mm = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))               # [9·4, P, Cout]
  co = mm.shape[-1]
  y = lax.dot(jnp.asarray(np.kron(a_t, a_t), x.dtype), mm.reshape(9, -1),
              precision=lax.Precision.HIGHEST)
  y = y.reshape(2, 2, 2, 2, b, th, tw, co)       # [a, c, p, q, B, t, s]: output (2(2t + a) + p, …)
  y = y.transpose(4, 5, 0, 2, 6, 1, 3, 7).reshape(b, 4 * th, 4 * tw, co)
  return y[:, :2 * h, :2 * wd]


def _upsample_conv_winograd_transposed(g, u):
  """The input gradient of :func:`_upsample_conv_winograd` (linear in ``x``): its transpose."""
  b, h, wd, _ = g.shape
  x = jax.ShapeDtypeStruct((b, h // 2, wd // 2, u.shape[1]), g.dtype)
  return jax.linear_transpose(lambda x: _upsample_conv_winograd(x, u), x)(g)[0]


_upsample_conv_winograd_merged = _per_sample(_upsample_conv_winograd)
_upsample_conv_winograd_transposed_merged = _per_sample(_upsample_conv_winograd_transposed)


@jax.custom_vjp
def _upsample_winograd_prepared(x, u):
  return _upsample_conv_winograd_merged(x, u)


def _upsample_winograd_prepared_fwd(x, u):
  return _upsample_conv_winograd_merged(x, u), (x, u)


def _upsample_winograd_prepared_bwd(res, g):
  x, u = res
  _, u_vjp = jax.vjp(lambda u: _upsample_conv_winograd(x, u), u)
  return _upsample_conv_winograd_transposed_merged(g, u), u_vjp(g)[0]


_upsample_winograd_prepared.defvjp(_upsample_winograd_prepared_fwd, _upsample_winograd_prepared_bwd)


def _flip_transpose(k):
  """``[…, kh, kw, Cin, Cout]`` → the input gradient's kernel: flipped, channel axes swapped."""
  return jnp.swapaxes(jnp.flip(k, (-4, -3)), -1, -2)


def upsample_conv3x3(x, w):
  """``conv2d(upsample_nearest(x, 2), w, padding=1)`` computed at the low resolution."""
  k = phase_kernels(w)
  return _upsample_conv_phases(x, k, _flip_transpose(k))


_direct_prepared = _with_prepared_input_grad(_direct, lambda g, w_flip, x: _direct(g, w_flip))


def direct_conv3x3(x, w):
  """``conv2d(x, w, padding=1)`` by XLA's convolution, its input gradient a convolution with the
  flipped kernel made in the forward pass (the same bits as autodiff's; reverse mode only)."""
  return _direct_prepared(x, w, _flip_transpose(w))


def _upsample_direct(x, w):
  b, h, wd, c = x.shape
  up = jnp.broadcast_to(x[:, :, None, :, None], (b, h, 2, wd, 2, c)).reshape(b, 2 * h, 2 * wd, c)
  return _direct(up, w)


# Measured on a 2-core AVX-512 CPU (experiments/bench/results/cpu_2core_conv3x3.txt), forward +
# input gradient with the Winograd-domain kernels prepared: F(4×4, 3×3) beats XLA's direct
# convolution 1.7-2.3x for 512 → 512 channels on 8² … 32² maps, for 256 → 256 (64²) and 128 → 256
# (VGG's conv3 at 64²), ties it at 128 → 128 and loses below (the transforms move 2.25x the
# activations, the matmuls are too thin to hide it); on 4² maps (one tile) F(2×2, 3×3) is the
# faster form. The polyphase up-convolution is 1.7-2.1x faster than direct at every measured
# width; F(2×2, 2×2) inside its phases a further 1.1-1.3x for 512 → 512 channels (4² … 16² maps,
# batches 1-20) and 0.8-1.0x for 512 → 256 (32²). F(4×4, 2×2) phases (1.56 multiplies per output
# against 2.25; points {0, ±1, −½}, 5.3e-6 relative error) measured faster alone on many small
# maps (160 × 8², 512 → 512: 326 → 247 ms) but slower on few (1 × 16²: 10 → 19 ms); in the whole
# mGANprior step 2 % faster at batch 8 and 10 % slower at batch 1, so not taken.
WINOGRAD_MIN_CHANNELS = 128      # both channel counts at least this …
WINOGRAD_WIDE_CHANNELS = 256     # … and one at least this
WINOGRAD_PHASE_MIN_CHANNELS = 512
ENV_VAR = "JAXINV_CONV_IMPL"


def resolve(impl: str) -> str:
  """The implementation ``impl`` stands for: ``"auto"`` is ``$JAXINV_CONV_IMPL`` when set, else
  ``"fast"`` (polyphase up-convolutions, Winograd for wide layers: the measured choice) when JAX's
  default backend is the CPU and ``"direct"`` elsewhere (GPU/TPU convolution libraries already run
  near peak; not measured against these forms)."""
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


def winograd_tile(impl: str, spatial: tuple[int, int], cin: int, cout: int) -> int:
  """The Winograd output tile ``m`` a 3×3 convolution of ``spatial`` maps takes under ``impl``
  (0: not Winograd): ``"winograd"`` always, ``"fast"`` for the widths where it measured faster;
  4 on maps of at least 8 × 8, else 2."""
  impl = resolve(impl)
  wide = min(cin, cout) >= WINOGRAD_MIN_CHANNELS and max(cin, cout) >= WINOGRAD_WIDE_CHANNELS
  if impl == "winograd" or (impl == "fast" and wide):
    return 4 if min(spatial) >= 8 else 2
  return 0


def prepare(w, impl: str, spatial: tuple[int, int], upsample: bool = False,
            frozen: bool = False) -> dict:
  """What the convolution of ``spatial`` input maps by ``impl`` computes from the kernel ``w``
  alone, for :func:`apply_prepared`: ``{"kernel": w}`` (direct; with ``frozen``, a kernel fixed
  across calls such as a frozen generator's in an optimisation loop, also ``"kernel_flip"``, its
  input gradient's kernel, as :func:`direct_conv3x3` runs it), ``{"phases", "phases_flip"}``
  (polyphase up-convolution: the phase kernels and their input gradient's), ``{"phases_winograd"}``
  (the same with F(2×2, 2×2) in each phase: "winograd", and "fast" for wide layers) or ``{"winograd",
  "winograd_flip"}`` (the Winograd-domain kernel and its input gradient's)."""
  impl = resolve(impl)
  if upsample:
    if impl == "direct":
      return {"kernel": w}
    if impl == "winograd" or (impl == "fast" and min(w.shape[2:]) >= WINOGRAD_PHASE_MIN_CHANNELS):
      return {"phases_winograd": phase_winograd_kernels(w)}
    k = phase_kernels(w)
    return {"phases": k, "phases_flip": _flip_transpose(k)}
  m = winograd_tile(impl, spatial, *w.shape[2:])
  if not m:
    return {"kernel": w, "kernel_flip": _flip_transpose(w)} if frozen else {"kernel": w}
  u, u_flip = winograd_kernels(w, m)
  return {"winograd": u, "winograd_flip": u_flip}


def apply_prepared(x, prepared: dict, upsample: bool = False):
  """The convolution :func:`prepare` made ``prepared`` for (``upsample``: of the 2× nearest
  upsampled ``x``)."""
  if "winograd" in prepared:
    return _winograd_prepared(x, prepared["winograd"], prepared["winograd_flip"])
  if "phases_winograd" in prepared:
    return _upsample_winograd_prepared(x, prepared["phases_winograd"])
  if "phases" in prepared:
    return _upsample_conv_phases(x, prepared["phases"], prepared["phases_flip"])
  if "kernel_flip" in prepared:
    return _direct_prepared(x, prepared["kernel"], prepared["kernel_flip"])
  return (_upsample_direct if upsample else _direct)(x, prepared["kernel"])


def conv3x3(x, w, impl: str = "direct"):
  """``conv2d(x, w, padding=1)`` by ``impl`` (one of :data:`CONV_IMPLS`; see :func:`winograd_tile`)."""
  return apply_prepared(x, prepare(w, impl, x.shape[1:3]))


def upsample2_conv3x3(x, w, impl: str = "direct"):
  """``conv2d(upsample_nearest(x, 2), w, padding=1)`` by ``impl``: the polyphase form for
  ``"polyphase"``, ``"winograd"`` and ``"fast"``."""
  return apply_prepared(x, prepare(w, impl, x.shape[1:3], upsample=True), upsample=True)
