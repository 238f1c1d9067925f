"""Multi-code inversion on the rosinality StyleGAN2 fixture model (jaxinv's own experiment).

Default run: the space's identities (N equal codes with α = 1 render the single-code
image; prefix/suffix shapes). ``-m slow``: the comparison: on a target
rendered from a held-out w+, multi-code at layer ℓ vs single w+ inversion at
equal steps (Adam, MSE), printing both final losses.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.converters import read_source, rosinality_stylegan2
from jaxinv.inversion import optimize as opt_lib
from jaxinv.inversion import style_spaces as S
from jaxinv.models import stylegan2
from tests.conftest import assert_close

# The comparison's settings (our experiment, not an official fixture).
HELD_OUT_SEED = 1234          # z of the held-out targets
ROW_NOISE_SEED = 99           # per-row perturbation making the target a true w+
NUM_TARGETS = 2
CODES = 4
LAYERS = (4, 7)               # composing units: x at 8×8 (after layer1) and 16×16 (after layer3)
STEPS = 300
LR = 0.05
VARIANTS = False              # True: also print the other variants (≈ 6 more runs)


@pytest.fixture(scope="module")
def gen(golden):
  g = golden("stylegan2_rosinality")
  conv = rosinality_stylegan2.convert(read_source(g.path(g.expected["checkpoint"]["file"])))
  return stylegan2.StyleGAN2Generator(conv.config), conv.params


def test_equal_codes_render_the_single_code_image(gen):
  m, p = gen
  cfg = m.config
  wp = S.init(S.StyleSpace("wp"), m, p, jax.random.key(0), 1)["wp"][0]
  wp = wp + 0.3 * jax.random.normal(jax.random.key(1), wp.shape)
  single = jax.jit(lambda v: S.render(S.StyleSpace("wp"), m, p, v))({"wp": wp})
  for layer in (2, 4, cfg.num_layers - 1):
    space = S.StyleSpace("multi", layer=layer, num_codes=3, code_space="wp")
    v = S.init(space, m, p, jax.random.key(2), 1)
    v = jax.tree_util.tree_map(lambda x: x[0], v)
    assert v["alpha"].shape == (3, cfg.feature_shapes()[layer][-1])
    v = {"codes": jnp.broadcast_to(wp, v["codes"].shape), "alpha": v["alpha"], "wp": wp}
    img = jax.jit(lambda v: S.render(space, m, p, v))(v)
    assert_close(img, single, atol=1e-4, what=f"multi at {layer} with equal codes")


def test_space_validation(gen):
  m, p = gen
  with pytest.raises(ValueError, match="space must be"):
    S.StyleSpace("q")
  with pytest.raises(stylegan2.LayerIndexError, match="receives"):
    S.init(S.StyleSpace("multi", layer=0, num_codes=2), m, p, jax.random.key(0), 1)


def _targets(m, p):
  z = jax.random.normal(jax.random.key(HELD_OUT_SEED), (NUM_TARGETS, m.config.z_dim))
  w = m.apply({"params": p}, z, method=m.mapping)
  noise = jax.random.normal(jax.random.key(ROW_NOISE_SEED), (NUM_TARGETS, m.config.num_ws, m.config.w_dim))
  wp = w[:, None] + 0.5 * jnp.std(w) * noise
  return jax.jit(lambda wp: m.apply({"params": p}, None, wp, method=m.synthesis))(wp)


def _invert(m, p, space, target):
  def loss_fn(v, d, shared):
    return jnp.mean(jnp.square(S.render(space, m, shared, v) - d["target"])), {}
  v0 = S.init(space, m, p, jax.random.key(0), target.shape[0])
  r = opt_lib.optimize(loss_fn, v0, {"target": target}, opt_lib.make_optimizer("adam", LR), STEPS,
                       shared=p, progress=False)
  return r.loss[-1]


@pytest.mark.slow
def test_multicode_beats_single_wplus(gen):
  m, p = gen
  target = _targets(m, p)
  single = _invert(m, p, S.StyleSpace("wp"), target)
  print(f"\nsingle w+ ({STEPS} Adam steps, lr {LR}): final MSE {single}")
  space = S.StyleSpace("multi", layer=LAYERS[0], num_codes=CODES, code_space="wp")
  best = _invert(m, p, space, target)
  print(f"multi ℓ={LAYERS[0]} N={CODES} w+ codes, learned w+ suffix: final MSE {best}")
  assert np.all(best < single), (best, single)
  if VARIANTS:
    for layer in LAYERS:
      for code_space, suffix in (("w", "learned"), ("wp", "learned"), ("wp", "mean")):
        space = S.StyleSpace("multi", layer=layer, num_codes=CODES, code_space=code_space,
                             suffix=suffix)
        print(f"multi ℓ={layer} N={CODES} codes in {code_space}, suffix {suffix}: final MSE "
              f"{_invert(m, p, space, target)}")
