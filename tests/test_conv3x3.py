"""The fast 3×3 convolutions (Winograd F(2×2, 3×3), polyphase up-convolution) against float64.

Bounds are the first-order worst-case float32 rounding bounds of each algorithm, evaluated per
output element from the magnitudes of what it sums (u = 2⁻²⁴, the unit roundoff; a sum of n terms
computed in any order errs by at most (n − 1)·u·Σ|terms|, a product by u·|product|; products with
the transform coefficients 0, ±1, ±½, ±¼ are exact):

* direct: 9·Cin products summed: (9·Cin)·u · conv(|x|, |w|).
* Winograd: Bᵀ d B sums 4 input samples with coefficients ±1 (2 adds, one per axis pass, ≤ 2u);
  G w Gᵀ is a dot over the 9 taps (≤ 9u); the product (u); the sum over Cin (≤ (Cin − 1)u); Aᵀ m A
  sums 3 terms per axis (≤ 4u): in all (Cin + 15)·u times the same pipeline run on magnitudes,
  |Aᵀ|·[(|G| |w| |Gᵀ|) ⊙ (|Bᵀ| |d| |B|)]·|A| (which, unlike the direct bound, is not
  conv(|x|, |w|): the transforms' cancellations are where Winograd loses accuracy).
* polyphase: each phase kernel tap sums ≤ 4 taps of w (≤ 3u), then 4·Cin products summed
  (≤ 4·Cin·u): (4·Cin + 3)·u · conv(upsample(|x|), |w|).

Second-order terms (u²·n²) are below 1e-9 relative at these sizes; the tests allow 1 % on top.
A wrong transform or tile permutation errs by O(1) relative, far outside these bounds. The
measured errors (printed) sit 1-2 orders of magnitude below the worst case, as random rounding does.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import layers as L
from jaxinv.models import pggan
from jaxinv.ops import conv3x3 as C

U = 2.0 ** -24          # float32 unit roundoff
SECOND_ORDER = 1.01     # headroom for the u² terms of the first-order bound (see the docstring)

_G = np.abs(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]]))
_BT = np.abs(np.array([[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0],
                       [0.0, 1.0, 0.0, -1.0]]))
_AT = np.abs(np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]]))


def conv_f64(x, w):
  """Reference ``conv2d(x, w, padding=1)`` in float64 numpy (NHWC, HWIO)."""
  b, h, wd, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(np.tensordot(xp[:, a:a + h, c:c + wd], w[a, c], axes=(3, 0))
             for a in range(3) for c in range(3))


def upsample_f64(x):
  return x.repeat(2, axis=1).repeat(2, axis=2)


def winograd_magnitude(x, w):
  """The Winograd pipeline run on |x|, |w| with |transform matrices| (float64): per output the
  magnitude its rounding errors scale with."""
  x, w = np.abs(x), np.abs(w)
  b, h, wd, cin = x.shape
  th, tw = (h + 1) // 2, (wd + 1) // 2
  xp = np.pad(x, ((0, 0), (1, 1 + 2 * th - h), (1, 1 + 2 * tw - wd), (0, 0)))
  idx_h = 2 * np.arange(th)[:, None] + np.arange(4)          # [th, 4] rows of each tile
  idx_w = 2 * np.arange(tw)[:, None] + np.arange(4)
  d = xp[:, idx_h][:, :, :, idx_w]                            # [B, th, 4, tw, 4, C]
  v = np.einsum("ia,jb,zpaqbc->zpqijc", _BT, _BT, d)
  u = np.einsum("ia,jb,abco->ijco", _G, _G, w)
  m = np.einsum("zpqijc,ijco->zpqijo", v, u)
  y = np.einsum("ri,sj,zpqijo->zprqso", _AT, _AT, m)
  return y.reshape(b, 2 * th, 2 * tw, -1)[:, :h, :wd]


def _fwd_and_input_grad(f, x, w, g):
  y, vjp = jax.vjp(lambda x: f(x, w), x)
  return np.asarray(y, np.float64), np.asarray(vjp(g)[0], np.float64)


def _data(shape_x, cin, cout, out_hw, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape_x)
  w = rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)
  g = rng.standard_normal((shape_x[0],) + out_hw + (cout,))
  return x, w, g


@pytest.mark.parametrize("shape", [(2, 8, 8, 64, 48), (1, 7, 5, 24, 40), (3, 4, 4, 512, 32)],
                         ids=str)
def test_winograd_within_float32_rounding_bound(shape):
  b, h, wd, cin, cout = shape
  x, w, g = _data((b, h, wd, cin), cin, cout, (h, wd))
  y, dx = _fwd_and_input_grad(C.winograd_conv3x3, *(jnp.asarray(a, jnp.float32) for a in (x, w, g)))
  w_t = np.swapaxes(w[::-1, ::-1], 2, 3)          # the input gradient's kernel
  for what, got, ref, mag, n in (("output", y, conv_f64(x, w), winograd_magnitude(x, w), cin),
                                 ("input grad", dx, conv_f64(g, w_t), winograd_magnitude(g, w_t),
                                  cout)):
    bound = SECOND_ORDER * (n + 15) * U * mag
    err = np.abs(got - ref)
    print(f"winograd {shape} {what}: max err / bound {np.max(err / bound):.3g}, "
          f"max err / max |ref| {err.max() / np.abs(ref).max():.2e}")
    assert np.all(err <= bound), f"{what}: error above the float32 bound by {np.max(err / bound):.3g}x"


@pytest.mark.parametrize("shape", [(2, 8, 8, 64, 48), (1, 5, 7, 24, 40)], ids=str)
def test_polyphase_within_float32_rounding_bound(shape):
  b, h, wd, cin, cout = shape
  x, w, g = _data((b, h, wd, cin), cin, cout, (2 * h, 2 * wd))
  y, dx = _fwd_and_input_grad(C.upsample_conv3x3, *(jnp.asarray(a, jnp.float32) for a in (x, w, g)))
  ref_y = conv_f64(upsample_f64(x), w)
  bound_y = SECOND_ORDER * (4 * cin + 3) * U * conv_f64(upsample_f64(np.abs(x)), np.abs(w))
  # The input gradient sums, per low-res pixel, the 2×2 block of the full-resolution gradient:
  # 4 phases × 4 taps × Cout products of the cotangent and summed kernel taps.
  w_t = np.swapaxes(w[::-1, ::-1], 2, 3)
  full = conv_f64(g, w_t)
  ref_dx = full.reshape(b, h, 2, wd, 2, cin).sum(axis=(2, 4))
  mag = conv_f64(np.abs(g), np.abs(w_t)).reshape(b, h, 2, wd, 2, cin).sum(axis=(2, 4))
  bound_dx = SECOND_ORDER * (16 * cout + 3) * U * mag
  for what, got, ref, bound in (("output", y, ref_y, bound_y), ("input grad", dx, ref_dx, bound_dx)):
    err = np.abs(got - ref)
    print(f"polyphase {shape} {what}: max err / bound {np.max(err / bound):.3g}, "
          f"max err / max |ref| {err.max() / np.abs(ref).max():.2e}")
    assert np.all(err <= bound), f"{what}: error above the float32 bound by {np.max(err / bound):.3g}x"


def test_winograd_kernel_gradient_is_the_direct_one():
  x, w, g = (jnp.asarray(a, jnp.float32) for a in _data((2, 6, 6, 16), 16, 8, (6, 6)))
  loss = lambda f: lambda w: jnp.vdot(f(x, w), g)
  got = jax.grad(loss(C.winograd_conv3x3))(w)
  want = jax.grad(loss(lambda x, w: L.conv2d(x, w, padding=1)))(w)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_resolve_auto_per_backend_and_env(monkeypatch):
  monkeypatch.delenv(C.ENV_VAR, raising=False)
  assert C.resolve("auto") == "fast"              # the tests run on the CPU backend
  monkeypatch.setattr(C.jax, "default_backend", lambda: "gpu")
  assert C.resolve("auto") == "direct"
  monkeypatch.setenv(C.ENV_VAR, "winograd")
  assert C.resolve("auto") == "winograd"
  assert C.resolve("direct") == "direct"
  monkeypatch.setenv(C.ENV_VAR, "fastest")
  with pytest.raises(ValueError, match=C.ENV_VAR):
    C.resolve("auto")
  with pytest.raises(ValueError, match="conv_impl"):
    pggan.PGGANConfig(resolution=8, conv_impl="fastest")


@pytest.mark.parametrize("impl", ["polyphase", "winograd", "fast"])
def test_pggan_conv_impl_matches_direct(impl):
  """A small PGGAN: the image and the gradient w.r.t. the composed features agree with the
  direct path to float32 noise (bound as the golden tests': GEN_ATOL = 1e-4)."""
  outs = {}
  for ci in ("direct", impl):
    cfg = pggan.PGGANConfig(resolution=16, z_dim=32, fmaps_base=256, fmaps_max=32, conv_impl=ci)
    gen = pggan.PGGANGenerator(cfg)
    z = jax.random.normal(jax.random.PRNGKey(1), (2, 32))
    params = gen.init(jax.random.PRNGKey(0), z)
    f = gen.apply(params, z, 0, 3)
    img, vjp = jax.vjp(lambda f: gen.apply(params, f, 3, None), f)
    outs[ci] = (np.asarray(img), np.asarray(vjp(jnp.ones_like(img))[0]))
  for a, b in zip(outs["direct"], outs[impl]):
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(a).max())
