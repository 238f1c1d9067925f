"""The chunked progress bar keeps moving (and estimating) between chunk completions."""

import io
import time

from jaxinv.progress import ChunkedProgress, format_seconds


def test_progress_redraws_between_chunks_with_eta():
  buf = io.StringIO()
  bar = ChunkedProgress(100, "t", refresh_s=0.02, file=buf)
  try:
    time.sleep(0.05)
    assert len(buf.getvalue()) > 0                 # elapsed time is redrawn before any chunk ends
    bar.update(10)
    time.sleep(0.1)
    bar.update(10)                                  # ~0.01 s per step measured on the second chunk
    assert bar.seconds_per_step() > 0
    size = len(buf.getvalue())
    time.sleep(0.3)
    assert len(buf.getvalue()) > size               # redrawn with no chunk finishing
    assert 20 < bar.n <= 29                         # advanced by the step time, never past the chunk
    assert "eta=" in buf.getvalue().rsplit("\r", 1)[-1]   # the latest drawing shows the ETA
    bar.update(80)
    assert bar.n == 100
  finally:
    bar.close()
  assert not bar._thread.is_alive()


def test_format_seconds():
  assert format_seconds(5) == "00:05" and format_seconds(3725) == "1:02:05"
