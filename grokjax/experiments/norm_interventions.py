"""Norm interventions beyond the sustained clamp: one-shot rescales of the norm at t_int
(global to rho * W_c, or x `kick` of one weight group), then free training, against the
sustained hold, all with a matched free control. The paper: one-shot kicks wash out (span
~1.2x), the hold does not (span ~7x over rho 0.90-1.15).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax.harness import config
from grokjax.analysis import fit
from grokjax.harness import flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, eta_update, plan
from grokjax.harness.grids import free_phase, phase_rows, write_tables
from grokjax.engine.optim import NEVER
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import cell_summary
from grokjax.harness.summaries import checked_wc, grok_rule
from grokjax.engine.spec import KICK_GROUPS, Runs


PRESETS = {
    "paper": dict(config.PAPER, moduli=[59], seeds=16, lrs=[1e-3],
                  rhos=[0.70, 0.85, 1.00, 1.15, 1.30], hold_rhos=[0.90, 1.00, 1.15, 1.30],
                  budgets={"free": 20000}),
    "quick": dict(config.QUICK, moduli=[47], seeds=6, lrs=[1e-2],
                  rhos=[0.70, 0.85, 1.00, 1.15, 1.30], hold_rhos=[0.90, 1.00, 1.15, 1.30],
                  budgets={"free": 16000}),
    "smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[0.85, 1.15],
                  hold_rhos=[0.95, 1.10]),
}


def arms(cfg) -> list[tuple[str, float | None, str]]:
  """(arm, rho, weight group) of every intervention: one-shot rescales, kicks, holds."""
  return ([("oneshot", r, "all") for r in cfg.rhos] + [("kick", None, g) for g in KICK_GROUPS]
          + [("hold", r, "all") for r in cfg.hold_rhos or []])


def cells(cfg) -> list[Cell]:
  """The free control, then one cell per intervention, all with the control's budget."""
  p = cfg.moduli[0]
  budget = cfg.budget(None, p)
  return ([Cell(p, cfg.seeds, budget, f"free_p{p}")]
          + [Cell(p, cfg.seeds, budget, f"interventions_p{p}", rho=rho if arm == "hold" else None)
             for arm, rho, _ in arms(cfg)])


def add_flags(ap) -> None:
  flags.clamp_flags(ap)
  ap.add_argument("--hold-rhos", type=flags.floats("--hold-rhos"),
                  help="sustained holds rho (--rhos are the one-shot rescales)")
  ap.add_argument("--kick", type=flags.number_in("--kick", 0, None, False),
                  help="one-shot factor of a single weight group at t_int (default 0.8)")


def check(cfg) -> None:
  flags.one_lr(cfg, "norm_interventions")
  flags.one_modulus(cfg, "norm_interventions")
  flags.some_rhos(cfg)
  budget = min(cfg.budget(None, p) for p in cfg.moduli)  # every arm acts at t_int
  if cfg.t_int >= budget:
    raise flags.UsageError(f"--t-int: the interventions would start at step {cfg.t_int:,}, at "
                           f"or past the budget {budget:,}")



def norm_interventions(sess: Session) -> dict[str, Any]:
  """Free control, one-shot global rescales, one-shot group kicks and sustained holds."""
  cfg = sess.cfg
  if len(cfg.moduli) != 1 or len(cfg.lrs) != 1:
    raise ValueError("norm_interventions runs at one modulus and one learning rate")
  p, lr = cfg.moduli[0], cfg.lrs[0]
  budget = cfg.budget(None, p)
  grid = cells(cfg)
  sess.estimate = plan(cfg, grid)
  phases: list = []
  free = free_phase(sess, p, [lr], phases)
  wc = checked_wc(cfg, p, free)
  control = cell_summary(free)
  say(f"p={p}: free control W_c = {wc:.2f}, median T_grok {control['median_t_grok']}")
  eta_update(sess, p, free, grid[1:])

  grid = [(arm, rho, group, s) for arm, rho, group in arms(cfg) for s in range(cfg.seeds)]
  arm, rho, group, seed = (list(c) for c in zip(*grid))
  target = np.array([np.nan if r is None else r * wc for r in rho])
  held = np.array([a in ("oneshot", "hold") for a in arm])
  runs = Runs(np.array(seed), lr, cfg.wd, target, np.where(held, cfg.t_int, NEVER), budget,
              t_stop=np.array([cfg.t_int if a == "oneshot" else NEVER for a in arm]),
              kick=np.array([cfg.kick if a == "kick" else 1.0 for a in arm]),
              t_kick=np.array([cfg.t_int if a == "kick" else NEVER for a in arm]),
              kick_group=np.array([KICK_GROUPS.index(g) for g in group]))
  per_run = [dict(intervention=a, group=g if a == "kick" else None,
                  factor=cfg.kick if a == "kick" else None) for a, g in zip(arm, group)]
  rows = phase_rows(sess, f"interventions_p{p}", cfg.task(p), runs, arm, rho, phases, per_run)
  for r in rows:
    r["wc"] = wc
  all_rows = write_tables(sess, phases)

  def summary(pick):
    return cell_summary([r for r in rows if pick(r)])

  oneshot = {f"{x:g}": summary(lambda r, x=x: r["arm"] == "oneshot" and r["rho"] == x)
             for x in cfg.rhos}
  kicks = {g: summary(lambda r, g=g: r["arm"] == "kick" and r["group"] == g) for g in KICK_GROUPS}
  hold = {f"{x:g}": summary(lambda r, x=x: r["arm"] == "hold" and r["rho"] == x)
          for x in cfg.hold_rhos}
  span = lambda cells_: fit.fold_change_bounded([c["median_t_grok"] for c in cells_.values()],
                                                [budget] * len(cells_))
  result = dict(experiment="norm_interventions", p=p, lr=lr, wc=wc, t_int=cfg.t_int,
                kick_factor=cfg.kick, budget=budget, control=control, oneshot=oneshot,
                kick=kicks, hold=hold, span_oneshot=span(oneshot), span_hold=span(hold),
                **grok_rule(cfg, all_rows))
  io.write_json(sess.path("fit.json"), result)
  sess.draw(figures)
  fmt = lambda c: f"{c['grok_fraction']:.0%} grokked, median {c['median_t_grok']}"
  say(f"control (free): {fmt(control)}")
  for name, group_cells in (("one-shot rescale to rho W_c at t_int", oneshot),
                            (f"one-shot x{cfg.kick:g} of one group at t_int", kicks),
                            ("sustained hold at rho W_c from t_int", hold)):
    say(f"{name}:")
    for k, c in group_cells.items():
      say(f"  {k:>9}: {fmt(c)}")
  say(f"span of median T_grok: one-shot {fit.format_fold(result['span_oneshot'])} "
      f"(rho {cfg.rhos[0]:g}-{cfg.rhos[-1]:g}) against sustained "
      f"{fit.format_fold(result['span_hold'])} (rho {cfg.hold_rhos[0]:g}-{cfg.hold_rhos[-1]:g})")
  return result


