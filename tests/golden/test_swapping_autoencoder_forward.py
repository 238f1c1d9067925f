"""Swapping Autoencoder inference path vs the official code: preprocessing, codes, reconstruction,
swaps, texture interpolation (float and uint8), per-block intermediates, D logits (forward.npz,
intermediates.npz). Tolerance 1e-4 abs (the fixture README's guidance)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import swapping_autoencoder as sae
from jaxinv import swapping
from tests.conftest import assert_close
from tests.golden import sae_common as C

# README "Verification and tolerance guidance": the official code in float64 differs from its stored
# float32 arrays by <= 1.9e-6 (forward) and 3.0e-6 (intermediates) on O(1) activations; an independent
# float32 port (other conv algorithms, other summation order) costs 2-10x that, i.e. <= 3e-5, so
# ATOL = 1e-4 (the README's suggestion) keeps >= 3x over the worst independent-port figure.
ATOL = 1e-4


def _flat_intermediates(tree, prefix):
  out = {}
  for k, v in tree.items():
    if k == "__call__":
      out[prefix] = v[0]
    elif isinstance(v, dict):
      out.update(_flat_intermediates(v, f"{prefix}.{k}"))
  return out


@pytest.fixture(scope="module")
def run(golden):
  g = golden(C.FOLDER)
  _, res = C.converted(g)
  cfg, p = res.config, res.params
  x = jnp.asarray(C.images(g))
  noise = C.noise(g)
  alphas = g.expected["interp_alphas"]
  E, G, D = sae.Encoder(cfg), sae.Generator(cfg), sae.Discriminator(cfg)
  keep = lambda mdl, name: not isinstance(mdl, sae._Params)

  @jax.jit
  def forward(p, x):
    with jax.default_matmul_precision("highest"):
      (sp, gl), e_int = E.apply({"params": p["E"]}, x, capture_intermediates=keep,
                                mutable=["intermediates"])
      b = x.shape[0]
      t_int = swapping.interp_codes(gl[0], gl[1], alphas)
      sps = jnp.concatenate([sp, sp, jnp.repeat(sp[:1], len(alphas), 0)])
      gls = jnp.concatenate([gl, sae.swap_pairs(gl), t_int])
      out, g_int = G.apply({"params": p["G"]}, sps, gls, noise, capture_intermediates=keep,
                           mutable=["intermediates"])
      logits = D.apply({"params": p["D"]}, jnp.concatenate([x, out[:2 * b]]))
    return dict(sp=sp, gl=gl, t_int=t_int, out=out, logits=logits,
                e_int=e_int["intermediates"], g_int=g_int["intermediates"])

  r = jax.tree_util.tree_map(np.asarray, forward(p, x))
  b = x.shape[0]
  r["rec"], r["swap"], r["interp"] = r["out"][:b], r["out"][b:2 * b], r["out"][2 * b:]
  r["inter"] = {**_flat_intermediates(r.pop("e_int"), "E"), **_flat_intermediates(r.pop("g_int"), "G")}
  r["inter"]["E.ToGlobalCode.input"] = r["inter"]["E.DownToGlobalCode"].mean(axis=(1, 2))
  return g, r


def test_preprocessing(golden):
  g = golden(C.FOLDER)
  inp = g.npz("inputs.npz")
  u8 = inp["images_uint8"]
  np.testing.assert_array_equal((u8.astype(np.float32) / 127.5 - 1.0).astype(np.float32),
                                inp["images_float"])


def test_codes(run):
  g, r = run
  fw = g.npz("forward.npz")
  print("structure_code", assert_close(C.nchw(r["sp"]), fw["structure_code"], atol=ATOL,
                                       what="structure_code"))
  print("texture_code", assert_close(r["gl"], fw["texture_code"], atol=ATOL, what="texture_code"))


@pytest.mark.parametrize("name", ["rec", "swap", "interp"])
def test_images(run, name):
  g, r = run
  fw = g.npz("forward.npz")
  print(name, assert_close(C.nchw(r[name]), fw[name], atol=ATOL, what=name))


def test_interp_codes_and_uint8(run):
  g, r = run
  fw = g.npz("forward.npz")
  assert_close(r["t_int"], fw["interp_texture_code"], atol=ATOL, what="interp_texture_code")
  u8 = C.nchw(swapping.to_uint8(r["interp"])).astype(np.int32)
  diff = np.abs(u8 - fw["interp_uint8"].astype(np.int32))
  # Truncation to uint8 flips a level where the float lands within ~1e-6 of an integer.
  assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), int((diff > 0).sum()))


def test_d_logits(run):
  g, r = run
  fw = g.npz("forward.npz")
  b = r["sp"].shape[0]
  for i, name in enumerate(["d_logits_real", "d_logits_rec", "d_logits_swap"]):
    print(name, assert_close(r["logits"][i * b:(i + 1) * b], fw[name], atol=ATOL, what=name))


def test_intermediates(run):
  g, r = run
  it = g.npz("intermediates.npz")
  n = g.expected["n_intermediate_images"]
  worst = 0.0
  for name in g.expected["intermediate_modules"]:
    assert name in r["inter"], f"no intermediate for {name}"
    worst = max(worst, assert_close(C.nchw(r["inter"][name][:n]), it[name], atol=ATOL, what=name))
  print("intermediates max abs err", worst)
