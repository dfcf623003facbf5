"""Norm interventions beyond the sustained clamp: one-shot rescales of the norm at t_int
(global to rho * W_c, or x `kick` of one weight group), then free training, against the
sustained hold, all with a matched free control. The paper: one-shot kicks wash out (span
~1.2x), the hold does not (span ~7x over rho 0.90-1.15).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax import config, fit, flags, io, registry
from grokjax.estimate import Cell, eta_update, plan
from grokjax.grids import free_phase, phase_rows, write_tables
from grokjax.optim import NEVER
from grokjax.session import Session, say
from grokjax.stats import cell_summary
from grokjax.summaries import checked_wc, grok_rule
from grokjax.spec import KICK_GROUPS, Runs


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
  figures(sess.out)
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


def figures(folder: str) -> list[str]:
  """The interventions against rho and per weight group (fit.json) and the curves."""
  from grokjax import plots
  return plots.summary_and_curves(folder, "interventions.png", plots.interventions)


EXPERIMENT = registry.Experiment(
    name="norm_interventions", run=norm_interventions, presets=PRESETS, cells=cells,
    add_flags=add_flags, check=check, figures=figures, output="fit.json", doc=__doc__)
