"""Fits of the paper's laws: the delay law ln T_grok = c + alpha * rho, per modulus and
with one shared alpha, and the power law W_c = c * p^beta.

The delay law is fitted to cell medians: for every (modulus, rho) cell, the median of
T_grok over its seeds, then least squares of ln(median) on rho. Censored runs (no grok
within the budget) are lower bounds that lie above every observed time of their cell, so
they count in the median as +inf: the median stays exact while fewer than half of a
cell's runs are censored. A cell with half or more censored has only a lower bound on
its median and is left out of the fit; fits report how many runs and cells that was.
Confidence intervals are percentile bootstraps over seeds: each replicate redraws, per
modulus, the seeds with replacement (a seed brings its runs in every cell), recomputes
the medians and refits.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from grokjax.analysis.stats import enough_replicates, seed_draws

METHOD = ("least squares of ln(median T_grok per cell) on rho; censored runs count as "
          "+inf in the median; cells with >= half censored are excluded; 95 % percentile "
          "bootstrap over seeds")


def _cell_medians(rho, t, censored, seed, modulus, pick=None):
  """ln median T_grok per (modulus, rho) cell; pick maps (modulus, seed) -> multiplicity."""
  out = []
  for p in np.unique(modulus):
    for r in np.unique(rho[modulus == p]):
      m = (modulus == p) & (rho == r)
      vals = np.where(censored[m], np.inf, t[m])
      if pick is not None:
        reps = np.array([pick[p].get(s, 0) for s in seed[m]])
        vals = np.repeat(vals, reps)
      if len(vals) == 0:
        continue
      med = np.median(vals)
      if np.isfinite(med) and np.mean(np.isinf(vals)) < 0.5:
        out.append((p, r, np.log(med)))
  return out


def _lstsq(cells, shared: bool):
  ps = sorted({c[0] for c in cells})
  rho = np.array([c[1] for c in cells])
  y = np.array([c[2] for c in cells])
  cols = [rho] + [np.array([c[0] == p for c in cells], float) for p in ps]
  X = np.stack(cols, 1) if shared else np.stack([rho, np.ones_like(rho)], 1)
  coef, *_ = np.linalg.lstsq(X, y, rcond=None)
  resid = y - X @ coef
  ss_tot = np.sum((y - y.mean()) ** 2)
  within = sum(np.sum((y[[c[0] == p for c in cells]] - y[[c[0] == p for c in cells]].mean()) ** 2)
               for p in ps)
  r2 = 1 - np.sum(resid ** 2) / ss_tot if ss_tot > 0 else float("nan")
  r2_within = 1 - np.sum(resid ** 2) / within if within > 0 else float("nan")
  return coef, float(r2), float(r2_within), ps


def _validate(rho, t, censored, seed, modulus):
  rho, t = np.asarray(rho, float), np.asarray(t, float)
  n = len(rho)
  censored = np.zeros(n, bool) if censored is None else np.asarray(censored, bool)
  seed = np.arange(n) if seed is None else np.asarray(seed)
  modulus = np.zeros(n, int) if modulus is None else np.asarray(modulus)
  if not (len(t) == len(censored) == len(seed) == len(modulus) == n):
    raise ValueError("rho, t_grok, censored, seed and modulus must have the same length")
  if n == 0 or np.any(~np.isfinite(t)) or np.any(t <= 0) or np.any(~np.isfinite(rho)):
    raise ValueError("t_grok must be positive and finite, rho finite, and at least one run given")
  return rho, t, censored, seed, modulus


def _fit(rho, t, censored, seed, modulus, shared, n_boot, rng_seed):
  cells = _cell_medians(rho, t, censored, seed, modulus)
  dropped = {}
  for p in np.unique(modulus):
    n_rho = len({c[1] for c in cells if c[0] == p})
    if n_rho < 2:
      dropped[int(p)] = f"{n_rho} rho value(s) with a known median (need 2)"
  cells = [c for c in cells if int(c[0]) not in dropped]
  if not cells:
    raise ValueError("no modulus has two rho values with a known median T_grok "
                     "(fewer than half of a cell's runs censored)")
  coef, r2, r2_within, ps = _lstsq(cells, shared)
  boots = []
  kept = np.isin(modulus, ps)
  seeds_of = {p: np.unique(seed[modulus == p]) for p in ps}
  memo: dict[tuple, Any] = {}  # a replicate depends only on its seed counts (few seeds: few)
  for draws in seed_draws(list(seeds_of.values()), n_boot, rng_seed):
    pick = {p: dict(zip(*np.unique(d, return_counts=True))) for p, d in zip(seeds_of, draws)}
    key = tuple((p, tuple(sorted(c.items()))) for p, c in pick.items())
    if key not in memo:
      bc = _cell_medians(rho[kept], t[kept], censored[kept], seed[kept], modulus[kept], pick)
      ok = all(len({c[1] for c in bc if c[0] == p}) >= 2 for p in ps)
      memo[key] = _lstsq(bc, shared)[0] if ok else None
    if memo[key] is not None:
      boots.append(memo[key])
  boots = np.array(boots) if boots else np.full((1, len(coef)), np.nan)
  ci = lambda j: ([float(v) for v in np.nanpercentile(boots[:, j], [2.5, 97.5])]
                  if np.isfinite(boots[:, j]).any() else [float("nan")] * 2)
  kept_boot = len(boots) if np.isfinite(boots).all() else 0
  note = _boot_note(kept_boot, n_boot)
  if _one_seed(seeds_of.values()):
    ci, note = (lambda j: None), _one_seed_note()
  return dict(coef=coef, ci=ci, r2=r2, r2_within=r2_within, ps=ps, cells=cells,
              dropped=dropped, n_boot=kept_boot, used=kept, boot=note)


def _one_seed(seed_sets) -> bool:
  """A stratum with a single seed: every bootstrap replicate redraws the same data, so a
  percentile CI would have zero width; it is undefined instead."""
  return any(len(s) < 2 for s in seed_sets)


def _one_seed_note() -> dict[str, Any]:
  return dict(n_boot_kept=0, n_boot_requested=0,
              ci_warning="one seed: a bootstrap over seeds has nothing to resample, no CI")


def _boot_note(kept: int, requested: int) -> dict[str, Any]:
  """How many bootstrap replicates a CI rests on; a warning when under 90 % survived
  (a replicate is dropped when its resampled seeds leave a modulus with < 2 known cells)."""
  out = dict(n_boot_kept=int(kept), n_boot_requested=int(requested))
  if not enough_replicates(kept, requested):
    out["ci_warning"] = (f"CI from {kept} of {requested} bootstrap replicates; the others lost "
                         "a cell's median to censoring")
  return out


def fit_delay_law(rho, t_grok, censored=None, seed=None, *, n_boot: int = 1000,
                  rng_seed: int = 0) -> dict[str, Any]:
  """ln T_grok = intercept + alpha * rho for one modulus (see the module docstring).

  Args:
    rho: float[runs], held norm in units of W_c.
    t_grok: float[runs], steps (a censored run carries its budget).
    censored: bool[runs], True where the run never grokked.
    seed: int[runs], seed index (the bootstrap's cluster); default one per run.
    n_boot: bootstrap replicates.
    rng_seed: seed of the bootstrap.

  Returns:
    alpha, alpha_ci, intercept, intercept_ci, r2 (over cell medians), n_cells, n_runs,
    n_censored (runs), medians_used (rho -> median T_grok fitted), n_boot.

  Example:
    >>> rho = [0.9, 0.9, 1.0, 1.0, 1.1, 1.1]
    >>> t = [float(round(100 * 2.718281828 ** (8 * r))) for r in rho]
    >>> out = fit_delay_law(rho, t, n_boot=20)
    >>> round(out["alpha"], 2), round(out["r2"], 4)
    (8.0, 1.0)
  """
  rho, t, cens, seed, modulus = _validate(rho, t_grok, censored, seed, None)
  f = _fit(rho, t, cens, seed, modulus, False, n_boot, rng_seed)
  if f["dropped"]:
    raise ValueError(f"need two rho values with a known median T_grok; have {f['dropped'][0]}")
  return dict(alpha=float(f["coef"][0]), alpha_ci=f["ci"](0), intercept=float(f["coef"][1]),
              intercept_ci=f["ci"](1), r2=f["r2"], n_cells=len(f["cells"]), n_runs=int(len(t)),
              n_censored=int(cens.sum()),
              medians_used={f"{c[1]:g}": float(np.exp(c[2])) for c in f["cells"]},
              n_boot=f["n_boot"], **f["boot"])


def fit_shared_delay_law(rho, t_grok, modulus, censored=None, seed=None, *, n_boot: int = 1000,
                         rng_seed: int = 0) -> dict[str, Any]:
  """ln T_grok = c_p + alpha * rho: one alpha, one intercept per modulus.

  A modulus with fewer than two rho cells of known median is dropped and listed in
  `dropped` with the reason (the paper drops p = 31 this way).

  Returns:
    alpha, alpha_ci, intercepts (modulus -> c_p), r2 (against the mean of all cell
    medians), r2_within (against each modulus's own mean: the share of the within-modulus
    variation the common slope explains), moduli, dropped, n_cells, n_runs, n_censored.
  """
  rho, t, cens, seed, modulus = _validate(rho, t_grok, censored, seed, modulus)
  f = _fit(rho, t, cens, seed, modulus, True, n_boot, rng_seed)
  kept = f["used"]
  return dict(alpha=float(f["coef"][0]), alpha_ci=f["ci"](0),
              intercepts={str(int(p)): float(c) for p, c in zip(f["ps"], f["coef"][1:])},
              r2=f["r2"], r2_within=f["r2_within"], moduli=[int(p) for p in f["ps"]],
              dropped={str(k): v for k, v in f["dropped"].items()}, n_cells=len(f["cells"]),
              n_runs=int(kept.sum()), n_censored=int(cens[kept].sum()), n_boot=f["n_boot"],
              **f["boot"])


def fit_power_law(x, y) -> dict[str, Any]:
  """y = c * x^beta by least squares in log-log space (`scipy.stats.linregress`).

  Returns beta, its standard error beta_se and 95 % CI beta_ci (Student t with n - 2
  degrees of freedom; None with two points), c, r2, n.

  Example:
    >>> out = fit_power_law([10, 20, 40, 80], [3.0, 3.0 * 2 ** 0.5, 6.0, 6.0 * 2 ** 0.5])
    >>> round(out["beta"], 6), round(out["beta_se"], 6), round(out["r2"], 6)
    (0.5, 0.0, 1.0)
  """
  from scipy import stats
  x, y = np.asarray(x, float), np.asarray(y, float)
  if len(x) != len(y) or len(x) < 2 or np.any(x <= 0) or np.any(y <= 0):
    raise ValueError("a power-law fit needs at least two points with positive x and y")
  if np.all(x == x[0]):
    raise ValueError("a power-law fit needs two different x")
  res = stats.linregress(np.log(x), np.log(y))
  n = len(x)
  se = float(res.stderr) if n > 2 else None
  half = None if se is None else float(stats.t.ppf(0.975, n - 2)) * se
  ss_tot = np.sum((np.log(y) - np.log(y).mean()) ** 2)
  return dict(beta=float(res.slope), beta_se=se,
              beta_ci=None if half is None else [float(res.slope) - half, float(res.slope) + half],
              c=float(np.exp(res.intercept)),
              r2=float(res.rvalue ** 2) if ss_tot > 0 else float("nan"), n=int(n))


def fold_change(values) -> float:
  """max / min of the finite positive values; NaN with fewer than two."""
  v = np.asarray([x for x in values if x is not None], float)
  v = v[np.isfinite(v) & (v > 0)]
  return float(v.max() / v.min()) if len(v) >= 2 else float("nan")


def fold_change_bounded(medians, lower_bounds) -> dict[str, Any]:
  """max / min of cell medians where some medians are only known to exceed a bound.

  Args:
    medians: per cell, the median T_grok, or None/NaN when half or more of the cell is
      censored (its median then exceeds the cell's budget).
    lower_bounds: per cell, that bound (the budget); used only where the median is unknown.

  Returns:
    value, and lower_bound=True when an unknown cell raised the maximum: the true fold is
    then at least `value`. The minimum always comes from known cells (an unknown median
    exceeds its budget, hence every observed time). NaN with fewer than two cells or no
    known one.
  """
  known = [float(m) for m in medians if m is not None and np.isfinite(m)]
  bounds = [float(b) for m, b in zip(medians, lower_bounds) if m is None or not np.isfinite(m)]
  if not known or len(known) + len(bounds) < 2:
    return dict(value=float("nan"), lower_bound=False)
  top = max(known + bounds)
  return dict(value=top / min(known), lower_bound=bool(bounds) and top > max(known))


def bounded_median(folds: list[dict[str, Any]]) -> dict[str, Any]:
  """Median of fold changes; a lower bound as soon as one of them is (raising any value
  cannot lower the median)."""
  vals = [f["value"] for f in folds if np.isfinite(f["value"])]
  return dict(value=float(np.median(vals)) if vals else float("nan"),
              lower_bound=any(f["lower_bound"] for f in folds if np.isfinite(f["value"])))


def format_fold(fold: dict[str, Any]) -> str:
  """'18.0x', '>= 12.2x' for a lower bound, 'undefined' without a value (read from JSON,
  where NaN is null)."""
  if fold.get("value") is None or not np.isfinite(fold["value"]):
    return "undefined"
  return f"{'>= ' if fold['lower_bound'] else ''}{fold['value']:.1f}x"


def safe(fn: Callable[..., dict], *args, **kwargs) -> dict[str, Any]:
  """Call a fit; a fit that cannot be made returns {'error': reason} instead of raising."""
  try:
    return fn(*args, **kwargs)
  except ValueError as e:
    return dict(error=str(e))


# ---------------------------------------------------------------- censoring-aware per-run fit

AFT_METHOD = ("maximum likelihood of ln T_grok = c_p + alpha * rho + sigma * e, e ~ N(0, 1), "
              "censored runs through the survival function at their budget (log-normal "
              "accelerated failure time); 95 % percentile bootstrap over seeds")


def log_sf_and_mills(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """log P(e > z) and the inverse Mills ratio phi(z) / P(e > z), exact for every z
  (`scipy.special.log_ndtr(-z)`; the ratio from the log, so it never divides by zero)."""
  from scipy.special import log_ndtr
  z = np.asarray(z, float)
  log_sf = log_ndtr(-z)
  mills = np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - log_sf)
  return log_sf, mills


def _aft_mle(X: np.ndarray, y: np.ndarray, cens: np.ndarray, w: np.ndarray, iters: int = 100):
  """Newton's method in Olsen's parameters (gamma = beta / sigma, tau = 1 / sigma), where
  the censored-normal log-likelihood is concave. w: per-run multiplicity."""
  coef, *_ = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)
  sigma = max(float(np.sqrt(np.average((y - X @ coef) ** 2, weights=w))), 1e-3)
  theta = np.append(coef / sigma, 1 / sigma)

  def loglik(th):
    z = th[-1] * y - X @ th[:-1]
    log_sf, _ = log_sf_and_mills(z[cens])
    obs = ~cens
    return (np.sum(w[obs] * (np.log(th[-1]) - 0.5 * z[obs] ** 2)) + np.sum(w[cens] * log_sf))

  ll = loglik(theta)
  for _ in range(iters):
    g, tau = theta[:-1], theta[-1]
    z = tau * y - X @ g
    obs = ~cens
    _, lam = log_sf_and_mills(z[cens])
    delta = lam * (lam - z[cens])
    D = np.concatenate([-X, y[:, None]], 1)  # dz/dtheta
    grad = D[obs].T @ (-w[obs] * z[obs]) + D[cens].T @ (-w[cens] * lam)
    grad[-1] += np.sum(w[obs]) / tau
    H = -(D[obs].T * w[obs]) @ D[obs] - (D[cens].T * (w[cens] * delta)) @ D[cens]
    H[-1, -1] -= np.sum(w[obs]) / tau ** 2
    step = np.linalg.lstsq(H, -grad, rcond=None)[0]
    t = 1.0
    while t > 1e-8:
      new = theta + t * step
      if 0 < new[-1] <= 1e4:  # sigma >= 1e-4: identical times within a cell stay finite
        new_ll = loglik(new)
        if new_ll >= ll - 1e-12:
          break
      t /= 2
    else:
      break
    done = abs(new_ll - ll) < 1e-10
    theta, ll = new, new_ll
    if done:
      break
  return theta[:-1] / theta[-1], 1 / theta[-1]


def fit_aft_delay_law(rho, t_grok, censored=None, seed=None, modulus=None, *,
                      n_boot: int = 1000, rng_seed: int = 0) -> dict[str, Any]:
  """ln T_grok = c_p + alpha * rho + sigma * e over every run, censoring included.

  Unlike the cell-median fit it uses every run, also in cells where half or more are
  censored; it assumes the scatter of ln T_grok within a cell is normal with one sigma.

  Returns:
    alpha, alpha_ci, sigma, intercepts (modulus -> c_p), n_runs, n_censored, n_boot_kept,
    method.

  Example:
    >>> import numpy as np
    >>> rho = np.repeat([0.9, 1.0, 1.1, 1.2], 50)
    >>> e = np.random.default_rng(0).normal(size=200)
    >>> t = np.exp(1 + 8 * rho + 0.3 * e)
    >>> out = fit_aft_delay_law(rho, np.minimum(t, 20000), t > 20000, n_boot=0)
    >>> round(out["alpha"]), out["n_censored"] > 50
    (8, True)
  """
  rho, t, cens, seed, modulus = _validate(rho, t_grok, censored, seed, modulus)
  ps = sorted(np.unique(modulus).tolist())
  X = np.stack([rho] + [(modulus == p).astype(float) for p in ps], 1)
  y = np.log(t)
  if (~cens).sum() < 2 or len(np.unique(rho)) < 2:
    raise ValueError("an AFT fit needs two rho values and at least two grokked runs")
  coef, sigma = _aft_mle(X, y, cens, np.ones(len(y)))
  boots = []
  seeds_of = {p: np.unique(seed[modulus == p]) for p in ps}
  memo: dict[bytes, float] = {}  # a replicate depends only on its weights (few seeds: few)
  for draws in seed_draws(list(seeds_of.values()), n_boot, rng_seed):
    w = np.zeros(len(y))
    for p, d in zip(seeds_of, draws):
      picked, counts = np.unique(d, return_counts=True)
      for si, c in zip(picked, counts):
        w[(modulus == p) & (seed == si)] = c
    if (w[~cens] > 0).sum() >= 2 and len(np.unique(rho[w > 0])) >= 2:
      key = w.tobytes()
      if key not in memo:
        memo[key] = _aft_mle(X, y, cens, w)[0][0]
      boots.append(memo[key])
  ci = ([float(v) for v in np.percentile(boots, [2.5, 97.5])] if boots
        else [float("nan"), float("nan")])
  note = _boot_note(len(boots), n_boot)
  if _one_seed(seeds_of.values()):
    ci, note = None, _one_seed_note()
  # a modulus whose largest held norm never grokked: its true times lie above the budget,
  # so the fitted slope can only be steeper than this one
  top = [p for p in ps if cens[(modulus == p) & (rho == rho[modulus == p].max())].all()]
  return dict(alpha=float(coef[0]), alpha_ci=ci, sigma=float(sigma),
              intercepts={str(int(p)): float(c) for p, c in zip(ps, coef[1:])},
              n_runs=int(len(y)), n_censored=int(cens.sum()), **note,
              **({"lower_bound": True, "bound_note": "the largest held norm of p="
                  + ", ".join(str(int(p)) for p in top) + " never grokked: alpha is a lower "
                  "bound"} if top else {}),
              method=AFT_METHOD)
