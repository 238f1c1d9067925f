"""Where a compiled step's wall time goes, by model layer, direction and kind of op, from a
``jax.profiler`` trace of the step and the step's optimised HLO.

XLA:CPU runs independent thunks of one program concurrently on its worker threads (e.g. the four
phase convolutions of a polyphase up-convolution, two at a time on two cores), so summing the op
events of a trace counts such stretches twice and overstates the ops that overlap. Here each
instant of the trace is split evenly among the ops running then, so the shares add up to the
time at least one op ran (the step's wall time, less host gaps).

Ops are named by their HLO instruction; a fusion is attributed through its call site's
``op_name`` metadata (the root op's), e.g. ``jit(step)/vmap(transpose(jvp(PGGANGenerator)))/layer5/
dot_general`` → scope ``PGGANGenerator/layer5``, direction ``backward`` (under ``transpose``),
kind ``dot``. Dots at ``HIGHEST`` precision (the fast convolutions' tile transforms,
:mod:`jaxinv.ops.conv3x3`) are a kind of their own.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re

__all__ = ["trace_events", "wall_shares", "classify", "summarize", "format_summary"]

KINDS = ("dot", "dot (highest precision)", "convolution", "other (copies, element-wise)")
_OTHER_SCOPE = "(outside a model: loss, update)"


def trace_events(trace_dir: str) -> list[dict]:
  """The complete-duration events (``ph == "X"``) of the newest trace under ``trace_dir``, each
  with its thread's name as ``thread``."""
  files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
  if not files:
    raise FileNotFoundError(f"no *.trace.json.gz under {trace_dir}")
  with gzip.open(max(files, key=os.path.getmtime)) as f:
    events = json.load(f)["traceEvents"]
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  return [dict(e, thread=threads.get((e["pid"], e["tid"]), "")) for e in events
          if e.get("ph") == "X"]


def wall_shares(events: list[dict]) -> tuple[dict, float, float]:
  """``(share µs per event name, busy µs, µs with ≥ 2 events running)``: every instant split
  evenly among the events running then."""
  edges = collections.defaultdict(lambda: ([], []))
  for i, e in enumerate(events):
    edges[e["ts"]][0].append(i)
    edges[e["ts"] + e["dur"]][1].append(i)
  shares, active, busy, overlap, prev = collections.Counter(), set(), 0.0, 0.0, None
  for t in sorted(edges):
    if prev is not None and active:
      dt = t - prev
      busy += dt
      overlap += dt if len(active) > 1 else 0.0
      for i in active:
        shares[events[i]["name"]] += dt / len(active)
    starts, ends = edges[t]
    active.difference_update(ends)
    active.update(starts)
    prev = t
  return dict(shares), busy, overlap


def _scope(op_name: str) -> tuple[str, str]:
  """``(scope, direction)`` of an ``op_name``: the module class (a capitalised name) innermost in
  a transformation wrapper, and up to two module path segments after it."""
  parts = op_name.split("/")
  direction = "backward" if "transpose(" in op_name else "forward"
  for i, part in enumerate(parts):
    m = re.search(r"\(([A-Z]\w*)\)+$", part)
    if m:
      path = [p for p in parts[i + 1:-1] if "(" not in p][:2]
      return "/".join([m.group(1)] + path), direction
  return _OTHER_SCOPE, direction


def classify(hlo_text: str) -> dict[str, tuple[str, str, str]]:
  """``{instruction name: (scope, direction, kind)}`` for the instructions of an optimised HLO
  module's text (``compiled.as_text()``)."""
  bodies = dict(re.findall(r"\n%?([\w.\-]+) [^\n]*\{\n(.*?)\n\}", "\n" + hlo_text, re.S))
  out = {}
  for line in hlo_text.split("\n"):
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ ", line)
    if not m or m.group(1) in out:
      continue
    calls = re.search(r"calls=%?([\w.\-]+)", line)
    body = bodies.get(calls.group(1), "") if calls else line
    if " dot(" in body:
      kind = KINDS[1] if "highest" in body else KINDS[0]
    elif " convolution(" in body:
      kind = KINDS[2]
    else:
      kind = KINDS[3]
    names = re.findall(r'op_name="([^"]*)"', line) or re.findall(r'op_name="([^"]*)"', body)
    scopes = collections.Counter(_scope(n) for n in names)
    scope, direction = scopes.most_common(1)[0][0] if scopes else (_OTHER_SCOPE, "forward")
    out[m.group(1)] = (scope, direction, kind)
  return out


def summarize(trace_dir: str, hlo_text: str, steps: int) -> dict:
  """Per-step wall milliseconds of the step program whose optimised HLO is ``hlo_text``, from a
  trace of ``steps`` runs of it: ``{"busy_ms", "overlap_ms", "unattributed_ms", "rows": [{scope,
  direction, kind, ms}]}`` (``unattributed``: events of other programs, or of names this HLO
  lacks)."""
  ops = classify(hlo_text)
  events = [e for e in trace_events(trace_dir)
            if "XLA" in e["thread"] and not e["name"].startswith(
                ("Thunk", "Threadpool", "end:", "Slinky"))]
  shares, busy, overlap = wall_shares(events)
  per = collections.Counter()
  unattributed = 0.0
  for name, us in shares.items():
    if name in ops:
      per[ops[name]] += us
    else:
      unattributed += us
  rows = [{"scope": s, "direction": d, "kind": k, "ms": us / 1e3 / steps}
          for (s, d, k), us in per.most_common()]
  return {"busy_ms": busy / 1e3 / steps, "overlap_ms": overlap / 1e3 / steps,
          "unattributed_ms": unattributed / 1e3 / steps, "rows": rows}


def format_summary(summary: dict) -> str:
  """A table: one line per scope (model layers in order, then the rest) with its forward and
  backward milliseconds per kind of op, and a last line of totals."""
  table = collections.defaultdict(collections.Counter)
  for r in summary["rows"]:
    table[r["scope"]][(r["direction"], r["kind"])] += r["ms"]
  cols = [(d, k) for d in ("forward", "backward") for k in KINDS]
  short = {KINDS[0]: "dot", KINDS[1]: "dot hi", KINDS[2]: "conv", KINDS[3]: "other"}
  head = " ".join(f"{d[:3] + ' ' + short[k]:>10}" for d, k in cols)
  lines = [f"per step, ms of wall time (concurrent ops share it): busy {summary['busy_ms']:.1f}, "
           f"of which 2+ ops at once {summary['overlap_ms']:.1f}; other programs "
           f"{summary['unattributed_ms']:.1f}",
           f"{'scope':40} {'total':>8} {head}"]
  totals = collections.Counter()
  for scope in sorted(table, key=lambda s: (s == _OTHER_SCOPE, _natural(s))):
    row = table[scope]
    totals.update(row)
    lines.append(f"{scope[:40]:40} {sum(row.values()):8.1f} "
                 + " ".join(f"{row[c]:10.1f}" for c in cols))
  lines.append(f"{'all':40} {sum(totals.values()):8.1f} "
               + " ".join(f"{totals[c]:10.1f}" for c in cols))
  return "\n".join(lines)


def _natural(s: str):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
