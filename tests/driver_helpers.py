"""Checks every method on the driver must pass: an image's result does not depend on its position
in the list or the batch it falls in, and a second batch compiles nothing."""

import numpy as np

from jaxinv.inversion import run
from tests.conftest import count_compiles

SEED = 5


class CountingMethod:
  """Wraps a method and counts the XLA compilations of each of its batches."""

  def __init__(self, inner):
    self.inner = inner
    self.name = inner.name
    self.compiles = []

  def settings(self):
    return self.inner.settings()

  def run_batch(self, data, keys, ctx):
    with count_compiles() as c:
      out = self.inner.run_batch(data, keys, ctx)
    self.compiles.append(c.count)
    return out


def run_named(method, names, data, batch, chunk=2, **kw):
  """Runs the driver on the images ``names`` (a subset / reordering of ``data``'s ``"names"``)."""
  index = {n: i for i, n in enumerate(data["names"])}
  per_image = {k: v for k, v in data.items() if k != "names"}

  def load(idx):
    rows = [index[names[i]] for i in idx]
    return {k: np.asarray(v)[rows] for k, v in per_image.items()}
  return run.run(method, names, load, seed=SEED, batch=batch, progress=False, chunk=chunk, **kw)


def max_differences(a: run.Result, b: run.Result, names) -> dict:
  """``{output: max |a - b|}`` over the images ``names`` of both results (every array, every
  per-step record, every image); per-step records relative to ``max(1, |b|)``."""
  ia = [a.names.index(n) for n in names]
  ib = [b.names.index(n) for n in names]
  out = {}
  for group, axis in (("arrays", 0), ("stepwise", 1), ("images", 0)):
    ga, gb = getattr(a, group), getattr(b, group)
    assert set(ga) == set(gb), (group, set(ga), set(gb))
    for k in ga:
      x = np.take(np.asarray(ga[k], np.float64), ia, axis=axis)
      y = np.take(np.asarray(gb[k], np.float64), ib, axis=axis)
      assert x.shape == y.shape, (group, k, x.shape, y.shape)
      err = np.abs(x - y)
      if group == "stepwise":   # losses: relative to their size when above 1 (float32 rounding)
        err = err / np.maximum(1.0, np.abs(y))
      out[f"{group}/{k or 'image'}"] = float(err.max()) if x.size else 0.0
  return out


def check_identity_and_compiles(method, data, atol):
  """Whole list in batches of 2, one image alone, the list reversed in batches of 3: every output
  of every image equal within ``atol``; the whole run's later batches compile nothing.

  Returns the largest difference seen per output (for the report)."""
  names = list(data["names"])
  assert len(names) >= 3, "needs at least 3 images (2 batches of 2)"
  counting = CountingMethod(method)
  whole = run_named(counting, names, data, batch=2)
  assert len(counting.compiles) >= 2 and counting.compiles[0] > 0, counting.compiles
  assert all(c == 0 for c in counting.compiles[1:]), \
      f"compilations per batch: {counting.compiles} (a later batch compiled)"
  pick = names[len(names) // 2]
  alone = run_named(method, [pick], data, batch=1)
  other = run_named(method, names[::-1], data, batch=3)
  worst = {}
  for label, res, which in (("alone", alone, [pick]), ("reordered, batch 3", other, names)):
    diffs = max_differences(res, whole, which)
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    assert not bad, f"{label}: outputs differ by more than {atol}: {bad}"
    for k, v in diffs.items():
      worst[k] = max(worst.get(k, 0.0), v)
  return worst


class InterruptedMethod(CountingMethod):
  """Raises (a simulated kill) right after the first in-flight checkpoint of its first batch (at
  step ``after_step`` or later, when given)."""

  def __init__(self, inner, after_step: int = 0):
    super().__init__(inner)
    self.after_step = after_step

  def run_batch(self, data, keys, ctx):
    if ctx.checkpoint is not None:
      save = ctx.checkpoint.save

      def save_then_stop(state, step, records=None):
        save(state, step, records)
        if step >= self.after_step:
          raise KeyboardInterrupt(f"simulated kill after step {step}")
      ctx.checkpoint.save = save_then_stop
    return self.inner.run_batch(data, keys, ctx)


def check_resume(method, data, work_dir, batch=2, after_step=0, clean=None):
  """A run stopped after its first checkpoint (at step ``after_step`` or later), rerun with the
  same work folder, equals an uninterrupted run (``clean``, else run here) bit for bit (same
  batches, programs and chunk boundaries). Returns the uninterrupted run."""
  import pytest
  names = list(data["names"])
  if clean is None:
    clean = run_named(method, names, data, batch=batch)
  with pytest.raises(KeyboardInterrupt):
    run_named(InterruptedMethod(method, after_step), names, data, batch=batch,
              work_dir=str(work_dir))
  assert list(work_dir.glob("inflight/*/step_*")), "the interrupted run left no checkpoint"
  resumed = run_named(method, names, data, batch=batch, work_dir=str(work_dir))
  diffs = max_differences(resumed, clean, names)
  assert all(v == 0 for v in diffs.values()), f"resumed run differs: {diffs}"
  return clean
