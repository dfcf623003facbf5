"""The report's rows of the MLP claims (the delay law, the moduli scan, the rho x lr
matrix, free training and W_c, the train fraction, the interventions, the free-norm delay),
each read from its results folder and set against the paper's numbers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from grokjax.analysis import fit
from grokjax.paper import free_delay, numbers as paper
from grokjax.paper.table import (Folder, Row, aft_fit, delay_fit, fmt_ci, grok_fraction,
                                 log_linear_cells, median_t_grok, nearest_index, num, paper_row,
                                 qual_row, r2_of_cell_medians, r2_of_shared_fit, seed_cv,
                                 shared_fit, verdict)
from grokjax.analysis.stats import critical_norm_or_none, finite_or_none, mean_norm, seed_bootstrap

def dense_rho_rows(f: Folder, n_boot: int, reference=None) -> list[Row]:
  """Claims 1 and 6: the delay law over 0.85-1.25, saturation at 1.30, grok fractions.
  With the authors' cells, each cell's median against their dense sweep's, interval
  against interval (the paper prints none of those cells)."""
  from grokjax.paper.reference import as_rows
  theirs = [r for r in as_rows(reference, "denserho")] if reference else []
  claim = "1 dense rho"
  clamp = f.clamp(paper.DENSE_RHO["p"])
  fitted = [r for r in clamp if r["rho"] <= 1.25 + 1e-9]
  out = []
  wc, wc_ci = seed_bootstrap(f.free(), critical_norm_or_none, n_boot)
  out.append(paper_row(claim, "W_c at p=59 (free control)", paper.MODULI_SCAN["wc"][59], None, wc, wc_ci,
                  "paper value from its moduli scan"))
  d = delay_fit(fitted, n_boot)
  out.append(paper_row(claim, "alpha, rho 0.85-1.25", paper.DENSE_RHO["alpha"],
                  paper.DENSE_RHO["alpha_ci"], d.get("alpha"), d.get("alpha_ci")))
  r2, r2_ci = seed_bootstrap(fitted, r2_of_cell_medians, n_boot)
  out.append(paper_row(claim, "R^2 of that fit (cell medians)", paper.DENSE_RHO["r2"], None, r2, r2_ci))
  a = aft_fit(fitted, n_boot)
  out.append(paper_row(claim, "alpha, rho 0.85-1.25, per-run censored (AFT) fit",
                  paper.DENSE_RHO["alpha"], paper.DENSE_RHO["alpha_ci"], a.get("alpha"),
                  a.get("alpha_ci"), a.get("error", f"sigma {num(a.get('sigma'))}")))
  for rho in sorted({r["rho"] for r in clamp}):
    m, ci = seed_bootstrap([r for r in clamp if r["rho"] == rho], median_t_grok, n_boot)
    cell = [r for r in theirs if r["arm"] == "clamp" and r["rho"] is not None
            and np.isclose(r["rho"], rho)]
    if cell:
      tv, tci = seed_bootstrap(cell, median_t_grok, n_boot)
      out.append(Row(claim, f"median T_grok, rho {rho:.2f}", tv, tci, m, ci,
                     verdict(tv, tci, m, ci), "authors' per-seed data (denserho)"))
      continue
    ref = paper.NORM_VS_LR["median"].get(rho)
    out.append(paper_row(claim, f"median T_grok, rho {rho:.2f}", None if ref is None else ref[0], None,
                    m, ci, "paper: Table 1, lr 1e-3" if ref else ""))
  sat = [r for r in clamp if r["rho"] > 1.25 + 1e-9]
  if sat and d.get("alpha") is not None:
    rho_s = sat[0]["rho"]

    def ratio(rows):
      fr = [r for r in rows if r["rho"] <= 1.25 + 1e-9]
      sr = [r for r in rows if r["rho"] > 1.25 + 1e-9]
      m = median_t_grok(sr)
      if m is None:
        return None
      line = log_linear_cells(fr)
      if line is None:
        return None
      slope, icept = line
      return float(m / np.exp(icept + slope * rho_s))

    rt, rt_ci = seed_bootstrap(clamp, ratio, n_boot)
    ok = None if rt_ci is None else (True if rt_ci[1] < 1 else (False if rt_ci[0] >= 1 else None))
    out.append(qual_row(claim, f"saturation: median T_grok at rho {rho_s:.2f} / fit extrapolation",
                     "< 1 (falls below the exponential)", fmt_ci(rt, rt_ci), ok,
                     "" if ok is not None else "CI straddles 1"))
  claim6 = "6 slows, not prevents"
  for rho in sorted({r["rho"] for r in fitted}):
    cell = [r for r in fitted if r["rho"] == rho]
    g = grok_fraction(cell)
    n_ok = sum(r["grokked"] for r in cell)
    out.append(qual_row(claim6, f"grok fraction, rho {rho:.2f} (budget {cell[0]['budget']})",
                     "all grok", f"{g:.0%} ({n_ok}/{len(cell)})", g == 1.0))
  return out


def moduli_scan_rows(f: Folder, n_boot: int) -> list[Row]:
  claim = "2 moduli scan"
  out = []
  for p in sorted({r["p"] for r in f.rows}):
    wc, ci = seed_bootstrap(f.free(p), critical_norm_or_none, n_boot)
    out.append(paper_row(claim, f"W_c, p={p}", paper.MODULI_SCAN["wc"].get(p), None, wc, ci))
  for p in sorted({r["p"] for r in f.rows}):
    d = delay_fit(f.clamp(p), n_boot)
    out.append(paper_row(claim, f"alpha, p={p} (R^2 {num(d.get('r2'), 3)})",
                    paper.MODULI_SCAN["alpha"].get(p), None, d.get("alpha"), d.get("alpha_ci"),
                    d.get("error", "")))
  s = shared_fit(f.clamp(), n_boot)
  out.append(paper_row(claim, "shared alpha", paper.MODULI_SCAN["shared_alpha"],
                  paper.MODULI_SCAN["shared_alpha_ci"], s.get("alpha"), s.get("alpha_ci"),
                  s.get("error", "")))
  r2, r2_ci = seed_bootstrap(f.clamp(), r2_of_shared_fit, n_boot)
  out.append(paper_row(claim, "R^2 of the shared fit", paper.MODULI_SCAN["shared_r2"], None, r2, r2_ci))
  a = aft_fit(f.clamp(), n_boot)
  out.append(paper_row(claim, "shared alpha, per-run censored (AFT) fit", paper.MODULI_SCAN["shared_alpha"],
                  paper.MODULI_SCAN["shared_alpha_ci"], a.get("alpha"), a.get("alpha_ci"),
                  a.get("error", f"sigma {num(a.get('sigma'))}")))
  return out


def norm_vs_lr_rows(f: Folder, n_boot: int) -> list[Row]:
  claim = "3 rho x lr"
  ref = paper.NORM_VS_LR
  lrs = sorted({r["lr"] for r in f.rows})
  rhos = sorted({r["rho"] for r in f.clamp()})
  out = []

  def cell(rows, rho, lr):
    return [r for r in rows if r["arm"] == "clamp" and r["rho"] == rho and np.isclose(r["lr"], lr)]

  for rho in rhos:
    for lr in lrs:
      m, ci = seed_bootstrap(cell(f.rows, rho, lr), median_t_grok, n_boot)
      j = nearest_index(ref["lrs"], lr)
      p_val = ref["median"].get(rho, (None,) * 4)[j] if j is not None else None
      out.append(paper_row(claim, f"median T_grok, rho {rho:.2f}, lr {lr:g}", p_val, None, m, ci))
  for lr in lrs:
    m, ci = seed_bootstrap(f.free(lr=lr), median_t_grok, n_boot)
    j = nearest_index(ref["lrs"], lr)
    out.append(paper_row(claim, f"median T_grok, free, lr {lr:g}", None if j is None else ref["free"][j],
                    None, m, ci))

  def budget_of(rows, rho, lr):
    c = cell(rows, rho, lr)
    return c[0]["budget"] if c else None

  def fold_rho_full(rows):  # at the reference (smallest) lr: slowest / fastest rho cell
    return fit.fold_change_bounded([median_t_grok(cell(rows, rho, lrs[0])) for rho in rhos],
                                   [budget_of(rows, rho, lrs[0]) for rho in rhos])

  def fold_lr_full(rows):  # per rho row, slowest / fastest lr; median over rows
    return fit.bounded_median([fit.fold_change_bounded(
        [median_t_grok(cell(rows, rho, lr)) for lr in lrs],
        [budget_of(rows, rho, lr) for lr in lrs]) for rho in rhos])

  fold_rho = lambda rows: finite_or_none(fold_rho_full(rows)["value"])
  fold_lr = lambda rows: finite_or_none(fold_lr_full(rows)["value"])
  bound_note = lambda full: "ours is a lower bound (a censored cell); " if full["lower_bound"] else ""
  paper_rho = fit.fold_change([ref["median"][rho][0] for rho in ref["median"]])
  paper_lr = float(np.median([fit.fold_change(v) for v in ref["median"].values()]))
  v, ci = seed_bootstrap(f.rows, fold_rho, n_boot)
  out.append(paper_row(claim, f"fold change across rho at lr {lrs[0]:g}", paper_rho, None, v, ci,
                  bound_note(fold_rho_full(f.rows))
                  + f"paper text: ~{ref['fold_rho_text']:g}x; paper value from its Table 1"))
  v, ci = seed_bootstrap(f.rows, fold_lr, n_boot)
  out.append(paper_row(claim, "fold change across lr (median over rho rows)", paper_lr, None, v, ci,
                  bound_note(fold_lr_full(f.rows))
                  + f"paper text: ~{ref['fold_lr_text']:g}x; paper value from its Table 1"))
  return out


def free_training_rows(f: Folder, n_boot: int) -> list[Row]:
  claim = "4 free training"
  out, wcs = [], {}
  for p in sorted({r["p"] for r in f.rows}):
    rows = f.free(p)
    wc, ci = seed_bootstrap(rows, critical_norm_or_none, n_boot)
    wcs[p] = wc
    out.append(paper_row(claim, f"W_c, p={p} ({sum(r['grokked'] for r in rows)}/{len(rows)} grokked)",
                    paper.FREE_TRAINING["wc"].get(p), None, wc, ci,
                    "unlike for like: the paper's number is a mean pooled over train fractions "
                    "0.15-0.65, ours the median at 0.40 (the like-for-like table compares "
                    "fraction 0.40 on both sides)"))
    cvp = seed_cv(rows)
    lo, hi = paper.FREE_TRAINING["cv_range"]
    out.append(qual_row(claim, f"seed CV of the norm at T_grok, p={p}", f"{lo:.0%}-{hi:.0%}",
                     None if cvp is None else f"{cvp:.1%}", None if cvp is None else cvp <= hi,
                     "the paper's CV is across train fractions, ours across seeds"))
  ps = [p for p, w in wcs.items() if w is not None]

  def beta(rows):
    pts = [(p, critical_norm_or_none([r for r in rows if r["p"] == p])) for p in ps]
    pts = [(p, w) for p, w in pts if w is not None]
    return fit.fit_power_law(*zip(*pts))["beta"] if len(pts) >= 2 else None

  v, ci = seed_bootstrap(f.rows, beta, n_boot)
  out.append(paper_row(claim, f"beta of W_c ~ p^beta over p = {', '.join(map(str, ps))}",
                  paper.FREE_TRAINING["beta"], None, v, ci,
                  "the paper's beta fits fraction-pooled means, ours fraction-0.40 medians"))
  return out


def wc_wd_lr_rows(f: Folder, n_boot: int, reference=None) -> list[Row]:
  """W_c per (weight decay, lr) at p = 59, fraction 0.50, and its CV across lr per wd:
  against the paper's CV < 1 % where it gives one (wd 3), else against the abstract's
  1-2 %, and, with the authors' cells, against their own per-seed data's CV."""
  claim = "1 W_c across wd x lr"
  out = []
  ref = paper.WC_WD_LR["wc"]
  lrs = sorted({r["lr"] for r in f.free()})
  for wd in sorted({r["wd"] for r in f.free()}):
    at = [r for r in f.free() if r["wd"] == wd]
    for lr in lrs:
      cell = [r for r in at if r["lr"] == lr]
      wc, ci = seed_bootstrap(cell, mean_norm, n_boot)
      paper_wc = next((v for k, v in ref.get(wd, {}).items() if np.isclose(k, lr)), None)
      out.append(paper_row(claim, f"W_c (mean), wd {wd:g}, lr {lr:g} "
                      f"({sum(r['grokked'] for r in cell)}/{len(cell)} grokked)",
                      paper_wc, None, wc, ci))

    def cv_lr(rs, lrs=lrs):
      wcs = [mean_norm([r for r in rs if r["lr"] == lr]) for lr in lrs]
      return None if None in wcs else float(np.std(wcs) / np.mean(wcs))

    v, ci = seed_bootstrap(at, cv_lr, n_boot)
    quantity = f"CV of W_c across lr {', '.join(f'{x:g}' for x in lrs)}, wd {wd:g}"
    ours = None if v is None else fmt_ci(100 * v, None if ci is None else [100 * c for c in ci]) + " %"
    theirs = _authors_cv(reference, wd, lrs)
    if theirs is not None:  # their own data, by the same estimator: sample against sample
      ok = None if ci is None else ci[0] <= theirs <= ci[1] or abs(v - theirs) <= 0.1 * theirs
      out.append(qual_row(claim, quantity, f"authors' data: {100 * theirs:.2f} %", ours, ok,
                          _cv_note(wd, ci, ok)))
    else:
      cap = paper.WC_WD_LR["cv_max"].get(wd)
      lo, hi = paper.WC_WD_LR["abstract_cv"]
      limit = cap if cap is not None else hi
      holds = None if ci is None else ci[1] <= limit
      out.append(qual_row(claim, quantity, f"< {cap:.0%}" if cap is not None else
                          f"{lo:.0%}-{hi:.0%} (abstract)", ours, holds,
                          "the paper's CV holds" if holds else _cv_note(wd, ci, None)))
  out += free_delay.free_delay_rows(claim, f.free(), reference, n_boot)
  return out


def _authors_cv(reference, wd: float, lrs) -> float | None:
  """CV across lr of the authors' mean norm at T_grok, p = 59, fraction 0.50, this wd."""
  if not reference:
    return None
  means = []
  for lr in lrs:
    cell = [c for c in reference if c.p == 59 and abs(c.frac - 0.5) < 1e-6 and c.arm == "free"
            and np.isclose(c.wd, wd) and np.isclose(c.lr, lr, rtol=1e-4)]
    w = cell[0].norm_at_grok[~cell[0].censored] if cell else []
    if len(w) == 0 or not np.isfinite(w).all():
      return None
    means.append(float(np.mean(w)))
  return float(np.std(means) / np.mean(means))


