"""``layers.conv2d``'s 1×1 path (a dot over channels, not a convolution) against float64.

Bound: an output sums Cin products, computed in any order within Cin·u·Σ|terms| (u = 2⁻²⁴, the
float32 unit roundoff; a product rounds once more, inside that); the input gradient sums Cout
products, the kernel gradient B·H·W of them. Second-order terms are far below the 1 % headroom.
A wrong contraction axis or a transposed kernel errs by O(1) relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import layers as L

U = 2.0 ** -24
HEADROOM = 1.01


@pytest.mark.parametrize("shape, cout", [((2, 5, 7, 16), 3), ((1, 8, 8, 256), 3), ((3, 4, 4, 8), 32)])
def test_1x1_conv_is_a_dot_within_float32_rounding_bound(shape, cout):
  rng = np.random.default_rng(0)
  x = rng.standard_normal(shape)
  w = rng.standard_normal((1, 1, shape[-1], cout)) / np.sqrt(shape[-1])
  g = rng.standard_normal(shape[:3] + (cout,))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  hlo = jax.jit(lambda x, w: L.conv2d(x, w)).lower(f32(x), f32(w)).as_text()
  assert "dot_general" in hlo and "convolution" not in hlo
  y, vjp = jax.vjp(lambda x, w: L.conv2d(x, w), f32(x), f32(w))
  dx, dw = vjp(f32(g))
  k = w[0, 0]
  checks = (("output", y, np.einsum("bhwc,co->bhwo", x, k), np.einsum("bhwc,co->bhwo", abs(x), abs(k)),
             shape[-1]),
            ("input grad", dx, np.einsum("bhwo,co->bhwc", g, k),
             np.einsum("bhwo,co->bhwc", abs(g), abs(k)), cout),
            ("kernel grad", dw[0, 0], np.einsum("bhwc,bhwo->co", x, g),
             np.einsum("bhwc,bhwo->co", abs(x), abs(g)), int(np.prod(shape[:3]))))
  for what, got, ref, mag, n in checks:
    err = np.abs(np.asarray(got, np.float64) - ref)
    bound = HEADROOM * n * U * mag
    assert np.all(err <= bound), f"{what}: error above the float32 bound by {np.max(err / bound):.3g}x"
