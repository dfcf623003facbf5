"""An experiment's numbers from its rows, under its configuration: W_c checked against the
free control's grok fraction, the grok rule, the delay-law fits and their console summary,
and W_c's sensitivity to the grok threshold. The statistics themselves are `grokjax.analysis.stats`
and `grokjax.analysis.fit` (numpy only); this module applies them the way a `Config` asks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax.harness.config import Config
from grokjax.harness.session import say
from grokjax.engine.spec import SweepResult
from grokjax.analysis.stats import cell_summary, critical_norm, fit_arrays, usable


def checked_wc(cfg: Config, p: int, free_rows, what: str = "") -> float:
  """W_c of a free control, refused (RuntimeError, one line) when too few seeds grokked."""
  summary = cell_summary(free_rows)
  frac = summary["grok_fraction"]
  if summary["n"] and summary["n_diverged"] == summary["n"]:
    raise RuntimeError(f"p={p}{what}: every run of the free control diverged, so there is no "
                       "W_c; lower the learning rate")
  if not frac >= cfg.wc_min_grok_fraction:
    raise RuntimeError(
        f"p={p}{what}: only {frac:.0%} of the free control grokked (need "
        f"a fraction {cfg.wc_min_grok_fraction:.3g}), so W_c is not trustworthy; raise the budget "
        "(--steps) or the learning rate, or lower --wc-min-grok-fraction")
  return critical_norm(free_rows)


def grok_rule(cfg: Config, rows) -> dict[str, Any]:
  """The T_grok rule of a result, and how many runs reached the threshold then fell back."""
  return dict(grok_threshold=cfg.grok_threshold, grok_persist=cfg.grok_persist,
              n_fell_back=int(sum(bool(r["fell_back"]) for r in rows)), n_runs=len(rows))


def delay_fits(cfg: Config, clamp_rows) -> dict[str, Any]:
  """Per-modulus and shared fits of ln T_grok = c + alpha * rho (diverged runs excluded),
  on the paper's clock (T_grok from step 0); `clamp_clock` holds the same fits of
  ln(T_grok - t_int) (`grokjax.analysis.shape.on_clamp_clock`), `shape` per modulus the
  local slopes and the comparison of forms on both clocks (three held norms or more)."""
  from grokjax.analysis import fit, shape
  never = shape.unclamped_cells(clamp_rows, cfg.t_int)
  given = bool(clamp_rows)
  clamp_rows = [r for r in clamp_rows if (r["p"], r.get("lr"), r["rho"]) not in never]
  if not clamp_rows:
    error = {"error": "no clamp cell: every run grokked before its clamp started (t_int)"
             if given else "no clamp cell to fit"}
    return dict(per_modulus={}, shared=dict(error), clamp_clock=dict(per_modulus={}, shared=error),
                shape={}, method=fit.METHOD, cells_not_clamped=_names(never))
  out = _law_fits(cfg, clamp_rows)
  shifted, before = shape.on_clamp_clock(usable(clamp_rows), cfg.eval_every, cfg.t_int)
  clamp = _law_fits(cfg, shifted) if shifted else dict(per_modulus={}, shared={
      "error": "no cell grokked after the clamp started"})
  clamp.update(n_cells_before_clamp=before, t_int=cfg.t_int)
  shapes = {}
  for p in sorted({r["p"] for r in usable(clamp_rows)}):
    by_clock = {"step0": [r for r in usable(clamp_rows) if r["p"] == p],
                "clamp": [r for r in shifted if r["p"] == p]}
    if len({r["rho"] for r in by_clock["step0"]}) >= 3:
      shapes[p] = {name: dict(local_slopes=shape.local_slopes(rs, cfg.n_boot),
                              forms=fit.safe(shape.compare_forms, rs))
                   for name, rs in by_clock.items() if len({r["rho"] for r in rs}) >= 3}
  return dict(out, clamp_clock=clamp, shape=shapes, method=fit.METHOD,
              cells_not_clamped=_names(never))


def _names(cells) -> list[str]:
  return [f"p={p} rho {rho:g}" for p, _, rho in sorted(cells, key=str)]


def _law_fits(cfg: Config, clamp_rows) -> dict[str, Any]:
  from grokjax.analysis import fit
  ok = usable(clamp_rows)
  per_p = {}
  for p in sorted({r["p"] for r in ok}):
    rs = [r for r in ok if r["p"] == p]
    per_p[p] = fit.safe(fit.fit_delay_law, *fit_arrays(rs), n_boot=cfg.n_boot)
    per_p[p]["n_diverged"] = sum(1 for r in clamp_rows if r["p"] == p and r["diverged"])
    per_p[p]["aft"] = fit.safe(fit.fit_aft_delay_law, *fit_arrays(rs), n_boot=cfg.n_boot)
  rho, t, cens, seed = fit_arrays(ok)
  moduli = np.array([r["p"] for r in ok])
  shared = fit.safe(fit.fit_shared_delay_law, rho, t, moduli, cens, seed, n_boot=cfg.n_boot)
  shared["aft"] = fit.safe(fit.fit_aft_delay_law, rho, t, cens, seed, moduli, n_boot=cfg.n_boot)
  return dict(per_modulus=per_p, shared=shared)


def print_delay_summary(result) -> None:
  if result.get("cells_not_clamped"):
    say("not clamp cells (every run grokked before its clamp started; left out of the law): "
        + ", ".join(result["cells_not_clamped"]))
  for p, d in result["per_modulus"].items():
    cells = "  ".join(f"rho {k}: {v['grok_fraction']:.0%} grokked, median {v['median_t_grok']}"
                      for k, v in d["cells"].items())
    say(f"p={p}  W_c={d['wc']:.2f}  {cells}")
    if d.get("alpha") is not None:
      say(f"       alpha = {d['alpha']:.2f}{_ci(d)}"
          f"{_ci_warning(d)}  R^2 = {d['r2']:.3f}  ({d['n_censored']} censored, "
          f"{d.get('n_diverged', 0)} diverged runs; {d['n_cells']} cells fitted)")
    else:
      say(f"       no fit: {d.get('error') or 'no clamp cell'}")
    say(aft_line(d.get("aft"), "       "))
  s = result["shared"]
  if s.get("alpha") is not None:
    say(f"shared: alpha = {s['alpha']:.2f}{_ci(s)}"
        f"{_ci_warning(s)}  R^2 = {s['r2']:.3f}")
  else:
    say(f"shared: no fit: {s.get('error')}")
  say(aft_line(s.get("aft"), "shared "))


def aft_line(aft: dict | None, indent: str) -> str:
  if not aft or aft.get("alpha") is None:
    return f"{indent}per-run censored (AFT) fit: {(aft or {}).get('error', 'not made')}"
  return (f"{indent}per-run censored (AFT) fit: alpha {'>=' if aft.get('lower_bound') else '='} "
          f"{aft['alpha']:.2f}{_ci(aft)}{_ci_warning(aft)}, sigma = "
          f"{aft['sigma']:.2f}, {aft['n_censored']} of {aft['n_runs']} runs censored")


def _ci(fit_result: dict) -> str:
  ci = fit_result.get("alpha_ci")
  return " [CI undefined]" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _ci_warning(fit_result: dict) -> str:
  return f" ({fit_result['ci_warning']})" if fit_result.get("ci_warning") else ""


SENSITIVITY_THRESHOLDS = (0.80, 0.90, 0.95)


def wc_by_threshold(res: SweepResult, cfg: Config, lr: float, among=None) -> dict[str, Any]:
  """W_c of the free runs at `lr` (and among the runs `among` marks, default all) with
  T_grok defined at each test-accuracy threshold, and its spread (max - min) / W_c at the
  configured threshold."""
  pick = np.isclose(res.runs.lr, lr) & (True if among is None else np.asarray(among, bool))
  wc = {}
  for th in SENSITIVITY_THRESHOLDS:
    out = res.reduce(cfg.mem_threshold, th, cfg.grok_persist)
    ok = pick & out.grokked & ~out.diverged
    wc[f"{th:g}"] = float(np.median(out.norm_at_grok[ok])) if ok.any() else None
  known = [v for v in wc.values() if v is not None]
  ref = wc.get(f"{cfg.grok_threshold:g}") or (known[0] if known else None)
  spread = (max(known) - min(known)) / ref if len(known) == len(wc) and ref else None
  return dict(wc=wc, spread=spread)
