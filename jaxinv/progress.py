"""A progress bar for work that finishes in compiled chunks.

The optimisation loop learns how far it got only when a chunk of steps returns, which can
be many seconds apart (or never, before the end, when ``--steps`` is below the chunk size).
:class:`ChunkedProgress` keeps the display alive in between: a daemon thread redraws it
every ``refresh_s`` seconds, advancing the count by the measured time per step (never past
the chunk in flight) and showing the remaining time; each finished chunk sets the exact
count again. The first chunk's time includes compilation, so the rate is measured from the
second chunk on when there is one.
"""

from __future__ import annotations

import threading
import time

__all__ = ["ChunkedProgress", "format_seconds"]


def format_seconds(s: float) -> str:
  s = int(round(max(s, 0.0)))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class ChunkedProgress:
  """``update(n)`` / ``set_postfix(**kw)`` / ``close()`` like a tqdm bar, redrawn in between."""

  def __init__(self, total: int, desc: str, unit: str = "step", refresh_s: float = 1.0, **tqdm_kwargs):
    from tqdm.auto import tqdm
    self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                     bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                     **tqdm_kwargs)
    self.total = total
    self._lock = threading.Lock()
    self._done = 0
    self._first_chunk = None        # (steps, time) at the end of the first chunk
    self._last_time = time.monotonic()
    self._start = self._last_time
    self._last_chunk = 0
    self._postfix = {}
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(refresh_s,), daemon=True)
    self._thread.start()

  @property
  def n(self) -> int:
    return self._bar.n

  def seconds_per_step(self) -> float | None:
    """Measured on finished chunks (after the first, which includes compilation, if possible)."""
    if self._first_chunk is None:
      return None
    steps0, t0 = self._first_chunk
    if self._done > steps0:
      return (self._last_time - t0) / (self._done - steps0)
    return (t0 - self._start) / max(steps0, 1)

  def update(self, n: int):
    with self._lock:
      now = time.monotonic()
      self._done += n
      self._last_chunk = n
      self._last_time = now
      if self._first_chunk is None:
        self._first_chunk = (self._done, now)
      self._draw(self._done)

  def set_postfix(self, **kwargs):
    with self._lock:
      self._postfix = {k: str(v) for k, v in kwargs.items()}
      self._draw(self._bar.n)

  def _draw(self, count: int):
    rate = self.seconds_per_step()
    fields = dict(self._postfix)
    if rate is not None and count < self.total:
      fields["eta"] = format_seconds((self.total - count) * rate)
    self._bar.n = count
    self._bar.set_postfix(fields, refresh=False)
    self._bar.refresh()

  def _tick(self):
    with self._lock:
      rate = self.seconds_per_step()
      count = self._done
      if rate and rate > 0:
        in_flight = min(self._last_chunk or self.total, self.total - self._done)
        guess = int((time.monotonic() - self._last_time) / rate)
        count = self._done + max(0, min(guess, in_flight - 1))
      self._draw(count)

  def _run(self, refresh_s: float):
    while not self._stop.wait(refresh_s):
      self._tick()

  def close(self):
    self._stop.set()
    self._thread.join()
    self._bar.close()
