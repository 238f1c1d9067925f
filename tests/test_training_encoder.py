"""Encoder training (jaxinv.training.encoder): synchronised BN, the R1 term, a training step."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.models import idinvert_encoder as E
from jaxinv.models import keras_vgg, pggan
from jaxinv.training import encoder as T
from jaxinv.training.gan import Discriminator, DiscriminatorConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SYNC_BN_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    from jaxinv.models import idinvert_encoder as E
    jax.config.update("jax_default_matmul_precision", "highest")
    assert jax.device_count() == 8, jax.devices()
    cfg = E.EncoderConfig(resolution=16, num_layers=2, w_dim=4, channels_base=4, channels_max=8)
    x = jax.random.normal(jax.random.key(1), (16, 16, 16, 3))
    params = E.IDInvertEncoder(cfg).init(jax.random.key(0), x)["params"]
    def run(m, p, x):
      code, st = m.apply({"params": p}, x, train=True, mutable=["bn_stats"])
      return code, st["bn_stats"]
    one = jax.jit(lambda p, x: run(E.IDInvertEncoder(cfg), p, x))(params, x)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    sync = jax.jit(jax.shard_map(lambda p, x: run(E.IDInvertEncoder(cfg, axis_name="data"), p, x),
                                 mesh=mesh, in_specs=(P(), P("data")), out_specs=(P("data"), P()),
                                 check_vma=False))(params, x)
    err_code = float(jnp.abs(one[0] - sync[0]).max())
    errs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                                            one[1], sync[1]))
    # Without synchronisation the per-device statistics differ: a real check.
    unsync = jax.jit(jax.shard_map(lambda p, x: run(E.IDInvertEncoder(cfg), p, x)[0], mesh=mesh,
                                   in_specs=(P(), P("data")), out_specs=P("data"),
                                   check_vma=False))(params, x)
    print("RESULT", err_code, max(errs), float(jnp.abs(one[0] - unsync).max()))
""")


def test_sync_batch_norm_8_devices_equals_one():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  out = subprocess.run([sys.executable, "-c", SYNC_BN_SCRIPT], env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")][0]
  err_code, err_stats, err_unsync = map(float, line.split()[1:])
  assert err_code < 1e-5 and err_stats < 1e-5, (err_code, err_stats)
  assert err_unsync > 1e-3


def test_discriminator_loss_r1_term_matches_finite_differences():
  dcfg = DiscriminatorConfig(resolution=8, channels=(4, 8), mbstd=False)
  d = Discriminator(dcfg)
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 3))
  dp = d.init(jax.random.key(1), x)["params"]
  disc = lambda p, x: d.apply({"params": p}, x)   # noqa: E731
  gamma = 10.0
  nets = T.EncoderNets(encode=None, render=None, features=None,
                       discriminate=lambda p, x: disc(p, x).reshape(x.shape[0]))
  _, aux = T.discriminator_loss(nets, T.EncoderTrainConfig(r1_gamma=gamma), dp, x, x)
  got = float(aux["d_r1"])
  # Central differences of sum_b D(x_b), in float64 NumPy around float32 evaluations.
  f = jax.jit(jax.vmap(lambda x: jnp.sum(disc(dp, x))))
  flat = np.asarray(x, np.float64).reshape(-1)
  h = 1e-2
  eye = np.eye(flat.size) * h
  plus = f(jnp.asarray((flat + eye).reshape((-1,) + x.shape), jnp.float32))
  minus = f(jnp.asarray((flat - eye).reshape((-1,) + x.shape), jnp.float32))
  g = ((np.asarray(plus, np.float64) - np.asarray(minus, np.float64)) / (2 * h)).reshape(x.shape)
  want = 0.5 * gamma * np.mean(np.sum(g ** 2, axis=(1, 2, 3)))
  assert abs(got - want) <= 2e-2 * abs(want), (got, want)


@dataclasses.dataclass
class _Model:
  family: str
  config: object
  module: object
  params: dict


def test_training_step_on_the_demo_prior_lowers_reconstruction_loss():
  """Steps of the TF recipe on held-in digits of ``demo-digits`` (its training split)."""
  from jaxinv.models.registry import load_model
  from jaxinv.training import digits
  gen = load_model("demo-digits", expect_family="pggan")
  gmod, gp = gen.module, gen.params
  ecfg = T.encoder_config_for(gen, channels_base=4, channels_max=8)
  emod = E.IDInvertEncoder(ecfg)
  split = digits.load_split(0, 297)
  x = jnp.asarray(digits.to_images(split["x8"][split["train_idx"][:8]], 32))
  ep = emod.init(jax.random.key(3), x)["params"]
  dmod = Discriminator(DiscriminatorConfig(resolution=32, channels=(4, 8, 8, 8)))
  dp = dmod.init(jax.random.key(4), x)["params"]
  vmod = keras_vgg.KerasVGG16(4)          # a short VGG keeps the test small
  vp = vmod.init(jax.random.key(5), x)["params"]
  cfg = T.EncoderTrainConfig(batch_size=8, max_iters=100, learning_rate=1e-3, feat_size=16,
                             mirror=False)
  nets = T.nets_for(gen, emod, dmod, vmod)
  step = T.make_step(nets, cfg, ep)
  state = T.init_state(cfg, ep, dp)
  shared = {"G": gp, "F": vp}
  pix = []
  for i in range(15):
    state, m = step(state, shared, x, jax.random.key(i))
    pix.append(float(m["e_pix"]))
  assert pix[-1] < 0.8 * pix[0], pix
  # gamma and the running statistics are not trained by the optimiser; the stats move by EMA.
  g0 = ep["block0"]["bn"]["weight"]
  np.testing.assert_array_equal(state.e_params["block0"]["bn"]["weight"], g0)
  assert not np.allclose(state.e_params["block0"]["bn"]["running_mean"],
                         ep["block0"]["bn"]["running_mean"])


