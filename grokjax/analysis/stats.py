"""Censored statistics of a grid's runs (numpy only): cell summaries, W_c, seed bootstraps.

A run that never grokked is censored at its budget (a lower bound on T_grok), a diverged
run is neither a grok time nor a censoring time; every function here keeps them apart.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np



def usable(rows: Sequence[dict]) -> list[dict]:
  """The runs that carry a time: all but the diverged ones (a diverged run is neither a
  grok time nor a censoring time). Every diverged-run filter in grokjax is this one."""
  return [r for r in rows if not r["diverged"]]


def grokked(rows: Sequence[dict]) -> list[dict]:
  """The runs that grokked and did not diverge: those with a T_grok and a norm at it."""
  return [r for r in rows if r["grokked"] and not r["diverged"]]


def critical_norm(rows: list[dict[str, Any]]) -> float:
  """W_c: the median over seeds of ||W|| at T_grok of the grokked, non-diverged free runs."""
  w = [r["norm_at_grok"] for r in grokked(rows)]
  return float(np.median(w)) if w else float("nan")


def critical_norm_or_none(rows) -> float | None:
  """W_c, None when no run grokked: the form `seed_bootstrap` takes (undefined, not NaN)."""
  return finite_or_none(critical_norm(rows))


def mean_norm(rows) -> float | None:
  """The paper's W_c estimator: the mean norm at T_grok of the grokked free runs."""
  w = [r["norm_at_grok"] for r in grokked(rows)]
  return float(np.mean(w)) if w else None


def seed_draws(strata: Sequence[Sequence], n_boot: int, rng_seed: int = 0) -> Iterator[list]:
  """The replicates of every seed bootstrap in grokjax: n_boot times, each stratum's seeds
  drawn with replacement, as many as it has, stratum after stratum from one generator
  seeded with `rng_seed`. Yields one list per replicate, an array of drawn seeds per
  stratum (a single stratum: the seeds of one cell or folder; per modulus in a shared fit).
  What a replicate computes, and which ones are dropped, is the caller's."""
  rng = np.random.default_rng(rng_seed)
  for _ in range(n_boot):
    yield [rng.choice(s, len(s)) for s in strata]


def censored_median(values: np.ndarray, censored: np.ndarray) -> float | None:
  """Median with censored runs as lower bounds above every observed time; None when
  half or more are censored (the median is then only known to exceed the budget)."""
  values, censored = np.asarray(values, float), np.asarray(censored, bool)
  if len(values) == 0 or 2 * censored.sum() >= len(values):
    return None
  return float(np.median(np.where(censored, np.inf, values)))


# A bootstrap CI needs this share of its replicates: fewer, and the data do not pin it down
# (a replicate is lost when its resampled seeds leave the statistic undefined).
MIN_REPLICATES = 0.9


def enough_replicates(kept: int, requested: int) -> bool:
  """Whether `kept` of `requested` bootstrap replicates can carry a CI (`MIN_REPLICATES`)."""
  return kept >= MIN_REPLICATES * requested


def percentile_ci(values, requested: int) -> list[float] | None:
  """The 95 % percentile interval of the replicates `values` (None ones dropped), or None
  when fewer than `MIN_REPLICATES` of the `requested` survive.

  >>> percentile_ci(range(1000), 1000)
  [24.975, 974.025]
  >>> percentile_ci([1.0] * 80 + [None] * 20, 100) is None
  True
  """
  vals = [v for v in values if v is not None and np.isfinite(v)]
  if not vals or not enough_replicates(len(vals), requested):
    return None
  return [float(x) for x in np.percentile(vals, [2.5, 97.5])]


def seed_bootstrap(rows: Sequence[dict], stat: Callable[[list], float | None],
                   n_boot: int = 1000, rng_seed: int = 0) -> tuple[float | None, list | None]:
  """stat(rows) and its 95 % percentile CI over seeds resampled with replacement.

  Replicates where the statistic is undefined (None) are skipped; with fewer than 90 %
  of them left the CI is None: the data do not pin it down.
  """
  point = stat(list(rows))
  seeds = sorted({r["seed"] for r in rows})
  by_seed = {s: [r for r in rows if r["seed"] == s] for s in seeds}
  vals, memo = [], {}  # a replicate depends only on the seeds drawn, in order (few seeds: few)
  for (draw,) in seed_draws([seeds], n_boot, rng_seed):
    drawn = tuple(draw.tolist())
    if drawn not in memo:
      memo[drawn] = stat([r for s in drawn for r in by_seed[s]])
    v = memo[drawn]
    if v is not None and np.isfinite(v):
      vals.append(v)
  return point, None if point is None else percentile_ci(vals, n_boot)


def median_or_none(values) -> float | None:
  """The median of a list's values, or None for an empty list (an undefined statistic)."""
  return float(np.median(values)) if len(values) else None


def finite_or_none(x) -> float | None:
  """x as a float, or None when it is missing or not finite (a statistic left undefined)."""
  return float(x) if x is not None and np.isfinite(x) else None


def seed_cv(rows) -> float:
  """The seed CV of W_c: the spread of the norm at T_grok over the grokked, non-diverged
  runs (`grokked`), the one rule every experiment and the report use."""
  return cv([r["norm_at_grok"] for r in grokked(rows)])


def cv(values) -> float:
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
  return float(np.std(v) / np.mean(v)) if len(v) > 1 else float("nan")


def cell_summary(rows) -> dict[str, Any]:
  """Grok fraction, median T_grok and T_mem of a cell. A diverged run is neither a grok
  time nor a censoring time: it is left out of all three and counted in n_diverged."""
  ok = usable(rows)
  t = np.array([r["t_grok"] for r in ok], float)
  g = np.array([r["grokked"] for r in ok], bool)
  mem = np.array([r["t_mem"] for r in ok if r["t_mem"] >= 0], float)
  return dict(n=len(rows), grok_fraction=float(g.mean()) if len(g) else float("nan"),
              median_t_grok=censored_median(t, ~g), median_t_mem=float(np.median(mem)) if len(mem) else None,
              n_censored=int((~g).sum()), n_diverged=len(rows) - len(ok))


def fit_arrays(rows):
  return (np.array([r["rho"] for r in rows], float), np.array([r["t_grok"] for r in rows], float),
          np.array([r["censored"] for r in rows], bool), np.array([r["seed"] for r in rows], int))
