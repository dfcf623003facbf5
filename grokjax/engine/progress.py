"""Training progress: a tqdm bar on a terminal or in a notebook, plain lines in a log.

A long run is usually started as `nohup python experiments/... > DIR.log 2>&1 &`: a tqdm bar
written to a file is one line rewritten with carriage returns ten times a second. There,
`progress` gives a `LineProgress` instead, one complete line a minute with the run-steps
done, the rate and the time left, and one as the grid ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO


def _duration(seconds: float) -> str:
  """3725 -> '1 h 02 min', 95 -> '1 min 35 s', 7 -> '7 s'."""
  s = int(round(seconds))
  if s >= 3600:
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
  if s >= 60:
    return f"{s // 60} min {s % 60:02d} s"
  return f"{s} s"


class LineProgress:
  """The part of tqdm's interface `train` uses (`total`, `update`, `set_postfix`, `close`),
  written as one line every `every_s` seconds: label, run-steps done of the total (the
  total shrinks as runs retire early), the rate, the time left at that rate.

  The rate counts from the end of this process's first chunk: that chunk carries the
  compile, and run-steps a resumed grid had already trained do not count either. Until a
  second chunk is in, it is the rate since the start."""

  def __init__(self, total: int, desc: str, initial: int = 0, every_s: float = 60.0,
               stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
    self.total, self.desc, self.n, self.every_s = int(total), desc, int(initial), every_s
    self.stream, self.clock = stream, clock
    self.start_n, self.t0 = self.n, clock()
    self.last = self.t0
    self.first: tuple[int, float] | None = None  # (run-steps, time) at the first chunk's end
    self.postfix: dict[str, Any] = {}

  def update(self, n: int) -> None:
    self.n += int(n)
    now = self.clock()
    if self.first is None:
      self.first = (self.n, now)
    if now - self.last >= self.every_s:
      self.last = now
      self._line(now)

  def set_postfix(self, **values) -> None:
    self.postfix = values

  def close(self) -> None:
    self._line(self.clock(), final=True)

  def _line(self, now: float, final: bool = False) -> None:
    elapsed = now - self.t0
    n0, t0 = self.first if self.first and now > self.first[1] else (self.start_n, self.t0)
    rate = (self.n - n0) / (now - t0) if now > t0 else 0.0
    done = f"{self.n:,} of {max(self.total, self.n):,} run-steps"
    if final:
      text = f"{self.desc}: done, {done} in {_duration(elapsed)} ({rate:,.0f} run-steps/s)"
    else:
      pct = 100.0 * self.n / self.total if self.total else 100.0
      left = max(self.total - self.n, 0)
      eta = _duration(left / rate) if rate > 0 else "unknown"
      live = "".join(f", {k} {v}" for k, v in self.postfix.items())
      text = (f"{self.desc}: {done} ({pct:.0f} %), {rate:,.0f} run-steps/s, "
              f"about {eta} left{live}")
    print("  " + text, file=self.stream or sys.stderr, flush=True)


def _in_notebook() -> bool:
  return "ipykernel" in sys.modules


def progress(total: int, desc: str | None, initial: int = 0):
  """A tqdm bar where stderr is a terminal or a notebook shows one; else a `LineProgress`."""
  desc = desc or "training"
  if sys.stderr.isatty() or _in_notebook():
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="run-step", unit_scale=True,
                dynamic_ncols=True, smoothing=0.1)
  return LineProgress(total, desc, initial)