def _cv_note(wd: float, ci, agrees) -> str:
  cap = paper.WC_WD_LR["cv_max"].get(wd)
  if agrees is not None:
    gap = "" if cap is not None else ("; the abstract's 1-2 % does not hold at this weight "
                                      "decay on either side: the paper's body restricts it "
                                      "to sufficient weight decay")
    return ("the reproduction agrees with the authors' data" if agrees else
            "differs from the authors' data") + gap
  return ("the abstract's 1-2 % does not hold here (the paper's body restricts it to "
          "sufficient weight decay)" if cap is None else "the paper's CV < 1 % does not hold")


def interventions_rows(f: Folder, n_boot: int, reference=None) -> list[Row]:
  """Median T_grok of the control, the one-shot rescales, the kicks and the holds; spans.
  With the authors' cells each row is their per-seed data's same statistic against ours,
  interval against interval; without, the paper's number as a point."""
  from grokjax.paper.reference import as_rows
  claim = "5 interventions"
  ref = paper.INTERVENTIONS
  theirs = as_rows(reference, "normint", hold_arm="hold") if reference else None
  out = []

  def row(quantity, stat, paper_value):
    ours, ci = seed_bootstrap(f.rows, stat, n_boot)
    if theirs:
      tv, tci = seed_bootstrap(theirs, stat, n_boot)
      return Row(claim, quantity, tv, tci, ours, ci, verdict(tv, tci, ours, ci),
                 "authors' per-seed data (normint), the same statistic")
    return paper_row(claim, quantity, paper_value, None, ours, ci)

  pick = lambda rows, arm, **kw: [r for r in rows if r["arm"] == arm
                                  and all(_same(r.get(k), v) for k, v in kw.items())]
  cell_median = lambda arm, **kw: (lambda rs: median_t_grok(pick(rs, arm, **kw)))
  out.append(row("control (free) median T_grok", cell_median("free"), ref["control"]))
  for rho, v in ref["oneshot"].items():
    out.append(row(f"one-shot rescale to {rho:g} W_c at t_int", cell_median("oneshot", rho=rho), v))
  for g, v in ref["kick"].items():
    out.append(row(f"one-shot x0.8 of {g} at t_int", cell_median("kick", group=g), v))
  for rho, v in ref["hold"].items():
    cell = pick(f.rows, "hold", rho=rho)
    if v is None:
      frac = grok_fraction(cell)
      out.append(qual_row(claim, f"hold at {rho:g} W_c: grokked within {ref['budget']:,}",
                       "none", None if frac is None else f"{frac:.0%} of {len(cell)}",
                       None if frac is None else frac < 0.5))
    else:
      out.append(row(f"hold at {rho:g} W_c from t_int", cell_median("hold", rho=rho), v))

  # Each arm against its own experiment's control: what washes out is the arm's effect,
  # whatever the control's own speed (theirs and ours come from different seed draws).
  def relative(rows, arm, **kw):
    m, c = median_t_grok(pick(rows, arm, **kw)), median_t_grok(pick(rows, "free"))
    return None if m is None or c is None else m / c

  for rho, v in ref["oneshot"].items():
    out.append(row(f"one-shot {rho:g} / control",
                   lambda rs, rho=rho: relative(rs, "oneshot", rho=rho), round(v / ref["control"], 3)))
  for g, v in ref["kick"].items():
    out.append(row(f"x0.8 {g} / control", lambda rs, g=g: relative(rs, "kick", group=g),
                   round(v / ref["control"], 3)))

  def span(rows, arm, rhos):
    ms = [median_t_grok(pick(rows, arm, rho=x)) for x in rhos]
    return None if None in ms else max(ms) / min(ms)

  rhos = sorted(ref["oneshot"])
  out.append(row(f"span of one-shot medians, rho {rhos[0]:g}-{rhos[-1]:g}",
                 lambda rs: span(rs, "oneshot", rhos), ref["span_oneshot"]))
  holds = [x for x, t in ref["hold"].items() if t is not None]
  paper_span = max(ref["hold"][x] for x in holds) / min(ref["hold"][x] for x in holds)
  out.append(row(f"span of hold medians, rho {holds[0]:g}-{holds[-1]:g}",
                 lambda rs: span(rs, "hold", holds), round(paper_span, 2)))
  return out


