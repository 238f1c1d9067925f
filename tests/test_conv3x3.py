"""The fast 3×3 convolutions (Winograd F(m×m, 3×3), polyphase up-convolution) against float64.

Bounds are the first-order worst-case float32 rounding bounds of each algorithm, evaluated per
output element from the magnitudes of what it sums (u = 2⁻²⁴, the unit roundoff; a sum of n
terms — a dot of length n — computed in any order errs by at most n·u·Σ|terms|, a product by
u·|product|):

* direct: 9·Cin products summed: (9·Cin)·u · conv(|x|, |w|).
* Winograd F(m, 3), α = m + 2: the input transform is a dot of length α² with ``Bᵀ ⊗ Bᵀ`` (≤ α²u),
  the kernel transform a dot of length 9 with ``G ⊗ G``, whose entries (thirds, fifteenths for
  m = 4) are themselves rounded once (≤ 10u); the product (u); the sum over Cin (≤ (Cin − 1)u);
  the output transform a dot of length α² with ``Aᵀ ⊗ Aᵀ`` (≤ α²u): in all (2α² + Cin + 10)·u
  times the same pipeline run on magnitudes, |Aᵀ|·[(|G| |w| |Gᵀ|) ⊙ (|Bᵀ| |d| |B|)]·|A| (which,
  unlike the direct bound, is not conv(|x|, |w|): the transforms' cancellations are where
  Winograd loses accuracy). The kernel gradient (through the Winograd-domain kernel) is bounded
  the same way: ``Gᵀ ⊗ Gᵀ`` (≤ 17u) of the sum over the P tile positions (≤ Pu) of the transformed
  input (≤ α²u) times the transposed output transform of the cotangent (≤ m²u).
* polyphase: each phase kernel tap sums ≤ 4 taps of w (≤ 3u), then 4·Cin products summed
  (≤ 4·Cin·u): (4·Cin + 3)·u · conv(upsample(|x|), |w|).

Second-order terms (u²·n²) are below 1e-9 relative at these sizes; the tests allow 1 % on top.
A wrong transform or tile permutation errs by O(1) relative, far outside these bounds. The
measured errors (printed) sit 1-2 orders of magnitude below the worst case, as random rounding does.
"""


import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import pggan
from jaxinv.ops import conv3x3 as C

U = 2.0 ** -24          # float32 unit roundoff
SECOND_ORDER = 1.01     # headroom for the u² terms of the first-order bound (see the docstring)
TILES = sorted(C.WINOGRAD_POINTS)


def conv_f64(x, w):
  """Reference ``conv2d(x, w, padding=1)`` in float64 numpy (NHWC, HWIO)."""
  b, h, wd, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(np.tensordot(xp[:, a:a + h, c:c + wd], w[a, c], axes=(3, 0))
             for a in range(3) for c in range(3))


def upsample_f64(x):
  return x.repeat(2, axis=1).repeat(2, axis=2)


