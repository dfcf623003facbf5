"""The natural contraction of a free run's norm: the free-training delay law.

A free run memorises, its norm peaks, and decoupled weight decay then contracts it towards
W_c, where it groks. The authors' follow-up (arXiv:2605.18845) writes the delay as

    T_grok - T_start = ln(V_start / V_grok) / (2 kappa lr wd),   V = ||W||^2,

with T_start the memorisation step (their form) or the norm's peak between memorising and
grokking (grokjax's `free_norm_delay`). kappa = 1 is bare decoupled decay, the rate at which
an excess norm put on by hand decays (`free_norm_delay`'s matched pairs measure that); an
unperturbed run contracts far slower, because Adam's updates push the norm back up.

Every function reads runs.csv rows (`grokjax.load(folder).rows`, or the authors' cells
through `grokjax.paper.reference.as_rows`): free, grokked, non-diverged rows with lr, wd,
seed, t_grok, norm_at_grok and the start's step and norm (`t_peak` / `norm_peak`, or `t_mem`
/ `norm_at_mem`, columns of every runs.csv since they were added). Cells are (lr, wd).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from grokjax.analysis.stats import grokked, median_or_none, seed_bootstrap

# The step and norm a contraction starts from, by name.
STARTS = {"peak": ("t_peak", "norm_peak"), "mem": ("t_mem", "norm_at_mem")}


def run_kappa(row: dict, start: str = "peak") -> float | None:
  """kappa of one run, ln(V_start / V_grok) / (2 lr wd (T_grok - T_start)); None where the
  run lacks what it needs (not grokked, no start, no decay, or no time between them).

  >>> run_kappa(dict(lr=1e-3, wd=1.0, t_grok=1000, norm_at_grok=50.0, t_peak=500,
  ...                norm_peak=50.0 * np.exp(0.5), grokked=True, diverged=False))
  1.0
  """
  t_key, n_key = STARTS[start]
  t0, n0, n1 = row.get(t_key), row.get(n_key), row.get("norm_at_grok")
  if not row.get("grokked") or row.get("diverged") or None in (t0, n0, n1) or t0 < 0:
    return None
  dt, rate = row["t_grok"] - t0, row["lr"] * row["wd"]
  if dt <= 0 or rate <= 0 or not (n0 > 0 and n1 > 0):
    return None
  return round(float(np.log(n0 ** 2 / n1 ** 2) / (2 * rate * dt)), 12)


def cells_of(rows: Sequence[dict]) -> list[tuple[float, float]]:
  """The (lr, wd) cells of the rows, sorted."""
  return sorted({(float(r["lr"]), float(r["wd"])) for r in rows})


def _in(rows, cell):
  return [r for r in rows if np.isclose(r["lr"], cell[0]) and np.isclose(r["wd"], cell[1])]


def _median_kappa(rows, start):
  k = [v for v in (run_kappa(r, start) for r in rows) if v is not None]
  return median_or_none(k)


def _median_delay(rows, start):
  t_key = STARTS[start][0]
  d = [r["t_grok"] - r[t_key] for r in grokked(rows) if r.get(t_key) is not None
       and r[t_key] >= 0 and r["t_grok"] > r[t_key]]
  return median_or_none(d)


def delay_exponent(rows: Sequence[dict], n_boot: int = 1000, start: str = "mem"
                   ) -> dict[str, Any]:
  """beta of median(T_grok - T_start) ~ (lr wd)^beta across the (lr, wd) cells (least
  squares on the cells' medians in log-log), with its 95 % CI over seeds resampled (the
  seed bootstrap). The law with a constant kappa and a constant ln(V_start / V_grok)
  predicts -1. Needs two values of lr wd."""
  from grokjax.analysis.fit import fit_power_law

  def beta(rs):
    pts = [(c[0] * c[1], _median_delay(_in(rs, c), start)) for c in cells_of(rs)]
    pts = [(x, y) for x, y in pts if y is not None and y > 0]
    if len({x for x, _ in pts}) < 2:
      return None
    return fit_power_law(*map(np.array, zip(*pts)))["beta"]

  value, ci = seed_bootstrap(list(rows), beta, n_boot)
  if value is None:
    return dict(error="needs grokked runs in two cells of different lr wd", start=start)
  return dict(beta=value, beta_ci=ci, start=start, n_cells=len(cells_of(rows)),
              n_runs=len(grokked(rows)))


def natural_law(rows: Sequence[dict], n_boot: int = 1000, start: str = "peak"
                ) -> dict[str, Any]:
  """The natural contraction measured on free runs: per (lr, wd) cell the median kappa
  (`run_kappa`) with its seed-bootstrap CI and the median delay; the median kappa over every
  run, with its CI; the delay's exponent in lr wd (`delay_exponent`); and leave one cell out:
  each cell's median delay predicted from the kappa of the other cells and its own runs'
  ln(V_start / V_grok), as a ratio to the delay observed and whether it falls inside the
  observed median's seed-bootstrap CI."""
  usable = [r for r in rows if run_kappa(r, start) is not None]
  if not usable:
    return dict(error=f"no grokked free run with a norm at its start ({'/'.join(STARTS[start])})",
                start=start)
  cells = cells_of(usable)
  per = {}
  for c in cells:
    rs = _in(usable, c)
    k, ci = seed_bootstrap(rs, lambda x: _median_kappa(x, start), n_boot)
    per[f"lr{c[0]:g}_wd{c[1]:g}"] = dict(lr=c[0], wd=c[1], n=len(rs), kappa=k, kappa_ci=ci,
                                         median_delay=_median_delay(rs, start))
  pooled, pooled_ci = seed_bootstrap(usable, lambda x: _median_kappa(x, start), n_boot)
  loo = {}
  if len(cells) > 1:
    for c in cells:
      k_other = _median_kappa([r for r in usable if r not in _in(usable, c)], start)
      rs = _in(usable, c)
      t_key, n_key = STARTS[start]
      pred = np.median([np.log(r[n_key] ** 2 / r["norm_at_grok"] ** 2)
                        / (2 * k_other * r["lr"] * r["wd"]) for r in rs])
      obs, obs_ci = seed_bootstrap(rs, lambda x: _median_delay(x, start), n_boot)
      loo[f"lr{c[0]:g}_wd{c[1]:g}"] = dict(
          kappa_others=k_other, predicted=float(pred), observed=obs, observed_ci=obs_ci,
          ratio=float(pred / obs), inside=bool(obs_ci and obs_ci[0] <= pred <= obs_ci[1]))
  errs = [abs(v["ratio"] - 1) for v in loo.values()]
  return dict(start=start, cells=per, kappa=pooled, kappa_ci=pooled_ci, n_runs=len(usable),
              exponent=delay_exponent(usable, n_boot, start), leave_one_cell_out=loo,
              median_abs_error=median_or_none(errs))
