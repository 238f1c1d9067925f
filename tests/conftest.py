"""Shared test setup: float32 parity settings and the golden-fixture root."""

import json
import os
import pathlib

import jax
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def golden_root() -> pathlib.Path:
  """``$JAXINV_GOLDEN`` or ``../shared/golden`` next to the repository."""
  return pathlib.Path(os.environ.get("JAXINV_GOLDEN", REPO.parent / "shared" / "golden")).resolve()


def golden_file(folder: str, *keys: str) -> pathlib.Path:
  """The file a fixture folder's expected.json names at ``keys`` (e.g. ``golden_file("mganprior",
  "pggan", "checkpoint")``), so a test runs unchanged on another case whose files are named
  otherwise."""
  value = json.loads((golden_root() / folder / "expected.json").read_text())
  for key in keys:
    value = value[key]
  return golden_root() / folder / value


MISSING_FIXTURE = "<fixture missing>"


def expected_at_collection(folder: str) -> dict:
  """A fixture folder's expected.json read at collection time (for ``parametrize``); ``{}`` when the
  folder is absent (the ``golden`` fixture then fails the tests that need it)."""
  p = golden_root() / folder / "expected.json"
  return json.loads(p.read_text()) if p.is_file() else {}


def params(names, slow_after: int | None = None) -> list:
  """``names`` as pytest params with their own ids; those from index ``slow_after`` on are slow."""
  return [pytest.param(n, id=str(n), marks=[pytest.mark.slow] if slow_after is not None and i >= slow_after
                       else []) for i, n in enumerate(names)]


def optional_path(folder_dir, rel, what: str) -> pathlib.Path:
  """A part a case may lack (example images beside the fixtures, a boundary file): ``rel``
  resolved against the fixture folder, or a skip naming ``what`` when it is absent."""
  if rel is None:
    pytest.skip(f"this case has no {what} (expected.json gives none)")
  p = (pathlib.Path(folder_dir) / rel).resolve()
  if not p.exists():
    pytest.skip(f"this case's {what} is absent: {p}")
  return p


def case_params(folder: str, pick) -> list:
  """``parametrize`` values taken from a case: ``pick(expected)`` (a list, or a dict's keys).

  A missing fixture gives one placeholder, so the test still runs and the ``golden`` fixture fails
  it (a missing fixture is a failure, not a skip); a case that lacks the part gives no values, which
  pytest reports as a skip of an empty parameter set.
  """
  if not (golden_root() / folder / "expected.json").is_file():
    return [MISSING_FIXTURE]
  e = expected_at_collection(folder)
  try:
    values = pick(e)
  except (KeyError, IndexError, TypeError):
    return []
  return list(values.keys() if isinstance(values, dict) else values)


def npz_keys_at_collection(folder: str, name: str) -> list[str] | None:
  """The array names inside a fixture archive at collection time (None if absent)."""
  import numpy as np
  p = golden_root() / folder / name
  if not p.is_file():
    return None
  with np.load(p) as f:
    return list(f.files)


class Golden:
  """One fixture folder: ``path(name)`` resolves files, ``expected`` is its expected.json."""

  def __init__(self, folder: str):
    self.dir = golden_root() / folder
    exp = self.dir / "expected.json"
    if not exp.is_file():
      pytest.fail(f"golden fixture missing: {exp} (set JAXINV_GOLDEN to the fixture root)")
    self.expected = json.loads(exp.read_text())

  def path(self, name: str) -> pathlib.Path:
    p = self.dir / name
    if not p.exists():
      pytest.fail(f"golden fixture file missing: {p}")
    return p

  def npz(self, name: str):
    import numpy as np
    return np.load(self.path(name))

  def optional(self, relative: str, what: str) -> pathlib.Path:
    """A file a case may lack, relative to this folder (:func:`optional_path`)."""
    return optional_path(self.dir, relative, what)


