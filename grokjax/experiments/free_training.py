"""Free training over moduli x learning rates (x weight decays with --wds, or x the values
of one per-run hyperparameter with --scan, in one program): W_c per (p, lr, wd or value)
with a seed-bootstrap CI, its spread over seeds and over learning rates (a CV with a CI),
its sensitivity to the grok threshold, W_c = c p^beta, and for a temperature scan
W_c = c T^gamma with a seed-bootstrap CI.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax.harness import config, flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, plan
from grokjax.harness.grids import free_phase, rows_at, write_tables
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import (cell_summary, critical_norm, cv, finite_or_none,
                                   seed_bootstrap, seed_cv)
from grokjax.harness.summaries import grok_rule, wc_by_threshold


PRESETS = {
    "paper": dict(config.PAPER, moduli=[29, 41, 59, 79, 97], seeds=20, lrs=[1e-3], rhos=[]),
    "quick": dict(config.QUICK, moduli=[31, 41, 47], seeds=6, lrs=[5e-3, 1e-2], rhos=[]),
    "smoke": dict(config.SMOKE, moduli=[23, 31], seeds=2, lrs=[3e-2], rhos=[]),
}


def cells(cfg) -> list[Cell]:
  """One free cell per (modulus, weight decay), every --scan value in it; a modulus's
  weight decays are held in memory together."""
  n = cfg.seeds * len(cfg.lrs) * max(1, len(cfg.scan_values))
  return [Cell(p, n, cfg.budget(None, p), f"free_p{p}", wd=wd)
          for p in cfg.moduli for wd in cfg.wds or [cfg.wd]]


def add_flags(ap) -> None:
  flags.arch_flags(ap)
  ap.add_argument("--wds", type=flags.floats("--wds"),
                  help="comma-separated weight decays: W_c per (lr, wd) cell and its CV "
                       "across learning rates at each weight decay")
  flags.scan_flag(ap, "W_c per value (a temperature scan also fits W_c = c T^gamma)")


def check(cfg) -> None:
  """Weight decays of a scan are >= 0 and distinct."""
  if cfg.wds is not None:
    if any(w < 0 for w in cfg.wds) or len(set(cfg.wds)) != len(cfg.wds):
      raise flags.UsageError(f"--wds: weight decays must be distinct and >= 0, got {cfg.wds}")
  if cfg.scan and cfg.wds is not None:
    raise flags.UsageError("--scan: one scan at a time; --wds is another (give one of them)")
  flags.check_scan(cfg)


def _lr_cells(rows, lrs, n_boot: int) -> dict[str, Any]:
  """Per lr: the cell summary, W_c with its seed-bootstrap CI, the seed CV; and the CV
  of W_c across learning rates with a CI (seeds resampled within every lr at once)."""
  by_lr = {}
  for lr in lrs:
    rs = [r for r in rows if r["lr"] == lr]
    wc, wc_ci = seed_bootstrap(rs, lambda x: finite_or_none(critical_norm(x)), n_boot)
    by_lr[f"{lr:g}"] = dict(cell_summary(rs), wc=critical_norm(rs), wc_ci=wc_ci,
                            wc_cv_seeds=seed_cv(rs))

  def cv_lrs(rs):
    wcs = [critical_norm([r for r in rs if r["lr"] == lr]) for lr in lrs]
    return finite_or_none(cv(wcs)) if all(np.isfinite(wcs)) else None

  _, ci = seed_bootstrap(rows, cv_lrs, n_boot) if len(lrs) > 1 else (None, None)
  return dict(per_lr=by_lr, wc_cv_lrs=cv([v["wc"] for v in by_lr.values()]),
              wc_cv_lrs_ci=ci)


def _say_cell(label: str, cell: dict, lrs) -> None:
  say(label + ": " + "  ".join(
      f"lr {k}: W_c {v['wc']:.2f} (CV {v['wc_cv_seeds']:.1%}, {v['grok_fraction']:.0%} "
      f"grokked, T_grok {v['median_t_grok']})" for k, v in cell["per_lr"].items())
      + (f"  CV across lr {cell['wc_cv_lrs']:.1%}" if len(lrs) > 1 else ""))


def scan_power_law(rows, axis: str, values, lr: float, n_boot: int) -> dict[str, Any]:
  """W_c = c v^gamma over the scanned values at `lr` (least squares in log-log), gamma's
  95 % CI from seeds resampled with replacement (a seed keeps its runs at every value: the
  same initial weights and split), and W_c / v^gamma per value (constant if the law holds)."""
  from grokjax.analysis import fit
  rows = [r for r in rows if np.isclose(r["lr"], lr)]

  def wcs(rs):
    return np.array([critical_norm(rows_at(rs, axis, v)) for v in values], float)

  def gamma(rs):
    w = wcs(rs)
    ok = np.isfinite(w)
    if ok.sum() < 2:
      return None
    return fit.fit_power_law(np.array(values, float)[ok], w[ok])["beta"]

  w = wcs(rows)
  ok = np.isfinite(w)
  out = fit.safe(fit.fit_power_law, np.array(values, float)[ok], w[ok])
  if "error" in out:
    return out
  _, ci = seed_bootstrap(rows, gamma, n_boot)
  return dict(gamma=out["beta"], gamma_ci=ci, c=out["c"], r2=out["r2"], n=out["n"], lr=lr,
              wc_over_power={f"{v:g}": float(x / v ** out["beta"])
                             for v, x, k in zip(values, w, ok) if k})


def free_training(sess: Session) -> dict[str, Any]:
  """Free training over moduli x learning rates: W_c, its spread, the power law in p."""
  from grokjax.analysis import fit
  cfg = sess.cfg
  wds = cfg.wds or [None]  # None: the configuration's one weight decay
  axis = cfg.scan_axis
  sess.estimate = plan(cfg, cells(cfg))
  phases, per_p = [], {}
  for p in cfg.moduli:
    per_wd, per_value = {}, {}
    for wd in wds:
      rows = free_phase(sess, p, cfg.lrs, phases, wd)
      if axis:  # every value trained in one program: a cell per value
        for v in cfg.scan_values:
          cell = per_value[f"{v:g}"] = _lr_cells(rows_at(rows, axis, v), cfg.lrs, cfg.n_boot)
          _say_cell(f"p={p} {axis} {v:g}", cell, cfg.lrs)
        continue
      cell = per_wd[f"{cfg.wd if wd is None else wd:g}"] = _lr_cells(rows, cfg.lrs, cfg.n_boot)
      _say_cell(f"p={p}" + ("" if wd is None else f" wd {wd:g}"), cell, cfg.lrs)
    # the modulus's headline W_c: at the configured weight decay (or the scanned value's
    # home) when the scan has it, else at its first value
    home = f"{cfg.scan_home:g}" if axis else f"{cfg.wd:g}"
    cells_ = per_value or per_wd
    first = cells_.get(home, next(iter(cells_.values())))
    per_p[p] = dict(wc=first["per_lr"][f"{cfg.lrs[0]:g}"]["wc"], per_lr=first["per_lr"],
                    wc_cv_lrs=first["wc_cv_lrs"], wc_cv_lrs_ci=first["wc_cv_lrs_ci"])
    if cfg.wds is not None:
      per_p[p]["per_wd"] = per_wd
    first_phase = next(res for res, rs in phases if rs[0]["p"] == p
                       and (cfg.wds is None or cfg.wd not in cfg.wds or rs[0]["wd"] == cfg.wd))
    among = None
    if axis:
      per_p[p]["scan"] = dict(axis=axis, home=home, per_value=per_value)
      among = np.isclose(getattr(first_phase.runs, axis), float(per_p[p]["scan"]["home"]))
      if axis == "temperature":
        law = per_p[p]["scan"]["power_law"] = scan_power_law(
            rows, axis, cfg.scan_values, cfg.lrs[0], cfg.n_boot)
        if "gamma" in law:
          ci = law["gamma_ci"]
          say(f"       W_c = {law['c']:.2f} * T^{law['gamma']:.3f}"
              + (f" [95 % CI {ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f" (lr {law['lr']:g})")
    per_p[p]["wc_by_threshold"] = wc_by_threshold(first_phase, cfg, cfg.lrs[0], among)
    th = per_p[p]["wc_by_threshold"]
    say("       W_c at test-accuracy thresholds " + ", ".join(
        f"{k}: {'-' if v is None else f'{v:.2f}'}" for k, v in th["wc"].items())
        + (f" (spread {th['spread']:.1%} of W_c)" if th["spread"] is not None else ""))
  all_rows = write_tables(sess, phases)
  ps = [p for p in cfg.moduli if np.isfinite(per_p[p]["wc"])]
  power = fit.safe(fit.fit_power_law, np.array(ps, float), np.array([per_p[p]["wc"] for p in ps]))
  result = dict(experiment="free_training", lr=cfg.lrs[0], per_modulus=per_p, power_law=power,
                **grok_rule(cfg, all_rows))
  io.write_json(sess.path("summary.json"), result)
  sess.draw(figures)
  if power.get("beta") is not None:
    ci = power.get("beta_ci")
    say(f"W_c = {power['c']:.2f} * p^{power['beta']:.3f}"
        + (f" [95 % CI {ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f"  (R^2 = {power['r2']:.3f})")
  else:
    say(f"no power-law fit: {power.get('error')}")
  return result


def figures(folder: str) -> list[str]:
  """W_c against p with CIs (runs.csv, summary.json; with two moduli or more), W_c against
  the weight decay for a --wds scan, and the curves."""
  import os
  from grokjax.harness import plots
  from grokjax.harness.results import load
  res = load(folder, curves=False)
  out = []
  known = [p for p, v in res.fit["per_modulus"].items() if v.get("wc") is not None]
  if len(known) > 1:  # one modulus with a W_c (a train-fraction or wd scan): no line
    out.append(plots.wc_vs_p(os.path.join(folder, "figures", "wc_vs_p.png"), res.fit, res.runs))
  if res.config.get("wds") is not None:
    out.append(plots.wc_vs_wd(os.path.join(folder, "figures", "wc_vs_wd.png"), res.fit))
  if res.config.get("scan"):
    axis = next(iter(res.config["scan"]))
    out.append(plots.wc_vs_wd(os.path.join(folder, "figures", f"wc_vs_{axis}.png"), res.fit,
                              scan=True))
  return out + plots.curves_of(res)


EXPERIMENT = registry.Experiment(
    name="free_training", run=free_training, presets=PRESETS, cells=cells, add_flags=add_flags,
    check=check, figures=figures, output="summary.json", doc=__doc__,
    problem_presets={"sparse_parity": {"paper": dict(lrs=[1e-3, 5e-4, 2e-3]),
                                       "quick": dict(lrs=[1e-3, 5e-4, 2e-3])}})
