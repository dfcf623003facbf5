"""Finished results folders as the report reads them (`Folder`), the statistics of their
rows, and a report row with its verdict against the paper (`Row`, `verdict`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from grokjax.analysis import compare, fit
from grokjax.harness import io
from grokjax.analysis import stats
from grokjax.analysis.stats import finite_or_none

class MissingResults(Exception):
  """A results folder the report needs is absent; the message names it, `claim` its claim."""

  def __init__(self, message: str, claim: str | None = None):
    super().__init__(message)
    self.claim = claim


@dataclasses.dataclass
class Folder:
  """A finished results folder as the report sees it."""
  path: str
  rows: list[dict[str, Any]]
  config: dict[str, Any]
  environment: dict[str, Any]
  timing: dict[str, Any]

  @classmethod
  def load(cls, path: str) -> "Folder":
    runs = os.path.join(path, "runs.csv")
    if not os.path.exists(runs):
      raise MissingResults(f"{runs} is missing")
    cfg = io.read_json(os.path.join(path, "config.json"))
    timing_path = os.path.join(path, "timing.json")
    timing = io.read_json(timing_path) if os.path.exists(timing_path) else {}
    try:
      rows = io.read_finished_runs(path)
    except io.TableError as e:
      raise MissingResults(str(e)) from None
    return cls(path, rows, cfg.get("config", {}), cfg.get("environment", {}), timing)

  def free(self, p: int | None = None, lr: float | None = None) -> list[dict]:
    return [r for r in self.rows if r["arm"] == "free" and (p is None or r["p"] == p)
            and (lr is None or np.isclose(r["lr"], lr))]

  def clamp(self, p: int | None = None) -> list[dict]:
    return [r for r in self.rows if r["arm"] == "clamp" and (p is None or r["p"] == p)]


def median_t_grok(rows) -> float | None:
  """Median T_grok (`grokjax.analysis.stats.censored_median`); None when half or more are
  censored. Diverged runs are neither grok nor censoring times: left out."""
  rs = stats.usable(rows)
  return stats.censored_median(np.array([r["t_grok"] for r in rs], float),
                            np.array([not r["grokked"] for r in rs], bool))


def grok_fraction(rows) -> float | None:
  rs = stats.usable(rows)
  return float(np.mean([r["grokked"] for r in rs])) if rs else None


def seed_cv(rows) -> float | None:
  return finite_or_none(stats.seed_cv(rows))


def delay_fit(rows, n_boot: int) -> dict[str, Any]:
  ok = stats.usable(rows)
  return fit.safe(fit.fit_delay_law, [r["rho"] for r in ok], [r["t_grok"] for r in ok],
                  [not r["grokked"] for r in ok], [r["seed"] for r in ok], n_boot=n_boot)


def aft_fit(rows, n_boot: int) -> dict[str, Any]:
  ok = stats.usable(rows)
  return fit.safe(fit.fit_aft_delay_law, [r["rho"] for r in ok], [r["t_grok"] for r in ok],
                  [not r["grokked"] for r in ok], [r["seed"] for r in ok], [r["p"] for r in ok],
                  n_boot=n_boot)


def cell_medians(rows) -> list[tuple[float, float]]:
  """(rho, censored median T_grok) of each rho cell of `rows` whose median is known, in
  the order the cells first appear: the points of every cell-median delay-law read."""
  cells = {}
  for r in rows:
    cells.setdefault(r["rho"], []).append(r)
  pts = [(k, median_t_grok(v)) for k, v in cells.items()]
  return [(k, v) for k, v in pts if v is not None]


def log_linear_cells(rows) -> tuple[float, float] | None:
  """(slope, intercept) of ln(median T_grok) on rho over the cells of `rows`
  (`cell_medians`); None with fewer than two."""
  pts = cell_medians(rows)
  if len(pts) < 2:
    return None
  return tuple(np.polyfit([k for k, _ in pts], np.log([v for _, v in pts]), 1))


def r2_of_cell_medians(rows) -> float | None:
  """R^2 of ln(median T_grok per rho cell) on rho, one modulus (the cell-median fit's)."""
  pts = [(k, np.log(v)) for k, v in cell_medians(rows)]
  if len(pts) < 3:
    return None
  x, y = np.array(pts).T
  resid = y - np.polyval(np.polyfit(x, y, 1), x)
  return float(1 - np.sum(resid ** 2) / np.sum((y - y.mean()) ** 2))


def r2_of_shared_fit(rows) -> float | None:
  return shared_fit(rows, 0).get("r2")


def shared_fit(rows, n_boot: int) -> dict[str, Any]:
  ok = stats.usable(rows)
  return fit.safe(fit.fit_shared_delay_law, [r["rho"] for r in ok], [r["t_grok"] for r in ok],
                  [r["p"] for r in ok], [not r["grokked"] for r in ok], [r["seed"] for r in ok],
                  n_boot=n_boot)


@dataclasses.dataclass
class Row:
  claim: str
  quantity: str
  paper: float | str | None
  paper_ci: Sequence[float] | None
  ours: float | str | None
  ours_ci: Sequence[float] | None
  verdict: str
  note: str = ""

  @property
  def ratio(self) -> tuple[float | None, list | None]:
    """ours / paper, and our CI over the paper's number (None without two numbers)."""
    if not isinstance(self.paper, (int, float)) or not isinstance(self.ours, (int, float)) \
        or not self.paper:
      return None, None
    ci = None if self.ours_ci is None else [c / self.paper for c in self.ours_ci]
    return self.ours / self.paper, ci


def verdict(paper_value, paper_ci, ours, ours_ci) -> str:
  """See the module docstring."""
  if paper_value is None:
    return "new"
  if ours is None:
    return "not measured"
  if ours_ci is None:  # e.g. a median that most resamples cannot define (censored runs)
    return "inconclusive (no CI)"
  if paper_ci is not None:
    return compare.interval_verdict(paper_ci, ours_ci)
  return compare.point_verdict(paper_value, ours_ci, _rounding(paper_value))


def _rounding(value: float) -> float:
  """Half a unit of the last digit the paper printed: 0.994 stands for [0.9935, 0.9945]."""
  text = repr(float(value))
  decimals = 0 if text.endswith(".0") else len(text.split(".")[1]) if "." in text else 0
  return 0.5 * 10.0 ** -decimals


def paper_row(claim, quantity, paper_value, paper_ci, ours, ours_ci, note="") -> Row:
  return Row(claim, quantity, paper_value, paper_ci, ours, ours_ci,
             verdict(paper_value, paper_ci, ours, ours_ci), note)


def qual_row(claim, quantity, paper_text, ours_text, ok: bool | None, note="") -> Row:
  v = "not measured" if ok is None else ("agrees" if ok else "differs")
  return Row(claim, quantity, paper_text, None, ours_text, None, v, note)


def in_range(rows, lo: float, hi: float) -> list[dict]:
  return [r for r in rows if lo - 1e-9 <= r["rho"] <= hi + 1e-9]


def num(x, digits=2) -> str:
  if x is None:
    return "-"
  if isinstance(x, str):
    return x
  ax = abs(x)
  if ax >= 1000:
    return f"{x:,.0f}"
  if ax >= 100:
    return f"{x:.1f}"
  return f"{x:.{digits}f}" if ax >= 1 or ax == 0 else f"{x:.{digits + 1}f}"


def fmt_ci(x, ci) -> str:
  if x is None:
    return "-"
  s = num(x)
  return s if ci is None else f"{s} [{num(ci[0])}, {num(ci[1])}]"


def nearest_index(values, x) -> int | None:
  """The index of the value in `values` equal to x up to float rounding, or None."""
  for i, v in enumerate(values):
    if np.isclose(v, x):
      return i
  return None