def _tiny_generator():
  gcfg = pggan.PGGANConfig(resolution=8, z_dim=8, fmaps_base=32, fmaps_max=8)
  gmod = pggan.PGGANGenerator(gcfg)
  gp = gmod.init(jax.random.key(0), jnp.zeros((1, 8)))["params"]
  gen = _Model("pggan", gcfg, gmod, gp)
  gen.path = "tiny-pggan"
  data = np.asarray(gmod.apply({"params": gp}, jax.random.normal(jax.random.key(2), (12, 8))))
  return gen, data


@pytest.fixture
def fast_compile():
  """XLA without most optimisations: the resume test compiles three steps in seconds."""
  old = jax.config.values["jax_disable_most_optimizations"]
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def test_training_resumes_from_checkpoint(tmp_path, fast_compile):
  """2 iterations, stop, resume to 4 == 4 uninterrupted (same batches, same state)."""
  import orbax.checkpoint as ocp
  from jaxinv.experiments.train_encoder import train
  from jaxinv.models.registry import load_model
  gen, data = _tiny_generator()
  cfg = T.EncoderTrainConfig(batch_size=4, max_iters=4, learning_rate=1e-3, feat_weight=0.0)
  kw = dict(channels_base=4, channels_max=8, d_channels=(4, 8), seed=3, checkpoint_every=2,
            sample_every=100, progress=False)
  full = train(gen, data, str(tmp_path / "full"), cfg, **kw)
  part = train(gen, data, str(tmp_path / "resumed"), cfg, stop_after=2, **kw)
  half = load_model(str(tmp_path / "resumed" / "encoder")).params
  resumed = train(gen, data, str(tmp_path / "resumed"), cfg, resume=True, **kw)
  assert (part["iterations"], resumed["start_iteration"], resumed["iterations_this_run"]) == (2, 2, 2)
  assert full["perceptual_term"].startswith("off")
  assert ocp.CheckpointManager(str(tmp_path / "resumed" / "checkpoints")).latest_step() == 4
  # The last step's losses and the final encoder match the uninterrupted run.
  np.testing.assert_allclose(resumed["losses_every_10"][-1]["e_loss"],
                             full["losses_every_10"][-1]["e_loss"], rtol=1e-5)
  a = load_model(str(tmp_path / "full" / "encoder")).params
  b = load_model(str(tmp_path / "resumed" / "encoder")).params
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), a, b)
  # ... while the encoder after 2 iterations differs from both (the comparison can fail).
  diff = jax.tree_util.tree_map(lambda x, y: float(np.abs(x - y).max()), a, half)
  assert max(jax.tree_util.tree_leaves(diff)) > 1e-4


def test_discriminator_starts_from_the_gans_own(tmp_path, fast_compile):
  import orbax.checkpoint as ocp
  from jaxinv.experiments.train_encoder import train
  from jaxinv.io import checkpoints
  from jaxinv.models.registry import load_model
  gen, data = _tiny_generator()
  dcfg = DiscriminatorConfig(resolution=8, channels=(4, 8))
  given = Discriminator(dcfg).init(jax.random.key(7), data[:2])["params"]
  checkpoints.save_model(tmp_path / "D", "gan-discriminator", dcfg, given)
  disc = load_model(str(tmp_path / "D"), expect_family="gan-discriminator")
  assert disc.config == dcfg
  cfg = T.EncoderTrainConfig(batch_size=4, max_iters=1, learning_rate=1e-3, feat_weight=0.0)
  rec = train(gen, data, str(tmp_path / "run"), cfg, channels_base=4, channels_max=8,
              discriminator=disc, checkpoint_every=1, sample_every=100, progress=False)
  assert str(tmp_path / "D") in rec["discriminator_init"]
  state = ocp.CheckpointManager(str(tmp_path / "run" / "checkpoints")).restore(1)
  # One Adam step (lr 1e-3) from the given weights moves each by at most ~lr.
  moved = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                                 dict(state["d_params"]), given)
  assert 0 < max(jax.tree_util.tree_leaves(moved)) <= 1.5e-3


def test_main_trains_on_a_tfds_split(tmp_path, fast_compile):
  """``train_encoder.py --data tfds:…`` reads a prepared TFDS split (no TensorFlow)."""
  import json
  from jaxinv.experiments import train_encoder
  from jaxinv.io import checkpoints
  from jaxinv.io.images import to_uint8
  from tests import tfds_images
  gen, data = _tiny_generator()
  checkpoints.save_model(tmp_path / "G", "pggan", gen.config, gen.params)
  spec = tfds_images.write_dataset(str(tmp_path / "tfds"),
                                   [(f"g{i}", to_uint8(x)) for i, x in enumerate(data[:6])])
  train_encoder.main(["--generator", str(tmp_path / "G"), "--data", spec, "--max-images", "5",
                      "--out", str(tmp_path / "run"), "--iters", "1", "--batch", "4",
                      "--channels-base", "4", "--channels-max", "8", "--d-channels", "4,8",
                      "--checkpoint-every", "1", "--sample-every", "1"])
  rec = json.loads((tmp_path / "run" / "train_record.json").read_text())
  assert rec["iterations"] == 1 and rec["images"] == 5
  assert (tmp_path / "run" / "encoder" / "config.json").is_file()
