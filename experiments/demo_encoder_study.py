"""Settings of the demo encoder's uses, measured on the ``demo-digits`` prior.

    PYTHONPATH=. python experiments/demo_encoder_study.py reg      # in-domain weight, TRAINING digits
    PYTHONPATH=. python experiments/demo_encoder_study.py init-dev # --init encoder variants, TRAINING digits
    PYTHONPATH=. python experiments/demo_encoder_study.py init     # --init encoder vs normal, TEST digits

``reg``: hybrid (z from E(x)) reconstruction PSNR after the demo's 150 Adam steps (lr 0.05,
pixel MSE) for several in-domain regulariser weights, on training digits the encoder was
trained on (the choice of :data:`jaxinv.demo.REG_WEIGHT` never looks at held-out digits).
``init-dev``: mGANprior with ``init="encoder"`` for noise std and alpha variants, on training
digits (the choice of :data:`jaxinv.inversion.spaces.ENCODER_INIT_NOISE` / ``_ALPHA``).
``init``: held-out test digits, normal init vs encoder init at equal steps. Prints tables.
"""

from __future__ import annotations

import sys

import jax
import numpy as np


def _psnr(pred, gt):
  from jaxinv import metrics
  from jaxinv.io.images import to_uint8
  return float(np.mean([metrics.psnr(to_uint8(a), to_uint8(b), 255.0) for a, b in zip(pred, gt)]))


def _train_digits(n):
  from jaxinv.training import digits
  split = digits.load_split(0, 297)
  idx = split["train_idx"][np.random.RandomState(1).permutation(len(split["train_idx"]))[:n]]
  return digits.to_images(split["x8"][idx], 32)


def _models():
  from jaxinv.inversion.methods import idinvert
  from jaxinv.models.registry import load_model
  gen = load_model("demo-digits", expect_family="pggan")
  enc = load_model("demo-digits-encoder", expect_family="idinvert-encoder")
  return gen, enc, idinvert.models_from(gen, enc)


def study_reg(n=8, steps=150, lr=0.05, weights=(0.0, 1e-3, 1e-2, 1e-1, 1.0)):
  from jaxinv.inversion.methods import idinvert
  _, _, models = _models()
  x = _train_digits(n)
  print(f"hybrid reconstruction on {n} training digits, {steps} Adam steps, lr {lr}")
  print(f"{'reg weight':>10}{'PSNR':>8}{'z-E(G(z)) mse':>15}")
  for w in weights:
    s = idinvert.IDInvertSettings(steps=steps, learning_rate=lr, feat_weight=0.0, reg_weight=w)
    r = idinvert.invert(models, x, s, progress=False)
    img = np.asarray(idinvert.render(models, r.wp))
    cyc = float(np.mean(np.square(np.asarray(idinvert.encode(models, img)) - np.asarray(r.wp))))
    print(f"{w:>10g}{_psnr(img, x):8.2f}{cyc:15.4f}")


def _mgan(gen, x, codes, layer, steps, init, lr=0.05, z=None, noise=None, alpha=1.0, seed=0):
  from jaxinv.inversion import spaces
  noise = spaces.ENCODER_INIT_NOISE if noise is None else noise
  from jaxinv.inversion import objectives
  from jaxinv.inversion.methods import mganprior
  cfg = mganprior.MGANpriorConfig(codes=codes, layer=layer, loss=objectives.LossConfig(loss="mse"),
                                  optimizer="adam", lr=lr, steps=steps, init=init, seed=seed,
                                  init_noise=noise, init_alpha=alpha)
  out = mganprior.invert(gen.module, gen.params, x, cfg, init_code=z, progress=False)
  return _psnr(out.images, x)


def _codes(enc, x):
  return np.asarray(jax.jit(lambda p, x: enc.module.apply({"params": p}, x))(enc.params, x))[:, 0]


def study_init_dev(n=8, layer=4, codes=10, steps=(50, 150)):
  gen, enc, _ = _models()
  x = _train_digits(n)
  z = _codes(enc, x)
  print(f"mGANprior init='encoder' on {n} training digits, layer {layer}, N {codes}; PSNR (dB)")
  print(f"{'steps':>5}{'noise':>7}{'alpha':>7}{'PSNR':>8}")
  for s in steps:
    print(f"{s:>5}{'normal init':>14}{_mgan(gen, x, codes, layer, s, 'normal'):8.2f}")
    variants = [(noise, 1.0, "1") for noise in (0.0, 0.1, 0.3, 0.5, 1.0)] + [(0.5, 1 / codes, "1/N")]
    for noise, alpha, name in variants:
      psnr = _mgan(gen, x, codes, layer, s, "encoder", z=z, noise=noise, alpha=alpha)
      print(f"{s:>5}{noise:>7g}{name:>7}{psnr:8.2f}", flush=True)


def study_init(n=8, layer=4, codes=(1, 5, 10), steps=(0, 50, 150)):
  from jaxinv import demo
  from jaxinv.inversion import spaces
  gen, enc, _ = _models()
  x = demo.load_test_digits(32, n)["images"]
  z = _codes(enc, x)
  print(f"mGANprior on {n} held-out test digits, layer {layer}, Adam lr 0.05, pixel MSE; "
        f"mean PSNR (dB), normal init vs init='encoder' (noise {spaces.ENCODER_INIT_NOISE}, "
        f"alpha {spaces.ENCODER_INIT_ALPHA})")
  print(f"{'N':>3}{'steps':>7}{'normal':>9}{'encoder':>9}{'gain':>7}")
  for n_codes in codes:
    for s in steps:
      a = _mgan(gen, x, n_codes, layer, s, "normal")
      b = _mgan(gen, x, n_codes, layer, s, "encoder", z=z)
      print(f"{n_codes:>3}{s:>7}{a:9.2f}{b:9.2f}{b - a:7.2f}", flush=True)


if __name__ == "__main__":
  what = sys.argv[1] if len(sys.argv) > 1 else "init"
  {"reg": study_reg, "init-dev": study_init_dev, "init": study_init}[what]()
