"""The shared loop: convergence on toy objectives, no retracing, image independence, NaN stop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxinv.inversion import optimize as opt_lib


def _parabola(v, data, shared):
  loss = jnp.sum(jnp.square(v["x"] - data["target"])) * shared["scale"]
  return loss, {"first": v["x"][0]}


def test_sgd_on_parabola_matches_closed_form():
  target = np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)
  v0 = {"x": np.zeros_like(target)}
  res = opt_lib.optimize(_parabola, v0, {"target": target}, optax.sgd(0.1), 10,
                         shared={"scale": 1.0}, progress=False)
  # x_{t+1} = x_t - 0.1 * 2 (x_t - target)  ⇒  x_t = target (1 - 0.8^t)
  np.testing.assert_allclose(res.variables["x"], target * (1 - 0.8 ** 10), rtol=1e-5)
  expected_loss0 = np.sum(target ** 2, axis=1)
  np.testing.assert_allclose(res.loss[0], expected_loss0, rtol=1e-6)
  assert res.loss.shape == (10, 2) and res.aux["first"].shape == (10, 2)


def test_chunks_equal_one_scan_and_no_retrace():
  target = np.random.RandomState(0).randn(3, 5).astype(np.float32)
  v0 = {"x": np.zeros_like(target)}
  adam = optax.adam(0.05)
  whole = opt_lib.optimize(_parabola, v0, {"target": target}, adam, 12, shared={"scale": 1.0},
                           progress=False)
  traces = []

  def counting(v, data, shared):
    traces.append(1)
    return _parabola(v, data, shared)

  chunked = opt_lib.optimize(counting, v0, {"target": target}, adam, 12, shared={"scale": 1.0},
                             chunk=4, progress=False)
  np.testing.assert_allclose(chunked.loss, whole.loss, rtol=1e-6)
  np.testing.assert_allclose(chunked.variables["x"], whole.variables["x"], rtol=1e-6)
  n = len(traces)
  assert n == 1, f"the step was traced {n} times for one shape"
  opt_lib.optimize(counting, v0, {"target": target + 1}, adam, 8, shared={"scale": 2.0}, chunk=4,
                   progress=False)
  assert len(traces) == n, "a second run with equal shapes retraced the step"


def test_images_are_independent_of_their_batch():
  rng = np.random.RandomState(1)
  targets = rng.randn(4, 6).astype(np.float32)
  v0 = {"x": rng.randn(4, 6).astype(np.float32)}
  both = opt_lib.optimize(_parabola, v0, {"target": targets}, optax.adam(0.1), 7,
                          shared={"scale": 1.0}, progress=False)
  alone = opt_lib.optimize(_parabola, {"x": v0["x"][2:3]}, {"target": targets[2:3]},
                           optax.adam(0.1), 7, shared={"scale": 1.0}, progress=False)
  # Equal up to float32 rounding of differently vectorised arithmetic (one ulp).
  np.testing.assert_allclose(both.variables["x"][2:3], alone.variables["x"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(both.loss[:, 2:3], alone.loss, rtol=1e-5)


def test_non_finite_loss_names_the_steps():
  def exploding(v, data, shared):
    return jnp.sum(jnp.square(v["x"])), {}  # with lr 10, x ← -19 x: overflows within 20 steps
  # |x| = 19^s before update s; the loss 2·19^(2s) overflows float32 first at s = 15, in the
  # last chunk (steps 15..19), read while no chunk is in flight behind it.
  with pytest.raises(opt_lib.NonFiniteLossError, match=r"step 15 \(chunk of steps 15\.\.19\), image 0"):
    opt_lib.optimize(exploding, {"x": np.ones((1, 2), np.float32)}, {"t": np.zeros((1, 1))},
                     optax.sgd(10.0), 20, chunk=5, progress=False)
  # The same in a middle chunk (steps 15..17 of 24), found while the next chunk is in flight.
  with pytest.raises(opt_lib.NonFiniteLossError, match=r"step 15 \(chunk of steps 15\.\.17\)"):
    opt_lib.optimize(exploding, {"x": np.ones((1, 2), np.float32)}, {"t": np.zeros((1, 1))},
                     optax.sgd(10.0), 24, chunk=3, progress=False)


def test_mismatched_batch_axes_are_refused():
  with pytest.raises(ValueError, match="leading image axis"):
    opt_lib.optimize(_parabola, {"x": np.zeros((2, 3))}, {"target": np.zeros((3, 3))},
                     optax.sgd(1.0), 1, shared={"scale": 1.0}, progress=False)


def test_post_update_projection_is_applied():
  def project(v, step):
    return {"x": jnp.clip(v["x"], -0.5, 0.5)}
  res = opt_lib.optimize(_parabola, {"x": np.zeros((1, 2), np.float32)},
                         {"target": np.array([[3.0, -3.0]], np.float32)}, optax.sgd(0.4), 5,
                         shared={"scale": 1.0}, post_update=project, progress=False)
  np.testing.assert_allclose(res.variables["x"], [[0.5, -0.5]])


# No-compile check through JAX's own compilation events (beside the trace count above).
TRACES = {"n": 0}


def quadratic_loss(variables, data, shared):
  TRACES["n"] += 1          # runs once per trace, never per step
  d = variables["x"] - data["target"]
  return shared["scale"] * jnp.sum(d * d), {"d0": d[0]}


def test_second_call_compiles_nothing():
  opt = optax.sgd(0.1)
  kw = dict(shared={"scale": 1.0}, progress=False, chunk=4)
  x0 = {"x": np.zeros((2, 3), np.float32)}
  compiled = []
  listener = lambda event, *a, **k: compiled.append(event) if "backend_compile" in event else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    opt_lib.optimize(quadratic_loss, x0, {"target": np.ones((2, 3), np.float32)}, opt, 10, **kw)
    assert compiled, "the listener saw no compilation on the first call (test is vacuous)"
    traces, compiled[:] = TRACES["n"], []
    # Same shapes, new values (targets, init, shared scale): nothing is traced or compiled.
    opt_lib.optimize(quadratic_loss, {"x": np.full((2, 3), 5.0, np.float32)},
                     {"target": np.zeros((2, 3), np.float32)}, opt, 10,
                     **{**kw, "shared": {"scale": 2.0}})
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert TRACES["n"] == traces, "optimize() retraced the step for equal shapes"
  assert not compiled, f"optimize() compiled again: {compiled}"


def _small_mlp_loss(v, data, shared):
  hidden = jnp.tanh(v["z"] @ shared["w1"] + shared["b1"])
  out = hidden @ shared["w2"]
  loss = jnp.mean(jnp.square(out - data["target"])) + 1e-3 * jnp.sum(jnp.square(v["z"]))
  return loss, {"out0": out[0], "norm": jnp.sum(jnp.square(v["z"]))}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_step_loop_and_scan_loop_agree_bit_for_bit(optimizer):
  # The two structures run the same per-step function: every recorded value is equal bitwise,
  # across chunk boundaries, a shorter last chunk, a projection and the recorded history.
  rng = np.random.RandomState(3)
  shared = {"w1": rng.randn(8, 16).astype(np.float32) / 3, "b1": rng.randn(16).astype(np.float32),
            "w2": rng.randn(16, 5).astype(np.float32) / 4}
  v0 = {"z": rng.randn(3, 8).astype(np.float32)}
  data = {"target": rng.randn(3, 5).astype(np.float32)}
  opt = opt_lib.make_optimizer(optimizer, 0.05)
  project = lambda v, step: {"z": jnp.clip(v["z"], -1.5, 1.5)}
  runs = {loop: opt_lib.optimize(_small_mlp_loss, v0, data, opt, 11, shared=shared, chunk=4,
                                 post_update=project, record_variables=True, progress=False,
                                 loop=loop)
          for loop in ("scan", "step")}
  scan, step = runs["scan"], runs["step"]
  assert scan.loss.shape == step.loss.shape == (11, 3)
  assert scan.loss[-1].mean() < scan.loss[0].mean()          # it optimises
  np.testing.assert_array_equal(step.loss, scan.loss)
  np.testing.assert_array_equal(step.variables["z"], scan.variables["z"])
  np.testing.assert_array_equal(step.history["z"], scan.history["z"])
  assert step.history["z"].shape == (11, 3, 8)
  for k in scan.aux:
    np.testing.assert_array_equal(step.aux[k], scan.aux[k])
  # The history is each step's own copy, not the (donated) state's buffer.
  assert not np.array_equal(step.history["z"][0], step.history["z"][-1])
  np.testing.assert_array_equal(step.history["z"][-1], step.variables["z"])
  assert int(step.state.step) == int(scan.state.step) == 11


@pytest.mark.parametrize("loop", ["scan", "step"])
def test_each_loop_names_the_non_finite_step_and_compiles_once(loop):
  def exploding(v, data, shared):
    return jnp.sum(jnp.square(v["x"])), {}
  with pytest.raises(opt_lib.NonFiniteLossError, match=r"step 15 \(chunk of steps 15\.\.17\)"):
    opt_lib.optimize(exploding, {"x": np.ones((1, 2), np.float32)}, {"t": np.zeros((1, 1))},
                     optax.sgd(10.0), 24, chunk=3, progress=False, loop=loop)
  compiled = []
  listener = lambda event, *a, **k: compiled.append(event) if "backend_compile" in event else None
  kw = dict(shared={"scale": 1.0}, progress=False, chunk=4, loop=loop)
  opt = optax.adam(0.1)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    opt_lib.optimize(_parabola, {"x": np.zeros((2, 3), np.float32)},
                     {"target": np.ones((2, 3), np.float32)}, opt, 10, **kw)
    first = len(compiled)
    opt_lib.optimize(_parabola, {"x": np.ones((2, 3), np.float32)},
                     {"target": np.zeros((2, 3), np.float32)}, opt, 10, **kw)
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert first >= 1 and len(compiled) == first, f"second call compiled {compiled[first:]}"


def test_default_loop_follows_the_backend():
  expected = "step" if jax.devices()[0].platform == "cpu" else "scan"
  assert opt_lib.default_loop() == expected == opt_lib.default_loop(lambda v, d, s: (0.0, {}))
  assert opt_lib.default_loop(opt_lib.scan_on_cpu(lambda v, d, s: (0.0, {}))) == "scan"
  with pytest.raises(ValueError, match="unknown loop"):
    opt_lib.optimize(_parabola, {"x": np.zeros((1, 2))}, {"target": np.zeros((1, 2))},
                     optax.sgd(1.0), 1, shared={"scale": 1.0}, progress=False, loop="while")


def test_step_loop_reads_the_device_once_per_chunk(monkeypatch):
  # Steps are dispatched without waiting; the host reads the losses once per chunk, all of its
  # steps together (10 steps in chunks of 4: reads of 4, 4 and 2 steps).
  reads = []
  real = opt_lib._to_host_stepwise

  def counting(outs):
    reads.append(len(outs))
    return real(outs)
  monkeypatch.setattr(opt_lib, "_to_host_stepwise", counting)
  res = opt_lib.optimize(_parabola, {"x": np.zeros((2, 3), np.float32)},
                         {"target": np.ones((2, 3), np.float32)}, optax.sgd(0.1), 10,
                         shared={"scale": 1.0}, chunk=4, progress=False, loop="step")
  assert reads == [4, 4, 2] and res.loss.shape == (10, 2)


@opt_lib.receives_step
def _noisy_step_loss(v, data, shared, step, key):
  # The target moves with the step and a per-step normal draw: checks both arguments by value.
  eps = jax.random.normal(key, v["x"].shape)
  loss = jnp.sum(jnp.square(v["x"] - data["target"] - 0.1 * step - 0.01 * eps))
  return loss, {"step": step, "eps": eps}


@pytest.mark.parametrize("loop", ["step", "scan"])
def test_loss_receives_the_step_and_a_per_step_key(loop):
  target = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
  keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in (3, 4)])
  data = {"target": target, "key": keys}
  res = opt_lib.optimize(_noisy_step_loss, {"x": np.zeros_like(target)}, data, optax.sgd(0.1), 6,
                         chunk=4, progress=False, loop=loop)
  np.testing.assert_array_equal(res.aux["step"], np.repeat(np.arange(6)[:, None], 2, axis=1))
  want = np.stack([[np.asarray(jax.random.normal(jax.random.fold_in(k, s), (2,))) for k in keys]
                   for s in range(6)])
  np.testing.assert_array_equal(res.aux["eps"], want)
  # Continuing from a state counts on: steps 6.. of one 9-step run, keys from the same rule.
  more = opt_lib.optimize(_noisy_step_loss, None, data, optax.sgd(0.1), 3, state=res.state,
                          progress=False, loop=loop)
  whole = opt_lib.optimize(_noisy_step_loss, {"x": np.zeros_like(target)}, data, optax.sgd(0.1), 9,
                           progress=False, loop=loop)
  np.testing.assert_array_equal(more.aux["step"][:, 0], [6, 7, 8])
  np.testing.assert_array_equal(more.aux["eps"], whole.aux["eps"][6:])
  np.testing.assert_array_equal(more.variables["x"], whole.variables["x"])


def test_unmarked_loss_keeps_three_arguments():
  res = opt_lib.optimize(_parabola, {"x": np.zeros((1, 2), np.float32)},
                         {"target": np.ones((1, 2), np.float32), "key": np.zeros((1, 2), np.uint32)},
                         optax.sgd(0.1), 2, shared={"scale": 1.0}, progress=False)
  assert res.loss.shape == (2, 1)


def test_loop_default_follows_the_loss_functions_mark(monkeypatch):
  """optimize() without ``loop=`` runs a :func:`scan_on_cpu` loss in scan chunks on CPU (its
  chunk programs) and an unmarked one step by step (the single-step program, fetched per chunk)."""
  calls = []
  real = opt_lib._cached_chunk

  def recording(loss_fn, optimizer, post_update, record_variables, length, mesh=None):
    calls.append(length)
    return real(loss_fn, optimizer, post_update, record_variables, length, mesh)
  monkeypatch.setattr(opt_lib, "_cached_chunk", recording)
  marked = opt_lib.scan_on_cpu(lambda v, d, s: _parabola(v, d, s))
  args = ({"x": np.zeros((2, 3), np.float32)}, {"target": np.ones((2, 3), np.float32)},
          optax.sgd(0.1), 6)
  scan = opt_lib.optimize(marked, *args, shared={"scale": 1.0}, chunk=4, progress=False)
  assert calls == [4, 2]
  calls.clear()
  step = opt_lib.optimize(_parabola, *args, shared={"scale": 1.0}, chunk=4, progress=False)
  assert calls == ([None, None] if jax.devices()[0].platform == "cpu" else [4, 2])
  np.testing.assert_allclose(scan.loss, step.loss, rtol=1e-6)


def test_mganprior_on_pggan_runs_scan_chunks_on_cpu():
  """mGANprior marks its loss :func:`scan_on_cpu` on PGGAN (prepared convolutions, VGG16 with
  flipped input-gradient kernels), not with the LPIPS loss, the fused up-convolution or XLA's
  direct up-convolution."""
  from jaxinv.inversion import objectives, spaces
  from jaxinv.inversion.methods import mganprior
  from jaxinv.models import pggan

  def mark(fused_scale=False, loss="combine", conv_impl="fast"):
    gen = pggan.PGGANGenerator(pggan.PGGANConfig(resolution=8, z_dim=8, fmaps_base=32, fmaps_max=8,
                                                 fused_scale=fused_scale, conv_impl=conv_impl))
    fn = mganprior.make_loss_fn(spaces.MultiCode(gen, 2, 2), objectives.LossConfig(loss=loss))
    return getattr(fn, "scan_on_cpu", False)
  assert mark() and not mark(fused_scale=True) and not mark(loss="lpips")
  assert not mark(conv_impl="direct")
