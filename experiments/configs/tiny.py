"""Tiny sweep on the golden-fixture PGGAN (32 px, random weights): N × ℓ × seed, 16 results, ~1 min on 2 cores.

  python -m jaxinv.experiments.sweep --config experiments/configs/tiny.py --out /tmp/tiny
  python -m jaxinv.experiments.report /tmp/tiny

``tiny.py:test`` is the test-suite variant (fewer steps, 2 × 2 grid, 2 images).
"""

from jaxinv.experiments.configs import common


def get_config(arg: str = ""):
  c = common.base()
  c.loss.loss = "mse"
  c.codes, c.layer = 2, 2
  c.steps, c.chunk = 20, 5
  c.max_images = 2
  c.batch = 4
  if arg == "test":
    c.steps, c.chunk = 8, 2
  elif arg:
    raise ValueError(f"unknown variant {arg!r}; use tiny.py or tiny.py:test")
  c.lock()
  return c


def sweep(add):
  for codes in (2, 4):
    for layer in (2, 4):
      for seed in (0, 1):
        add(codes=codes, layer=layer, seed=seed)
