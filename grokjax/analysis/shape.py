"""The delay law's clock and shape (numpy and scipy only).

The clock: the paper counts T_grok from step 0, but the clamp acts only from t_int, so a
cell that groks a little after t_int is mostly that fixed time. `on_clamp_clock` counts
T_grok - t_int instead (a censored run's budget likewise), so the same fitters give the
law on the clamp's clock.

The shape: `local_slopes`, the slope of ln(median T_grok) between adjacent held norms with
seed-bootstrap CIs; `compare_forms`, candidate forms of ln T(rho) (linear, quadratic,
cubic, offset-exponential, two-segment) fitted to every run by maximum likelihood, one
normal spread per cell, censored runs as lower bounds (a right-censored normal), ranked by
AIC.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from grokjax.analysis.stats import censored_median
from grokjax.analysis.stats import percentile_ci, seed_draws, usable

CLOCKS = ("step0", "clamp")


def on_clamp_clock(rows: Sequence[dict], eval_every: int = 10, t_int: int | None = None
                   ) -> tuple[list[dict], int]:
  """Rows of clamp runs with t_grok counted from their own t_int (`t_int` where a row has
  none; a censored run's budget too), and the number of cells left out because their median T_grok is not at least one
  evaluation past t_int (the clamp never acted on most of their runs). A run of a kept cell
  that grokked before t_int reads as half an evaluation after it."""
  out, dropped = [], 0
  for key in sorted({(r["p"], r.get("lr"), r["rho"]) for r in rows}, key=str):
    cell = [r for r in usable(rows) if (r["p"], r.get("lr"), r["rho"]) == key]
    if not cell:
      continue
    med = censored_median([r["t_grok"] for r in cell], [r["censored"] for r in cell])
    start = cell[0].get("t_int", t_int)
    if start is None:
      raise ValueError("the clamp's clock needs each run's t_int (a runs.csv column, or given)")
    if med is not None and med - start < eval_every:
      dropped += 1
      continue
    out += [dict(r, t_grok=max(r["t_grok"] - r.get("t_int", start), eval_every / 2))
            for r in cell]
  return out, dropped


def unclamped_cells(rows: Sequence[dict], t_int: int | None = None) -> set[tuple]:
  """(p, lr, rho) of the clamp cells in which every usable run grokked at or before its
  clamp started (t_int): the clamp never acted on them, so they are no cell of the law."""
  out = set()
  for key in {(r["p"], r.get("lr"), r["rho"]) for r in rows}:
    cell = [r for r in usable(rows) if (r["p"], r.get("lr"), r["rho"]) == key]
    start = lambda r: r.get("t_int", t_int)
    if cell and all(r["grokked"] and start(r) is not None and r["t_grok"] <= start(r)
                    for r in cell):
      out.add(key)
  return out


def local_slopes(rows: Sequence[dict], n_boot: int = 1000, rng_seed: int = 0
                 ) -> list[dict[str, Any]]:
  """Between each pair of adjacent held norms of one modulus, (ln m2 - ln m1) / (rho2 -
  rho1) of the cell medians, with a 95 % percentile CI over seeds drawn with replacement
  (a seed brings its runs in both cells). None where a median is only a lower bound."""
  ok = usable(rows)
  rhos = sorted({r["rho"] for r in ok})
  seeds = sorted({r["seed"] for r in ok})
  by = {(r["rho"], r["seed"]): r for r in ok}

  def slopes(pick: Sequence) -> list[float | None]:
    meds = []
    for rho in rhos:
      cell = [by[(rho, s)] for s in pick if (rho, s) in by]
      meds.append(censored_median([r["t_grok"] for r in cell], [r["censored"] for r in cell])
                  if cell else None)
    return [None if a is None or b is None else (np.log(b) - np.log(a)) / (r2 - r1)
            for a, b, r1, r2 in zip(meds, meds[1:], rhos, rhos[1:])]

  point = slopes(seeds)
  boots = [slopes(d) for (d,) in seed_draws([np.array(seeds)], n_boot, rng_seed)]
  out = []
  for i, (r1, r2) in enumerate(zip(rhos, rhos[1:])):
    vals = [b[i] for b in boots if b[i] is not None]
    ci = percentile_ci(vals, n_boot) if point[i] is not None else None
    out.append(dict(rho=[r1, r2], slope=point[i], slope_ci=ci))
  return out


def _two_segment(x, c, a1, a2, brk):
  return c + a1 * np.minimum(x - brk, 0) + a2 * np.maximum(x - brk, 0)


# name -> (mean of ln T at rho and parameters, number of parameters, starting values from a
# straight line (c, a) through the data and the rho range)
FORMS: dict[str, tuple[Callable, int, Callable]] = {
    "linear": (lambda x, q: q[0] + q[1] * x, 2, lambda c, a, lo, hi: [c, a]),
    "quadratic": (lambda x, q: q[0] + q[1] * x + q[2] * x ** 2, 3,
                  lambda c, a, lo, hi: [c, a, 0.0]),
    "cubic": (lambda x, q: q[0] + q[1] * x + q[2] * x ** 2 + q[3] * x ** 3, 4,
              lambda c, a, lo, hi: [c, a, 0.0, 0.0]),
    # T = t0 + exp(c + a rho), t0 = exp(q[2]) >= 0: a fixed time the law does not act on
    "offset_exponential": (lambda x, q: np.logaddexp(q[2], q[0] + q[1] * x), 3,
                           lambda c, a, lo, hi: [c, a, c + a * lo - 2.0]),
    "two_segment": (lambda x, q: _two_segment(x, *q), 4,
                    lambda c, a, lo, hi: [c + a * (lo + hi) / 2, a, a, (lo + hi) / 2]),
}


def compare_forms(rows: Sequence[dict], forms: Sequence[str] = tuple(FORMS)
                  ) -> dict[str, Any]:
  """Each form of ln T_grok(rho) fitted to every usable run of one modulus by maximum
  likelihood: ln T ~ N(form(rho), s_cell^2) with s_cell the spread of the cell's observed
  ln T (its standard deviation, at least 0.02), a censored run contributing P(ln T >
  ln budget). Rho is centred on the mean held norm. Returns per form its parameters,
  log-likelihood, AIC and delta-AIC to the best, and `best` (lowest AIC)."""
  from scipy import optimize, stats
  ok = usable(rows)
  rho = np.array([r["rho"] for r in ok], float)
  y = np.log(np.array([r["t_grok"] for r in ok], float))
  cens = np.array([r["censored"] for r in ok], bool)
  centre = float(np.mean(np.unique(rho)))
  x = rho - centre
  spread = np.ones_like(y)
  for r in np.unique(rho):
    obs = y[(rho == r) & ~cens]
    spread[rho == r] = max(float(np.std(obs, ddof=1)) if len(obs) > 2 else 0.1, 0.02)
  if len(np.unique(rho)) < 3:
    raise ValueError("need three held norms or more to compare shapes")
  c0, a0 = np.polyfit(x[~cens], y[~cens], 1)[::-1] if (~cens).sum() > 1 else (y.mean(), 0.0)
  lo, hi = float(x.min()), float(x.max())

  def nll(q, mean):
    z = (y - mean(x, q)) / spread
    ll = np.where(cens, stats.norm.logsf(z), stats.norm.logpdf(z) - np.log(spread))
    return -float(np.sum(ll))

  out = {}
  for name in forms:
    mean, k, start = FORMS[name]
    best = None
    starts = [start(c0, a0, lo, hi)]
    if name == "two_segment":  # the likelihood has a kink at each run's rho: several starts
      starts += [[c0 + a0 * q, a0 * f1, a0 * f2, q] for q in np.linspace(lo, hi, 7)[1:-1]
                 for f1, f2 in ((0.5, 1.5), (1.5, 0.5))]
    for s in starts:
      res = optimize.minimize(nll, np.asarray(s, float), args=(mean,), method="Nelder-Mead",
                              options=dict(maxiter=20000, maxfev=20000, xatol=1e-8, fatol=1e-9))
      if best is None or res.fun < best.fun:
        best = res
    out[name] = dict(params=[float(v) for v in best.x], n_params=k,
                     log_likelihood=-float(best.fun), aic=2 * k + 2 * float(best.fun))
  top = min(out, key=lambda n: out[n]["aic"])
  for v in out.values():
    v["delta_aic"] = v["aic"] - out[top]["aic"]
  if "offset_exponential" in out:
    q = out["offset_exponential"]["params"]
    out["offset_exponential"]["t0"] = float(np.exp(q[2]))
    out["offset_exponential"]["alpha"] = q[1]
  return dict(forms=out, best=top, rho_centre=centre, n_runs=len(y), n_censored=int(cens.sum()))
