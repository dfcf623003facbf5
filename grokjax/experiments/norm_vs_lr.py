"""The rho x learning-rate matrix at one modulus (the paper's Table 1), with a free
control per learning rate: how weakly the learning rate matters against the held norm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax.harness import config, flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, eta_update, plan
from grokjax.harness.grids import clamp_phase, free_phase, wc_by_lr, write_tables
from grokjax.harness.session import Session, say
from grokjax.analysis.shape import on_clamp_clock
from grokjax.analysis.stats import cell_summary, fit_arrays, usable
from grokjax.harness.summaries import grok_rule


PRESETS = {
    "paper": dict(config.PAPER, moduli=[59], seeds=16, lrs=[1e-3, 2e-3, 4e-3, 8e-3],
                  rhos=[0.85, 1.00, 1.15, 1.30],
                  budgets={"free": 30000, 0.85: 30000, 1.30: 30000}),
    "quick": dict(config.QUICK, moduli=[47], seeds=4, lrs=[5e-3, 1e-2, 2e-2],
                  rhos=[1.00, 1.05, 1.10, 1.15]),
    "smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[2e-2, 3e-2], rhos=[0.95, 1.10]),
}


def cells(cfg) -> list[Cell]:
  """A free control per learning rate, then every (rho, lr) clamp cell."""
  p, n = cfg.moduli[0], cfg.seeds * len(cfg.lrs)
  return ([Cell(p, n, cfg.budget(None, p), f"free_p{p}")]
          + [Cell(p, n, cfg.budget(r, p), f"clamp_p{p}", rho=r) for r in cfg.rhos])


def add_flags(ap) -> None:
  flags.clamp_flags(ap)


def check(cfg) -> None:
  flags.one_modulus(cfg, "norm_vs_lr")
  flags.some_rhos(cfg)



def norm_vs_lr(sess: Session) -> dict[str, Any]:
  """The rho x learning-rate matrix at one modulus, with a free control per learning rate.

  The held norms are rho * W_c with W_c measured at the first (reference) learning rate,
  so a row of the matrix holds one absolute norm, as in the paper's table.
  """
  from grokjax.analysis import fit
  cfg = sess.cfg
  if len(cfg.moduli) != 1:
    raise ValueError("norm_vs_lr runs at one modulus")
  p = cfg.moduli[0]
  grid = cells(cfg)
  sess.estimate = plan(cfg, grid)
  phases = []
  free = free_phase(sess, p, cfg.lrs, phases)
  eta_update(sess, p, [r for r in free if r["lr"] == cfg.lrs[0]], grid[1:])
  wc_lr = wc_by_lr(free, cfg.lrs)
  wc = wc_lr[float(cfg.lrs[0])]
  say(f"p={p}: W_c = {wc:.2f} at the reference lr {cfg.lrs[0]:g}; per lr "
      + ", ".join(f"{k:g}: {v:.2f}" for k, v in wc_lr.items()))
  clamp = clamp_phase(sess, p, {float(lr): wc for lr in cfg.lrs}, cfg.rhos, cfg.lrs, phases)
  all_rows = write_tables(sess, phases)
  summaries = {(rho, lr): cell_summary([r for r in clamp if r["rho"] == rho and r["lr"] == lr])
               for rho in cfg.rhos for lr in cfg.lrs}
  # A cell whose every run diverged has no grok time and no censoring bound: it is named
  # as diverged and left out of the folds.
  gone = lambda s: s["n"] > 0 and s["n_diverged"] == s["n"]
  diverged_cells = [f"rho {rho:g}, lr {lr:g}" for (rho, lr), s in summaries.items() if gone(s)]
  matrix = {f"{rho:g}": {f"{lr:g}": summaries[rho, lr]["median_t_grok"] for lr in cfg.lrs}
            for rho in cfg.rhos}
  free_cells = {lr: cell_summary([r for r in free if r["lr"] == lr]) for lr in cfg.lrs}
  control = {f"{lr:g}": free_cells[lr]["median_t_grok"] for lr in cfg.lrs}

  def fold(cells):  # (median, budget) of the cells that did not all diverge
    kept = [(summaries[c]["median_t_grok"], cfg.budget(c[0], p)) for c in cells
            if not gone(summaries[c])]
    return fit.fold_change_bounded(*zip(*kept)) if len(kept) >= 2 else \
        dict(value=float("nan"), lower_bound=False)

  fold_rho = {f"{lr:g}": fold([(rho, lr) for rho in cfg.rhos]) for lr in cfg.lrs}
  fold_lr = {f"{rho:g}": fold([(rho, lr) for lr in cfg.lrs]) for rho in cfg.rhos}
  alpha_lr, alpha_clamp = {}, {}
  shifted, before = on_clamp_clock(usable(clamp), cfg.eval_every, cfg.t_int)
  for lr in cfg.lrs:
    rs = [r for r in usable(clamp) if r["lr"] == lr]
    alpha_lr[f"{lr:g}"] = fit.safe(fit.fit_delay_law, *fit_arrays(rs), n_boot=cfg.n_boot)
    rs = [r for r in shifted if r["lr"] == lr]
    alpha_clamp[f"{lr:g}"] = fit.safe(fit.fit_delay_law, *fit_arrays(rs), n_boot=cfg.n_boot)
  # on the clamp's clock (T_grok - t_int): the same folds, cell medians minus t_int
  shift = lambda c: None if c is None else c - cfg.t_int
  fold_clamp = lambda cells: (fit.fold_change_bounded(
      [shift(summaries[c]["median_t_grok"]) for c in cells],
      [cfg.budget(c[0], p) - cfg.t_int for c in cells])
      if len(cells) >= 2 and all(shift(summaries[c]["median_t_grok"]) is None
                                 or shift(summaries[c]["median_t_grok"]) > 0 for c in cells)
      else dict(value=float("nan"), lower_bound=False))
  live = lambda cells: [c for c in cells if not gone(summaries[c])]
  clamp_clock = dict(
      per_lr=alpha_clamp, n_cells_before_clamp=before, t_int=cfg.t_int,
      fold_rho_median=fit.bounded_median([fold_clamp(live([(rho, lr) for rho in cfg.rhos]))
                                          for lr in cfg.lrs]),
      fold_lr_median=fit.bounded_median([fold_clamp(live([(rho, lr) for lr in cfg.lrs]))
                                         for rho in cfg.rhos]))
  result = dict(experiment="norm_vs_lr", p=p, wc=wc, wc_per_lr={f"{k:g}": v for k, v in wc_lr.items()},
                held_norms={f"{rho:g}": rho * wc for rho in cfg.rhos},
                median_t_grok=matrix, free_control=control, fold_across_rho=fold_rho,
                fold_across_lr=fold_lr,
                fold_rho_median=fit.bounded_median(list(fold_rho.values())),
                fold_lr_median=fit.bounded_median(list(fold_lr.values())),
                diverged_cells=diverged_cells,
                free_diverged=[f"{lr:g}" for lr, c in free_cells.items() if gone(c)],
                per_lr=alpha_lr, fit_method=fit.METHOD, **grok_rule(cfg, all_rows),
                clamp_clock=clamp_clock)
  io.write_json(sess.path("fit.json"), result)
  sess.draw(figures)
  say(f"median T_grok (rows rho, columns lr {', '.join(f'{lr:g}' for lr in cfg.lrs)}):")
  text = lambda v, s: "diverged" if gone(s) else "censored" if v is None else int(v)
  for rho in cfg.rhos:
    say(f"  rho {rho:>5g}: " + "  ".join(f"{text(matrix[f'{rho:g}'][f'{lr:g}'], summaries[rho, lr]):>8}"
                                       for lr in cfg.lrs))
  say("  free    : " + "  ".join(f"{text(control[f'{lr:g}'], free_cells[lr]):>8}" for lr in cfg.lrs))
  if diverged_cells:
    say(f"diverged (every run; left out of the folds): {'; '.join(diverged_cells)}")
  say(f"fold change of median T_grok: across rho {fit.format_fold(result['fold_rho_median'])}, "
      f"across lr {fit.format_fold(result['fold_lr_median'])} (medians over the other axis; "
      "'>=': a censored cell at the slow end, so only a lower bound)")
  return result


def rho_lr_matrix(path: str, result: dict[str, Any], runs: list[dict] | None = None):
  """Heat map of median T_grok over rho x learning rate, with the free control row; with
  the runs, each cell also shows its 95 % seed-bootstrap CI."""
  from grokjax.harness import plots
  plt = plots.plt
  rhos = list(result["median_t_grok"])
  lrs = list(result["free_control"])
  rows = [[result["median_t_grok"][r][l] for l in lrs] for r in rhos]
  rows.append([result["free_control"][l] for l in lrs])
  grid = np.array([[np.nan if v is None else v for v in row] for row in rows], float)
  fig, ax = plt.subplots(figsize=(1.6 * len(lrs) + 2.5, 0.7 * len(rows) + 1.8))
  im = ax.imshow(np.log10(grid), cmap="viridis", aspect="auto")
  bright = np.nanmean(np.log10(grid))
  for i, row in enumerate(grid):
    for j, v in enumerate(row):
      arm, rho = ("free", None) if i == len(rhos) else ("clamp", float(rhos[i]))
      cell = [r for r in runs or [] if r["arm"] == arm and np.isclose(r["lr"], float(lrs[j]))
              and (rho is None or np.isclose(r["rho"], rho))]
      ci = plots.median_with_ci(cell)[1] if cell else None
      text = "censored" if np.isnan(v) else f"{v:,.0f}"
      if ci:
        text += f"\n[{ci[0]:,.0f}, {ci[1]:,.0f}]"
      ax.text(j, i, text, ha="center", va="center", fontsize=7,
              color="k" if np.isfinite(v) and np.log10(v) > bright else "w")
  ax.set_xticks(range(len(lrs)), [f"lr {l}" for l in lrs])
  ax.set_yticks(range(len(rows)), [f"rho {r}" for r in rhos] + ["free"])
  fig.colorbar(im, ax=ax, label="log10 median T_grok")
  from grokjax.analysis.fit import format_fold
  # the report's two folds: across rho at the smallest lr, across lr as a median over rows
  first = min(result["fold_across_rho"], key=float)
  ax.set_title(f"p={result['p']}: median T_grok" + (" [95% CI]" if runs else "")
               + f"; fold across rho at lr {first} "
               f"{format_fold(result['fold_across_rho'][first])}, across lr (median over rho) "
               f"{format_fold(result['fold_lr_median'])}", fontsize=8)
  return plots.save(fig, path)


def figures(folder: str) -> list[str]:
  """The rho x lr matrix (fit.json) and, where curves.npz is there, the curves."""
  from grokjax.harness import plots
  return plots.summary_and_curves(folder, "rho_lr_matrix.png", rho_lr_matrix)


EXPERIMENT = registry.Experiment(
    name="norm_vs_lr", run=norm_vs_lr, presets=PRESETS, cells=cells, add_flags=add_flags,
    check=check, figures=figures, output="fit.json", doc=__doc__,
    problem_presets={"sparse_parity": {"paper": dict(lrs=[5e-4, 1e-3, 2e-3]),
                                       "quick": dict(lrs=[5e-4, 1e-3, 2e-3])}})