def interventions_figure(path: str, result: dict[str, Any], rows: list[dict] | None = None):
  """Left: median T_grok of one-shot rescales and sustained holds against rho, with the
  free control's median as a line. Right: the one-shot kicks of single weight groups
  (x kick_factor at t_int), one column each. Log T_grok axes; with the runs `rows`, every
  median carries its 95 % seed-bootstrap CI."""
  from grokjax.harness import plots
  plt = plots.plt
  fig, (ax, axk) = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True,
                                gridspec_kw=dict(width_ratios=[2.2, 1]))

  def point(a, x, key, rho=None, group=None, **style):
    """One median with its CI (from rows) at x; a median beyond the budget as a triangle."""
    cell = [r for r in rows or [] if r["arm"] == key and (rho is None or r["rho"] == rho)
            and (group is None or r.get("group") == group)]
    med, ci = plots.median_with_ci(cell) if cell else (None, None)
    if med is None:
      return
    a.errorbar([x], [med], yerr=None if ci is None else [[med - ci[0]], [ci[1] - med]],
               capsize=3, **style)

  control = result["control"]["median_t_grok"]
  for key, label, color in (("oneshot", "one-shot rescale to rho W_c at t_int, then free", "C0"),
                            ("hold", "sustained hold at rho W_c from t_int", "C3")):
    xs = [float(k) for k, c in result[key].items() if c["median_t_grok"] is not None]
    ys = [c["median_t_grok"] for c in result[key].values() if c["median_t_grok"] is not None]
    ax.plot(xs, ys, "o-", color=color, label=label)
    for x in xs:
      point(ax, x, key, rho=x, fmt="none", ecolor=color)
    cens = [float(k) for k, c in result[key].items() if c["median_t_grok"] is None]
    if cens:
      ax.plot(cens, [result["budget"]] * len(cens), "^", color=color, mfc="none",
              label=f"{key}: median beyond the budget {result['budget']:,}")
  for a in (ax, axk):
    if control is not None:
      a.axhline(control, color="k", ls=":", lw=1, label="free control (median)")
  groups = list(result["kick"])
  for j, g in enumerate(groups):
    y = result["kick"][g]["median_t_grok"]
    axk.plot([j], [np.nan if y is None else y], "s", color="C2",
             label=f"one-shot x{result['kick_factor']:g} of one group" if j == 0 else None)
    point(axk, j, "kick", group=g, fmt="none", ecolor="C2")
  axk.set_xticks(range(len(groups)), groups, rotation=20, fontsize=8)
  axk.set_xlim(-0.6, len(groups) - 0.4)
  axk.set_xlabel("weight group kicked at t_int")
  ax.set_yscale("log")
  plots.plain_log_axis(ax.yaxis)
  ax.tick_params(axis="y", which="minor", labelsize=7)
  ax.set_xlabel("rho (norm in units of W_c)")
  ax.set_ylabel("median T_grok (steps, log)" + (", 95% CI" if rows else ""))
  ax.set_title(f"p={result['p']}: one-shot span {fit.format_fold(result['span_oneshot'])}, "
               f"sustained span {fit.format_fold(result['span_hold'])}", fontsize=9)
  ax.legend(fontsize=7)
  axk.legend(fontsize=7)
  return plots.save(fig, path)


def figures(folder: str) -> list[str]:
  """The interventions against rho and per weight group (fit.json) and the curves."""
  from grokjax.harness import plots
  return plots.summary_and_curves(folder, "interventions.png", interventions_figure)


EXPERIMENT = registry.Experiment(
    name="norm_interventions", run=norm_interventions, presets=PRESETS, cells=cells,
    add_flags=add_flags, check=check, figures=figures, output="fit.json", doc=__doc__)