def _same(a, b) -> bool:
  """A row's value against a cell's: held norms compared to float rounding."""
  if isinstance(a, float) and isinstance(b, float):
    return bool(np.isclose(a, b))
  return a == b


def train_fraction_rows(folders: Sequence[Folder], n_boot: int) -> list[Row]:
  claim = "4 train fraction"
  out = []
  for f in folders:
    frac = float(f.config["frac"])
    wc, ci = seed_bootstrap(f.free(), critical_norm_or_none, n_boot)
    ref = {round(k, 2): v for k, v in paper.TRAIN_FRACTION["wc"].items()}.get(round(frac, 2))
    mean, mean_ci = seed_bootstrap(f.free(), mean_norm, n_boot)
    out.append(paper_row(claim, f"W_c (mean, the paper's estimator), p=59, train fraction {frac:.2f}",
                    ref, None, mean, mean_ci, f"median {num(wc)}"))
  pooled = [r for f in folders for r in f.free()]
  fracs = sorted(float(f.config["frac"]) for f in folders)
  v, ci = seed_bootstrap(pooled, mean_norm, n_boot)  # a seed brings its runs of every fraction
  out.append(paper_row(claim, f"W_c pooled over fractions {fracs[0]:.2f}-{fracs[-1]:.2f} (mean: the "
                  "paper's W_c(p) estimator)", paper.FREE_TRAINING["wc"][59], None, v, ci,
                  "the paper pools 0.15-0.65; fractions below 0.30 not run here"))
  return out

