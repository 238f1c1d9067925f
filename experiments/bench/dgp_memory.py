"""Per-image memory of DGP's batched fine-tuning, computed from shapes (no FLOPs spent).

``python experiments/bench/dgp_memory.py`` prints, for the fixture model and DGP's BigGAN-128 /
-256 (ch 96), the float32 bytes per image of: the generator copy, Adam's two moments for the
trainable leaves, the gradient, and the activations saved for the backward pass of one step
(``jax.ad_checkpoint`` residuals of the one-image objective, G + degradation + D), and the
largest batch whose state fits in 24 GiB (ignoring the shared D params and XLA scratch).
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.inversion.methods import dgp
from jaxinv.models import biggan


def d_config_for(res: int, ch: int) -> biggan.DiscriminatorConfig:
  m = (1, 2, 4, 8, 16, 16) if res == 128 else (1, 2, 4, 8, 8, 16, 16)
  ins = (3,) + tuple(ch * c for c in m[:-1])
  return biggan.DiscriminatorConfig(res, ins, tuple(ch * c for c in m),
                                    tuple([True] * (len(m) - 1) + [False]), 1000)


def residual_bytes(gcfg, dcfg, mode="SR") -> int:
  from jax._src.ad_checkpoint import saved_residuals  # not re-exported in jax 0.10
  G, D = biggan.BigGANGenerator(gcfg), biggan.BigGANDiscriminator(dcfg)
  gp = jax.eval_shape(G.init, jax.random.key(0), jnp.zeros((1, gcfg.dim_z)),
                      jnp.zeros((1, gcfg.shared_dim)))["params"]
  r = gcfg.resolution
  dp = jax.eval_shape(D.init, jax.random.key(0), jnp.zeros((1, r, r, 3)))["params"]
  tf = [jax.ShapeDtypeStruct(s.shape[1:], s.dtype) for s in
        jax.eval_shape(lambda p, x: D.apply({"params": p}, x)[1], dp, jnp.zeros((1, r, r, 3)))]
  data = {"target": jax.ShapeDtypeStruct((r, r, 3), jnp.float32), "target_feats": tf,
          "y": jax.ShapeDtypeStruct((), jnp.int32),
          "weights": jax.ShapeDtypeStruct((3,), jnp.float32),
          "ftr_mask": jax.ShapeDtypeStruct((len(tf),), jnp.float32)}
  obj = functools.partial(dgp.objective, G=G, D=D, use_in=False, degrade=dgp.degradation(mode))
  v = {"z": jax.ShapeDtypeStruct((gcfg.dim_z,), jnp.float32), "G": gp}
  res = saved_residuals(lambda v, data, dp: obj(v, data, {"D": dp})[0], v, data, dp)
  total = 0
  for aval, src in res:
    if "from the argument" in str(src):
      continue  # params / inputs: already counted as state
    total += int(np.prod(aval.shape)) * aval.dtype.itemsize
  return total


def main(argv=None):
  cases = [("fixture tiny128 (ch 8, 10 classes)",
            biggan.BigGANConfig(128, (128, 128, 64, 32, 16), (128, 64, 32, 16, 8), 120, 128, 10),
            d_config_for(128, 8)),
           ("DGP BigGAN-128 (ch 96)", biggan.BigGANConfig.dgp_128(), d_config_for(128, 96)),
           ("DGP BigGAN-256 (ch 96)", biggan.BigGANConfig.dgp_256(), d_config_for(256, 96))]
  budget = 24 * 2 ** 30
  for name, g, d in cases:
    st = dgp.state_bytes_per_image(g)
    act = residual_bytes(g, d)
    per = st["total"] + act
    print(f"{name}: G params {st['params'] / 2**20:.1f} MiB, Adam mu+nu {st['adam'] / 2**20:.1f} MiB,"
          f" grad {st['grad'] / 2**20:.1f} MiB, saved activations {act / 2**20:.1f} MiB -> "
          f"{per / 2**20:.1f} MiB/image; largest batch in 24 GiB: {budget // per}")


if __name__ == "__main__":
  sys.exit(main())
