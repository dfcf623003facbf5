"""The report's rows on the free-training delay: the natural contraction of free runs
(`grokjax.analysis.contraction`) across the lr x wd grid, and the free-norm delay's rescale
(`grokjax.experiments.free_norm_delay`), each against the authors' per-seed data where they
released the same runs."""

from __future__ import annotations

import numpy as np

from grokjax.analysis import contraction
from grokjax.paper.table import Folder, Row, paper_row, qual_row, verdict


def free_delay_rows(claim: str, rows, reference, n_boot: int) -> list[Row]:
  """The free-training delay across the lr x wd grid: the exponent of median(T_grok - T_mem)
  in lr wd (the paper gives no number; decoupled decay with a constant kappa would give -1)
  and, where the rows have the norm's peak (runs.csv since the column exists), the natural
  contraction's kappa (`natural_rows`); against the authors' per-seed data, the same
  statistics, where given."""
  from grokjax.analysis.contraction import delay_exponent
  from grokjax.paper.reference import as_rows
  theirs = None
  if reference:
    theirs = [r for r in as_rows(reference, "grokfss") if r["p"] == 59
              and abs(r["frac"] - 0.5) < 1e-6 and r["arm"] == "free"]
  quantity = "exponent of median(T_grok - T_mem) in lr x wd (a constant kappa: -1)"
  mine = delay_exponent(rows, n_boot)
  if mine.get("beta") is None:
    return []
  if theirs:
    t = delay_exponent(theirs, n_boot)
    out = [Row(claim, quantity, t.get("beta"), t.get("beta_ci"), mine["beta"], mine["beta_ci"],
               verdict(t.get("beta"), t.get("beta_ci"), mine["beta"], mine["beta_ci"]),
               f"authors' per-seed data (grokfss), the same statistic; {mine['n_cells']} cells")]
  else:
    out = [paper_row(claim, quantity, None, None, mine["beta"], mine["beta_ci"],
                     f"{mine['n_cells']} cells, {mine['n_runs']} grokked runs")]
  if any(r.get("norm_peak") is not None for r in rows):
    out += natural_rows(claim, rows, theirs, n_boot, "free runs, p = 59, fraction 0.50")
  return out


def free_norm_delay_rows(f: Folder, n_boot: int) -> list[Row]:
  """kappa of the free-norm delay, matched pairs and per-run peaks (no paper number)."""
  from grokjax.experiments.free_norm_delay import fit_matched_kappa
  claim = "6 free-norm delay"
  out = []
  rows = [dict(r, scale=float(r["scale"])) for r in f.rows]
  cells = sorted({(r["lr"], r["wd"]) for r in rows})
  for cell in cells + [None]:
    rs = rows if cell is None else [r for r in rows if (r["lr"], r["wd"]) == cell]
    where = "pooled over lr x wd" if cell is None else f"lr {cell[0]:g}, wd {cell[1]:g}"
    m = fit_matched_kappa(rs, n_boot)
    out.append(paper_row(claim, f"kappa (matched pairs), {where}", None, None, m.get("kappa"),
                    m.get("kappa_ci"),
                    f"R^2 {m['r2']:.2f}, {m['n_pairs']} pairs" if m.get("kappa") else
                    m.get("error", "")))
  # median T_grok - T_peak per (lr, wd) cell ~ (lr wd)^beta, over every s
  e = contraction.delay_exponent(rows, n_boot, start="peak")
  v, ci = e.get("beta"), e.get("beta_ci")
  out.append(paper_row(claim, "exponent of the median delay after the peak in lr x wd, every s "
                       "(decoupled decay alone: -1; the paper gives no number)", None, None, v, ci,
                       "the rescale's wait for decoupled decay: what this experiment measures"))
  # The natural law on the unscaled runs; a folder that predates the norm_peak column has
  # V_peak = norm_peak^2 instead.
  unscaled = [dict(r, norm_peak=r.get("norm_peak") or (np.sqrt(r["v_peak"]) if r.get("v_peak")
                                                       else None))
              for r in rows if r["scale"] == 1.0]
  out += natural_rows(claim, unscaled, None, n_boot, "s = 1 runs")
  return out


def natural_rows(claim: str, rows, theirs, n_boot: int, where: str) -> list[Row]:
  """The natural contraction of free runs (`grokjax.analysis.contraction.natural_law`): kappa
  pooled and per (lr, wd) cell, and how well the other cells' kappa predicts each cell's
  delay; with the authors' rows (`theirs`), their same statistic as an interval."""
  from grokjax.analysis import contraction
  law = contraction.natural_law(rows, n_boot)
  if law.get("kappa") is None:
    return []
  mine_ci = law["kappa_ci"]
  cells = "; ".join(f"lr {v['lr']:g} wd {v['wd']:g}: {v['kappa']:.3f}"
                    for v in law["cells"].values())
  note = (f"median over runs of ln(V_peak / V_grok) / (2 lr wd (T_grok - T_peak)), {where}, "
          f"{law['n_runs']} runs; per cell {cells}")
  if theirs:
    tl = contraction.natural_law(theirs, n_boot)
    out = [Row(claim, f"natural contraction kappa, pooled ({where})", tl.get("kappa"),
               tl.get("kappa_ci"), law["kappa"], mine_ci,
               verdict(tl.get("kappa"), tl.get("kappa_ci"), law["kappa"], mine_ci),
               note + "; authors' per-seed data, the same statistic on their evaluation grid")]
  else:
    out = [paper_row(claim, f"natural contraction kappa, pooled ({where})", None, None,
                     law["kappa"], mine_ci, note)]
  if law.get("median_abs_error") is not None:
    loo = law["leave_one_cell_out"].values()
    ratios = ", ".join(f"{v['ratio']:.2f}" for v in loo)
    inside = sum(v["inside"] for v in loo)
    out.append(qual_row(claim, f"a cell's median delay from the other cells' kappa ({where})",
                        "one kappa for every cell (the law's form)",
                        f"{inside} of {len(loo)} cells inside their CI; median absolute "
                        f"error {law['median_abs_error']:.0%}", inside == len(loo),
                        f"predicted / observed per cell: {ratios}"))
  return out