def _tiles_f64(x, m):
  """``[B, th, tw, α, α, C]``: the (m+2)² input tiles of the padding-1 map ``x``."""
  b, h, wd, _ = x.shape
  th, tw = -(-h // m), -(-wd // m)
  xp = np.pad(x, ((0, 0), (1, m * th + 1 - h), (1, m * tw + 1 - wd), (0, 0)))
  idx_h = m * np.arange(th)[:, None] + np.arange(m + 2)
  idx_w = m * np.arange(tw)[:, None] + np.arange(m + 2)
  return xp[:, idx_h][:, :, :, idx_w].transpose(0, 1, 3, 2, 4, 5)


def _input_tiles_magnitude(x, m):
  """``|Bᵀ| |d| |B|`` of every input tile of |x|: ``[B, th, tw, α, α, C]``."""
  b_t = np.abs(C.winograd_matrices(m)[2])
  return np.einsum("ia,jb,zpqabc->zpqijc", b_t, b_t, _tiles_f64(np.abs(x), m))


def winograd_magnitude(x, w, m):
  """The Winograd pipeline run on |x|, |w| with |transform matrices| (float64): per output the
  magnitude its rounding errors scale with."""
  a_t, g, _ = (np.abs(a) for a in C.winograd_matrices(m))
  b, h, wd, _ = x.shape
  v = _input_tiles_magnitude(x, m)
  u = np.einsum("ia,jb,abco->ijco", g, g, np.abs(w))
  mm = np.einsum("zpqijc,ijco->zpqijo", v, u)
  y = np.einsum("ri,sj,zpqijo->zprqso", a_t, a_t, mm)
  return y.reshape(b, m * y.shape[1], m * y.shape[3], -1)[:, :h, :wd]


def winograd_kernel_grad_magnitude(x, g, m):
  """The kernel-gradient pipeline on magnitudes: ``|G|ᵀ ⊗ |G|ᵀ`` of Σ_tiles |Bᵀ d B| ⊗ |A g Aᵀ|."""
  a_t, gm, _ = (np.abs(a) for a in C.winograd_matrices(m))
  b, h, wd, _ = g.shape
  th, tw = -(-h // m), -(-wd // m)
  gp = np.pad(np.abs(g), ((0, 0), (0, m * th - h), (0, m * tw - wd), (0, 0)))
  gt = gp.reshape(b, th, m, tw, m, -1)
  v = _input_tiles_magnitude(x, m)
  dm = np.einsum("ri,sj,zprqso->zpqijo", a_t, a_t, gt)
  du = np.einsum("zpqijc,zpqijo->ijco", v, dm)
  return np.einsum("ia,jb,ijco->abco", gm, gm, du), b * th * tw


def _fwd_and_input_grad(f, x, w, g):
  y, vjp = jax.vjp(lambda x: f(x, w), x)
  return np.asarray(y, np.float64), np.asarray(vjp(g)[0], np.float64)


def _data(shape_x, cin, cout, out_hw, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape_x)
  w = rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)
  g = rng.standard_normal((shape_x[0],) + out_hw + (cout,))
  return x, w, g


def _batched(f, mode):
  """``f(x, w)`` run as a loop runs it under ``jax.vmap``: ``"images"`` maps over the samples
  (one each), ``"codes"`` maps over one image holding all samples, ``"kernels"`` maps over
  samples and per-sample copies of the kernel (the plain-vmap fallback)."""
  if mode == "images":
    return lambda x, w: jax.vmap(f, in_axes=(0, None))(x[:, None], w)[:, 0]
  if mode == "codes":
    return lambda x, w: jax.vmap(f, in_axes=(0, None))(x[None], w)[0]
  if mode == "kernels":
    return lambda x, w: jax.vmap(f)(x[:, None], jnp.broadcast_to(w, x.shape[:1] + w.shape))[:, 0]
  return f


def _check_winograd(shape, tile, f):
  b, h, wd, cin, cout = shape
  alpha = tile + 2
  x, w, g = _data((b, h, wd, cin), cin, cout, (h, wd))
  y, dx = _fwd_and_input_grad(f, *(jnp.asarray(a, jnp.float32) for a in (x, w, g)))
  w_t = np.swapaxes(w[::-1, ::-1], 2, 3)          # the input gradient's kernel
  for what, got, ref, mag, n in (("output", y, conv_f64(x, w), winograd_magnitude(x, w, tile), cin),
                                 ("input grad", dx, conv_f64(g, w_t), winograd_magnitude(g, w_t, tile),
                                  cout)):
    bound = SECOND_ORDER * (2 * alpha ** 2 + n + 10) * U * mag
    err = np.abs(got - ref)
    print(f"winograd F({tile}) {shape} {what}: max err / bound {np.max(err / bound):.3g}, "
          f"max err / max |ref| {err.max() / np.abs(ref).max():.2e}")
    assert np.all(err <= bound), f"{what}: error above the float32 bound by {np.max(err / bound):.3g}x"


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("shape", [(2, 8, 8, 64, 48), (1, 7, 5, 24, 40), (3, 4, 4, 512, 32)],
                         ids=str)
def test_winograd_within_float32_rounding_bound(shape, tile):
  _check_winograd(shape, tile, lambda x, w: C.winograd_conv3x3(x, w, tile))


@pytest.mark.parametrize("mode", ["images", "codes", "kernels"])
@pytest.mark.parametrize("tile", TILES)
def test_winograd_under_vmap_within_float32_rounding_bound(tile, mode):
  """Under ``vmap`` the samples of all images run as one merged batch (kernels shared) or by
  plain vmap (per-image kernels): the same bound, so a wrong merge (samples misplaced) fails."""
  _check_winograd((3, 8, 6, 24, 40), tile,
                  _batched(lambda x, w: C.winograd_conv3x3(x, w, tile), mode))


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


@pytest.mark.parametrize("shape,mode", [((2, 6, 7, 40, 24), "plain"), ((1, 4, 4, 16, 8), "plain"),
                                        ((2, 6, 7, 40, 24), "images"), ((2, 6, 7, 40, 24), "codes"),
                                        ((2, 6, 7, 40, 24), "kernels")], ids=str)
def test_phase_winograd_within_float32_rounding_bound(shape, mode, monkeypatch):
  """F(2×2, 2×2) inside the polyphase up-convolution. Forward: the 16-term input transform
  (≤ 16u), phase taps (≤ 3u) and the 4-term kernel transform (≤ 4u), the product (u), the sum over
  Cin, the 9-term output transform (≤ 9u): (Cin + 33)·u. Input gradient (the transpose of the
  same dots and slices): the 4-term transposed output transform, the sum over Cout, the kernel
  (≤ 7u), the product, the 25-term transposed input transform and two scatter-adds of ≤ 4 terms
  (≤ 6u): (Cout + 43)·u. Each times the same computation run on magnitudes (every matrix, kernel,
  input and cotangent replaced by its absolute value)."""
  b, h, wd, cin, cout = shape
  x, w, g = _data((b, h, wd, cin), cin, cout, (2 * h, 2 * wd))
  y, dx = _fwd_and_input_grad(_batched(lambda x, w: C.upsample2_conv3x3(x, w, "winograd"), mode),
                              *(jnp.asarray(a, jnp.float32) for a in (x, w, g)))
  ref_y = conv_f64(upsample_f64(x), w)
  w_t = np.swapaxes(w[::-1, ::-1], 2, 3)
  ref_dx = conv_f64(g, w_t).reshape(b, h, 2, wd, 2, cin).sum(axis=(2, 4))
  matrices = C.winograd_matrices
  monkeypatch.setattr(C, "winograd_matrices", lambda m, r=3: tuple(np.abs(a) for a in matrices(m, r)))
  monkeypatch.setattr(C, "_PHASE_ROWS", np.abs(C._PHASE_ROWS))
  u_mag = C.phase_winograd_kernels(jnp.asarray(np.abs(w), jnp.float32))
  mag_y, vjp = jax.vjp(lambda x: C._upsample_conv_winograd(x, u_mag), jnp.asarray(np.abs(x), jnp.float32))
  mag_dx = vjp(jnp.asarray(np.abs(g), jnp.float32))[0]
  for what, got, ref, bound in (("output", y, ref_y, (cin + 33) * U * np.asarray(mag_y, np.float64)),
                                ("input grad", dx, ref_dx, (cout + 43) * U * np.asarray(mag_dx, np.float64))):
    err = np.abs(got - ref)
    bound = SECOND_ORDER * bound
    print(f"phase winograd {shape} {what}: max err / bound {np.max(err / bound):.3g}, "
          f"max err / max |ref| {err.max() / np.abs(ref).max():.2e}")
    assert np.all(err <= bound), f"{what}: error above the float32 bound by {np.max(err / bound):.3g}x"


@pytest.mark.parametrize("tile", TILES)
def test_winograd_kernel_gradient_within_float32_rounding_bound(tile):
  """The gradient with respect to the kernel, through the Winograd-domain kernel and its
  transform (what a loop that trains the kernel would see), against float64."""
  x, w, g = _data((2, 6, 7, 16), 16, 8, (6, 7))
  loss = lambda w: jnp.vdot(C.winograd_conv3x3(jnp.asarray(x, jnp.float32), w, tile),
                            jnp.asarray(g, jnp.float32))
  got = np.asarray(jax.grad(loss)(jnp.asarray(w, jnp.float32)), np.float64)
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  ref = np.stack([np.stack([np.einsum("zhwc,zhwo->co", xp[:, a:a + 6, c:c + 7], g)
                            for c in range(3)]) for a in range(3)])
  mag, positions = winograd_kernel_grad_magnitude(x, g, tile)
  alpha = tile + 2
  bound = SECOND_ORDER * (alpha ** 2 + tile ** 2 + positions + 17) * U * mag
  err = np.abs(got - ref)
  print(f"winograd F({tile}) kernel grad: max err / bound {np.max(err / bound):.3g}")
  assert np.all(err <= bound), f"kernel gradient above the float32 bound by {np.max(err / bound):.3g}x"


def test_prepared_kernels_give_the_inline_bits():
  """``apply_prepared(prepare(w))`` outside the step (what a loop over a frozen generator runs)
  and ``conv3x3`` inside it compute the same function the same way: equal bits."""
  x, w, _ = (jnp.asarray(a, jnp.float32) for a in _data((2, 8, 8, 256), 256, 256, (8, 8)))
  for up, impl, kind in ((False, "fast", {"winograd", "winograd_flip"}),
                         (True, "fast", {"phases", "phases_flip"}),
                         (True, "winograd", {"phases_winograd"})):
    inline = jax.jit(lambda x, w: (C.upsample2_conv3x3 if up else C.conv3x3)(x, w, impl))(x, w)
    prepared = jax.jit(lambda w: C.prepare(w, impl, x.shape[1:3], upsample=up))(w)
    assert set(prepared) == kind
    got = jax.jit(lambda x, p: C.apply_prepared(x, p, upsample=up))(x, prepared)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(inline))


