"""PadInv loss pieces vs the official GANInversionLoss.E_loss / D_loss (fixture folder ``padinv``)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.inversion.methods import padinv as M
from jaxinv.models import irse, padinv as P, padinv_discriminator as PD
from tests.conftest import assert_close
from tests.golden.padinv_common import (ATOL, FOLDER, RTOL, image_atol, load, load_discriminator,
                                        lpips_alex, nchw, nhwc)


@pytest.fixture(scope="module")
def pieces(golden):
  g = golden(FOLDER)
  cfg, gen, enc = load(g)
  encoder = irse.PadInvEncoder(enc.config)
  generator = P.PadInvGenerator(gen.config)
  lp, lp_params = lpips_alex(g)
  dis = load_discriminator(g)
  d_module = PD.PadInvDiscriminator(dis.config)
  d_fn = lambda img: d_module.apply({"params": dis.params}, img)  # noqa: E731
  r1_gamma = cfg["d_loss_kwargs"]["r1_gamma"]
  f = g.npz("fixtures.npz")
  x = jnp.asarray(nhwc(f["enc.image"]))

  @functools.partial(jax.jit, static_argnums=1)
  def run(x, train_bn):
    out = encoder.apply({"params": enc.params}, x, train_bn)
    fake = generator.apply({"params": gen.params}, out["wp"], out["maps"], method="synthesis")
    fake_logits = d_fn(fake)
    return {"mse": M.mse(fake, x), "lpips": lp(lp_params, x, fake),
            "wnorm": M.wnorm(out["wp"], enc.params["avg_latent"]), "fake": fake,
            "adv": M.adv(fake_logits), "scores_fake": fake_logits, "scores_real": d_fn(x),
            "D": M.d_loss_pieces(d_fn, x, fake, r1_gamma)}

  res = {mode: jax.tree_util.tree_map(np.asarray, run(x, mode == "train_bn"))
         for mode in ("eval_bn", "train_bn")}
  return dict(g=g, cfg=cfg, res=res, f=f)


@pytest.mark.parametrize("mode", ["eval_bn", "train_bn"])
def test_pieces(pieces, mode):
  sc = pieces["g"].expected["scalars"]
  r = pieces["res"][mode]
  for k in ("mse", "lpips", "wnorm", "adv"):
    assert_close(np.mean(r[k]), sc[f"loss.{mode}.E.{k}"], rtol=RTOL, what=f"{mode} E.{k}")
  f = pieces["f"]
  for k in ("scores_fake", "scores_real"):
    assert_close(r[k], f[f"loss.{mode}.{k}"], atol=ATOL, rtol=RTOL, what=f"loss.{mode}.{k}")
  for k, v in r["D"].items():
    assert_close(v, sc[f"loss.{mode}.D.{k}"], rtol=RTOL, what=f"{mode} D.{k}")


def test_eval_bn_fake_is_recon(pieces):
  f = pieces["f"]
  assert_close(nchw(pieces["res"]["eval_bn"]["fake"]), f["enc.recon"], atol=image_atol(f["enc.recon"]),
               what="eval-mode fake")


@pytest.mark.parametrize("mode", ["eval_bn", "train_bn"])
def test_totals(pieces, mode):
  sc = pieces["g"].expected["scalars"]
  cfg = pieces["cfg"]
  r = pieces["res"][mode]
  vals = {k: float(np.mean(r[k])) for k in ("mse", "lpips", "wnorm", "adv")}
  vals["idsim"] = sc[f"loss.{mode}.E.idsim"]
  used = {k[:-len("_weight")]: v for k, v in cfg["loss_weights_used"].items()
          if k.endswith("_weight")}
  default = {k[:-len("_weight")]: v for k, v in cfg["loss_weights_config_default"].items()
             if k.endswith("_weight") and k != "idsim_weight"}
  assert_close(M.encoder_total(vals, used), sc[f"loss.{mode}.E.total_church_weights"], rtol=RTOL,
               what=f"{mode} total (used weights)")
  assert_close(M.encoder_total(vals, default),
               sc[f"loss.{mode}.E.total_default_weights_without_id"], rtol=RTOL,
               what=f"{mode} total (default weights)")


def test_adv_formula():
  logits = jnp.array([[1.5], [-0.25]])
  # softplus(-x) in float32 vs float64 log1p(exp(-x)): one rounding of an O(1) value, ~1e-7.
  np.testing.assert_allclose(M.adv(logits), np.log1p(np.exp(-np.array([1.5, -0.25]))), rtol=1e-6)
