"""The delay law with and without LayerNorm on one architecture (the paper's attention
model by default): alpha per variant, both laws side by side.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from grokjax.harness import config
from grokjax.analysis import fit
from grokjax.harness import flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, plan
from grokjax.harness.grids import clamp_runs, free_runs, phase_rows, write_tables
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import cell_summary
from grokjax.harness.summaries import checked_wc, delay_fits, grok_rule, print_delay_summary
from grokjax.engine.spec import Runs


PRESETS = {
    "paper": dict(config.PAPER, moduli=[59], seeds=16, lrs=[1e-3], rhos=[0.85, 1.00, 1.15, 1.20],
                  arch="transformer"),
    "quick": dict(config.QUICK, moduli=[47], seeds=4, lrs=[1e-2], rhos=[1.00, 1.05, 1.10],
                  arch="transformer"),
    "smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[0.95, 1.10]),
}


def cells(cfg) -> list[Cell]:
  """Per modulus a free control and the clamp cells, each with both variants in one batch."""
  out = []
  for p in cfg.moduli:
    out.append(Cell(p, 2 * cfg.seeds, cfg.budget(None, p), f"free_p{p}"))
    out += [Cell(p, 2 * cfg.seeds, cfg.budget(r, p), f"clamp_p{p}", rho=r) for r in cfg.rhos]
  return out


def add_flags(ap) -> None:
  flags.clamp_flags(ap)
  flags.arch_flags(ap, layernorm=False)  # both variants are trained


def check(cfg) -> None:
  flags.one_lr(cfg, "layernorm_ablation")
  flags.some_rhos(cfg)



def layernorm_ablation(sess: Session) -> dict[str, Any]:
  """The delay law with and without LayerNorm on one architecture.

  For each modulus and each variant: a free control measures that variant's W_c, then
  clamp cells at rho * W_c; alpha is fitted per variant (per modulus and shared). Both
  variants of a seed start from the same weights and split (the init ignores LayerNorm),
  and train in the same batch: one free and one clamp phase per modulus, under
  Task(layernorm="per_run").
  """
  cfg = sess.cfg
  if len(cfg.lrs) != 1:
    raise ValueError("layernorm_ablation holds one learning rate")
  lr = cfg.lrs[0]
  sess.estimate = plan(cfg, cells(cfg))
  phases = []
  names = {False: "no_layernorm", True: "layernorm"}
  per_p = {ln: {} for ln in names}
  clamp_rows = {ln: [] for ln in names}
  for p in cfg.moduli:
    # Both variants in one batch: the Task switches LayerNorm per run.
    task = cfg.task(p, "per_run")
    free = free_runs(cfg, p, [lr])
    runs = Runs.concat(free, dataclasses.replace(free, layernorm=True))
    rows = phase_rows(sess, f"free_p{p}", task, runs, ["free"] * len(runs), [None] * len(runs),
                      phases)
    wc = {}
    for ln, name in names.items():
      mine = [r for r in rows if r["layernorm"] == ln]
      wc[ln] = checked_wc(cfg, p, mine, f" ({name})")
      say(f"p={p} {name}: free control W_c = {wc[ln]:.2f} "
          f"({cell_summary(mine)['grok_fraction']:.0%} grokked)")
    parts = {ln: clamp_runs(cfg, p, {float(lr): wc[ln]}, cfg.rhos, [lr]) for ln in names}
    runs = Runs.concat(parts[False][0], dataclasses.replace(parts[True][0], layernorm=True))
    rho = list(parts[False][1]) + list(parts[True][1])
    rows = phase_rows(sess, f"clamp_p{p}", task, runs, ["clamp"] * len(runs), rho, phases)
    for ln in names:
      mine = [r for r in rows if r["layernorm"] == ln]
      for r in mine:
        r["wc"] = wc[ln]
      clamp_rows[ln] += mine
      per_p[ln][p] = dict(wc=wc[ln], cells={f"{r:g}": cell_summary([x for x in mine if x["rho"] == r])
                                            for r in cfg.rhos})
  variants = {}
  for ln, name in names.items():
    fits = delay_fits(cfg, clamp_rows[ln])
    for p in cfg.moduli:
      per_p[ln][p].update(fits["per_modulus"].get(p, {}))
    variants[name] = dict(per_modulus=per_p[ln], shared=fits["shared"], rows=clamp_rows[ln],
                          clamp_clock=fits["clamp_clock"], shape=fits["shape"])
  all_rows = write_tables(sess, phases)
  result = dict(experiment="layernorm_ablation", arch=cfg.arch, lr=lr, fit_method=fit.METHOD,
                **grok_rule(cfg, all_rows),
                variants={k: {kk: vv for kk, vv in v.items() if kk != "rows"}
                          for k, v in variants.items()})
  a0 = variants["no_layernorm"]["shared"].get("alpha")
  a1 = variants["layernorm"]["shared"].get("alpha")
  if a0 is not None and a1 is not None:
    result["alpha_ratio_ln_over_noln"] = a1 / a0
  io.write_json(sess.path("fit.json"), result)
  sess.draw(figures)
  for name, v in variants.items():
    say(f"--- {name} ({cfg.arch})")
    print_delay_summary(v)
  return result


def figures(folder: str) -> list[str]:
  """Both variants' delay laws side by side (runs.csv, fit.json) and the curves."""
  import os
  from grokjax.harness import plots
  from grokjax.harness.results import load
  res = load(folder, curves=False)
  names = {"no_layernorm": False, "layernorm": True}
  variants = {name: ([r for r in res.runs if r["arm"] == "clamp" and bool(r["layernorm"]) == ln],
                     res.fit["variants"][name]) for name, ln in names.items()}
  return [plots.ablation(os.path.join(folder, "figures", "layernorm_ablation.png"), variants),
          *plots.curves_of(res)]


EXPERIMENT = registry.Experiment(
    name="layernorm_ablation", run=layernorm_ablation, presets=PRESETS, cells=cells,
    add_flags=add_flags, check=check, figures=figures, output="fit.json", doc=__doc__)