def test_winograd_tile_choice():
  assert C.winograd_tile("fast", (16, 16), 512, 512) == 4
  assert C.winograd_tile("fast", (4, 4), 512, 512) == 2
  assert C.winograd_tile("fast", (64, 64), 128, 256) == 4
  assert C.winograd_tile("fast", (64, 64), 128, 128) == 0
  assert C.winograd_tile("fast", (64, 64), 64, 512) == 0
  assert C.winograd_tile("winograd", (64, 64), 3, 8) == 4
  assert C.winograd_tile("direct", (16, 16), 512, 512) == 0


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

    @jax.jit
    def image_and_feature_grad(params, z):
      f = gen.apply(params, z, 0, 3)
      img, vjp = jax.vjp(lambda f: gen.apply(params, f, 3, None), f)
      return img, vjp(jnp.ones_like(img))[0]
    outs[ci] = tuple(np.asarray(a) for a in image_and_feature_grad(params, z))
  for a, b in zip(outs["direct"], outs[impl]):
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(a).max())


def test_pggan_prepared_variables_give_the_inline_bits():
  """A PGGAN wide enough for every prepared form (dense; Winograd F(2) at 4², F(4) above; the
  up-convolutions polyphase, with F(2×2, 2×2) phases at 512 → 512): images and z-gradients from
  ``prepare_variables`` equal the inline ones bit for bit."""
  cfg = pggan.PGGANConfig(resolution=16, z_dim=32, fmaps_base=4096, fmaps_max=512, conv_impl="fast")
  gen = pggan.PGGANGenerator(cfg)
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 32))
  params = gen.init(jax.random.PRNGKey(0), z)["params"]
  prepared = pggan.prepare_variables(gen, params)
  kinds = {name: set(v["conv"]) for name, v in prepared[pggan.PREPARED].items()}
  wino = {"winograd", "winograd_flip"}
  assert kinds == {"layer0": {"dense"}, "layer1": wino, "layer2": {"phases_winograd"},
                   "layer3": wino, "layer4": {"phases", "phases_flip"}, "layer5": wino}
  assert prepared[pggan.PREPARED]["layer3"]["conv"]["winograd"].shape[0] == 36     # F(4×4, 3×3)
  run = jax.jit(lambda v, z: jax.value_and_grad(lambda z: jnp.sum(gen.apply(v, z) ** 2))(z))
  for a, b in zip(run({"params": params}, z), run(prepared, z)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("shape, cout", [((2, 5, 7, 16), 8), ((2, 8, 8, 64), 128), ((1, 16, 16, 3), 64)])
def test_direct_with_flipped_kernel(shape, cout):
  """``direct_conv3x3`` runs the input gradient on a kernel flipped in the same program instead of
  autodiff's reversed, axis-swapped read of it: the same convolution, so the output and both
  gradients equal autodiff's bit for bit. The frozen direct form (``prepare(..., frozen=True)``)
  takes that kernel from outside the program, where XLA may pick another convolution algorithm:
  its input gradient is held to the direct bound (9·Cout·u · conv(|g|, |w_flip|), per result,
  doubled for the difference of two), its output and kernel gradient to equal bits."""
  x64, w64, g64 = _data(shape, shape[-1], cout, shape[1:3])
  x, w, g = (jnp.asarray(a, jnp.float32) for a in (x64, w64, g64))

  def value_and_grads(conv):
    return [np.asarray(a, np.float64) for a in
            jax.jit(lambda x, w: (lambda y, vjp: (y,) + vjp(g))(*jax.vjp(conv, x, w)))(x, w)]
  autodiff = value_and_grads(C._direct)
  for a, b in zip(autodiff, value_and_grads(C.direct_conv3x3)):
    np.testing.assert_array_equal(a, b)
  frozen = jax.jit(lambda w: C.prepare(w, "direct", shape[1:3], frozen=True))(w)
  assert set(frozen) == {"kernel", "kernel_flip"} and set(C.prepare(w, "direct", shape[1:3])) == {"kernel"}
  y, dx, dw = value_and_grads(lambda x, w: C.apply_prepared(x, {**frozen, "kernel": w}))
  np.testing.assert_array_equal(y, autodiff[0])
  np.testing.assert_array_equal(dw, autodiff[2])
  bound = 2 * SECOND_ORDER * 9 * cout * U * conv_f64(np.abs(g64), np.abs(np.swapaxes(w64[::-1, ::-1], 2, 3)))
  err = np.abs(dx - autodiff[1])
  print(f"frozen direct {shape}: input grad max diff / bound {np.max(err / bound):.3g}")
  assert np.all(err <= bound), f"input gradient off by {np.max(err / bound):.3g}x the bound"


def test_scan_body_convolutions_read_kernels_unswapped():
  """Inside a ``lax.scan`` chunk of the loop (where the kernels arrive through the loop state),
  every convolution of a VGG16 perceptual loss and of a frozen narrow PGGAN's direct and polyphase
  layers — the input gradients included — reads its kernel as ``01io``. Autodiff's transpose reads
  a reversed kernel as ``01oi`` there (checked: VGG on plain convolutions fails this test), which
  XLA:CPU runs on a slower convolution path (optimize's notes)."""
  import optax
  from jaxinv.inversion import optimize as opt_lib
  from jaxinv.models import vgg as vgg_lib
  gen = pggan.PGGANGenerator(pggan.PGGANConfig(resolution=8, z_dim=16, fmaps_base=64, fmaps_max=16,
                                               conv_impl="fast"))
  gparams = pggan.prepare_variables(gen, gen.init(jax.random.PRNGKey(0), jnp.zeros((1, 16)))["params"])
  vgg = vgg_lib.VGG16Features(9)
  vparams = vgg.init(jax.random.PRNGKey(1), jnp.zeros((1, 8, 8, 3)))["params"]

  def loss_fn(v, data, shared):
    img = gen.apply(shared["g"], v["z"][None])
    return jnp.mean(vgg.apply({"params": shared["vgg"]}, img) ** 2), {}
  opt = optax.sgd(0.1)
  state = opt_lib.init_state({"z": jnp.ones((2, 16))}, opt)
  chunk = opt_lib._cached_chunk(loss_fn, opt, None, False, 2)
  hlo = chunk.lower(state, {"x": jnp.zeros((2, 1))}, {"g": gparams, "vgg": vparams}).compile().as_text()
  labels = re.findall(r" convolution\([^\n]*dim_labels=\w+_(\w+)->", hlo)
  assert len(labels) >= 2 * 5, f"expected the forward and input-gradient convolutions, found {labels}"
  assert set(labels) == {"01io"}, f"kernel layouts in the scan body: {sorted(set(labels))}"
