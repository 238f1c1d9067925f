"""Unit tests of the PadInv method's pure pieces (no fixtures, tiny shapes)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion.methods import padinv as M
from jaxinv.models import irse, padinv as P


def test_wnorm_is_frobenius_not_squared():
  wp = jnp.ones((2, 3, 4)) * jnp.array([1.0, 2.0])[:, None, None]
  np.testing.assert_allclose(M.wnorm(wp, jnp.zeros(4)), [np.sqrt(12.0), np.sqrt(48.0)], rtol=1e-6)


def test_pool_to_is_adaptive_avg_pool_for_integer_factors():
  x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
  y = M._pool_to(x, 2)
  np.testing.assert_allclose(y[0, 0, 0, 0], np.mean([0, 1, 4, 5]))
  assert M._pool_to(x, 4) is x


def test_resize_nearest_matches_torch_rule():
  x = jnp.arange(4, dtype=jnp.float32).reshape(1, 1, 4, 1)
  y = M.resize_nearest(jnp.tile(x, (1, 4, 1, 1)), (4, 6))
  # torch nearest: src = floor(dst * in / out) = floor(dst * 4 / 6)
  np.testing.assert_array_equal(np.asarray(y)[0, 0, :, 0], [0, 0, 1, 2, 2, 3])


def test_edit_keep_maps_moves_only_chosen_rows():
  wp = jnp.zeros((2, 5, 3))
  maps = {0: jnp.ones((2, 6, 6, 3))}
  wp2, maps2 = M.edit_keep_maps(wp, maps, jnp.array([1.0, 0.0, 0.0]), jnp.array([1.0, -2.0]),
                                rows=[1, 3])
  assert maps2 is maps
  np.testing.assert_array_equal(np.asarray(wp2)[:, :, 0], [[0, 1, 0, 1, 0], [0, -2, 0, -2, 0]])


def test_swap_maps_checks_pairing():
  with pytest.raises(ValueError):
    M.swap_maps(jnp.zeros((2, 3, 4)), {0: jnp.zeros((3, 6, 6, 4))})


def test_settings_refuse_unknown_space():
  with pytest.raises(ValueError, match="space"):
    M.PadInvSettings(space="z")


def test_slots_of_a_1024_generator():
  c = P.PadInvGeneratorConfig()          # FFHQ 1024: 512 channels up to 64 px
  shapes = c.slot_shapes()
  assert c.num_ws == 18 and shapes[0] == (4, 512) and shapes[7] == (32, 512)
  assert P.padded_slots(4) == (0, 1, 3, 5, 7)
  assert irse.PadInvEncoderConfig().slots == (0, 1, 3, 5, 7)
  assert irse.PadInvEncoderConfig().map_size == 34
  with pytest.raises(ValueError):
    irse.PadInvEncoderConfig(pad_layer_num=6)