@pytest.fixture(scope="session")
def golden():
  """``golden("mganprior")`` → :class:`Golden` for that folder (missing = failure)."""
  cache = {}

  def get(folder):
    if folder not in cache:
      cache[folder] = Golden(folder)
    return cache[folder]
  return get


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """After each test file: drop JAX's compiled programs and jaxinv's memoised models, tasks and
  methods. The suite runs in one process: with everything kept (7.5 GB by then, so not for want of
  memory), an XLA compilation segfaulted 17 minutes in, in a test that passes alone; dropped, the
  whole suite passes and stays near 3.5 GB."""
  yield
  import functools
  import gc
  import sys
  for name, module in list(sys.modules.items()):
    if name.startswith(("jaxinv", "tests")) and module is not None:
      for value in list(vars(module).values()):
        if isinstance(value, functools._lru_cache_wrapper):
          value.cache_clear()
  jax.clear_caches()
  gc.collect()


@pytest.fixture(autouse=True)
def _highest_precision():
  with jax.default_matmul_precision("highest"):
    yield


def _log_error(what, err, magnitude, atol, rtol):
  """Append one comparison to ``$JAXINV_ERROR_LOG`` (JSON lines), to measure each bound's margin per machine."""
  log = os.environ.get("JAXINV_ERROR_LOG")
  if not log:
    return
  import numpy as np
  bound = atol + rtol * magnitude
  used = float((err / np.maximum(bound, 1e-300)).max()) if err.size else 0.0
  record = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0], "what": what,
            "max_abs": float(err.max()) if err.size else 0.0, "atol": float(np.max(atol)), "rtol": float(rtol),
            "fraction_of_bound": used, "isa": os.environ.get("XLA_FLAGS", "")}
  with open(log, "a") as f:
    f.write(json.dumps(record) + "\n")


def assert_close(actual, expected, atol=0.0, rtol=0.0, what=""):
  """``|a - e| <= atol + rtol·|e|`` everywhere, reporting the max abs/rel error on failure."""
  import numpy as np
  a = np.asarray(actual, np.float64)
  e = np.asarray(expected, np.float64)
  assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
  err = np.abs(a - e)
  ok = err <= atol + rtol * np.abs(e)
  _log_error(what, err, np.abs(e), atol, rtol)
  if not ok.all():
    rel = err / np.maximum(np.abs(e), 1e-30)
    raise AssertionError(f"{what}: max abs err {err.max():.3g}, max rel err {rel.max():.3g} "
                         f"(atol {atol}, rtol {rtol}); {int((~ok).sum())}/{ok.size} elements off")
  return float(err.max()) if err.size else 0.0


# Adam normalises each coordinate, so after a few steps two float32 implementations agree to float
# precision on components with a clear gradient but may differ by up to 2·lr per step on components
# whose gradient is within float noise of zero. mganprior's README §7: the official float64 rerun
# differs from its float32 in 3.9% of z's components by more than 1e-4. Two float32 implementations
# carry sqrt(2)x one's noise and which components sit near zero gradient depends on it: allow 10%.
ADAM_BULK_ATOL = 1e-4
ADAM_BULK_FRACTION = 0.10


def check_adam_bulk(ours, official, what):
  """At most ADAM_BULK_FRACTION of the components differ by more than ADAM_BULK_ATOL; returns the share."""
  import numpy as np
  off = float(np.mean(np.abs(np.asarray(ours, np.float64) - np.asarray(official, np.float64))
                      > ADAM_BULK_ATOL))
  assert off <= ADAM_BULK_FRACTION, f"{what}: {off:.1%} of components differ by more than {ADAM_BULK_ATOL}"
  return off


class CompileCounter:
  """Counts XLA backend compilations while active (``with count_compiles() as c: …; c.count``)."""

  _active: list = []
  _registered = False

  def __init__(self):
    self.count = 0

  def __enter__(self):
    if not CompileCounter._registered:
      from jax import monitoring

      def listen(name, _secs, **_):
        if name == "/jax/core/compile/backend_compile_duration":
          for c in CompileCounter._active:
            c.count += 1
      monitoring.register_event_duration_secs_listener(listen)
      CompileCounter._registered = True
    CompileCounter._active.append(self)
    return self

  def __exit__(self, *exc):
    CompileCounter._active.remove(self)


def count_compiles() -> CompileCounter:
  return CompileCounter()
