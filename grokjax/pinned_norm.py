"""The pinned-norm experiment: per modulus a free control (W_c), then clamp cells at
rho * W_c from t_int on; the delay law ln T_grok = c + alpha * rho per modulus and shared.
"""

from __future__ import annotations

import os
from typing import Any

from grokjax import flags, io
from grokjax.estimate import eta_update, plan
from grokjax.grids import clamp_phase, free_phase, load_wc, wc_source_mismatch, write_tables
from grokjax.session import Session, say
from grokjax.stats import cell_summary, checked_wc, cv, delay_fits, grok_rule, print_delay_summary


OUTPUT = "fit.json"


def add_flags(ap) -> None:
  flags.clamp_flags(ap)
  flags.arch_flags(ap)
  ap.add_argument("--wc-from", help="reuse W_c from a free_training or pinned_norm folder")


def check(cfg) -> None:
  if cfg.wc_from and not os.path.isdir(cfg.wc_from):
    raise flags.UsageError(f"--wc-from: {cfg.wc_from!r} is not a folder")
  mismatch = cfg.wc_from and wc_source_mismatch(cfg, cfg.wc_from)
  if mismatch:
    raise flags.UsageError(f"--wc-from: {mismatch}; its W_c is not this configuration's")
  flags.one_lr(cfg, "pinned_norm")
  flags.some_rhos(cfg)



def pinned_norm(sess: Session) -> dict[str, Any]:
  """Free control (W_c) then clamp cells per modulus; delay-law fits per modulus and shared."""
  from grokjax import plots
  cfg = sess.cfg
  if len(cfg.lrs) != 1:
    raise ValueError("pinned_norm holds one learning rate; use norm_vs_lr for several")
  lr = cfg.lrs[0]
  wc_given = load_wc(cfg.wc_from) if cfg.wc_from else {}
  cells = []
  for p in cfg.moduli:
    if p not in wc_given:
      cells.append((p, cfg.seeds, cfg.budget(None, p)))
    cells += [(p, cfg.seeds, cfg.budget(r, p)) for r in cfg.rhos]
  sess.estimate = plan(cfg, cells)
  phases, per_p, clamp_rows = [], {}, []
  for i, p in enumerate(cfg.moduli):
    if p in wc_given:
      wc = wc_given[p]
      say(f"p={p}: W_c = {wc:.2f} from {cfg.wc_from}")
    else:
      free = free_phase(sess, p, [lr], phases)
      wc = checked_wc(cfg, p, free)
      s = cell_summary(free)
      say(f"p={p}: free control W_c = {wc:.2f} (CV {cv([r['norm_at_grok'] for r in free]):.1%}, "
          f"{s['grok_fraction']:.0%} grokked, median T_grok {s['median_t_grok']})")
      later = [c for c in cells if c[0] in cfg.moduli[i + 1:]]
      eta_update(sess, p, free, [(p, cfg.seeds, cfg.budget(r, p)) for r in cfg.rhos] + later)
    rows = clamp_phase(sess, p, {float(lr): wc}, cfg.rhos, [lr], phases)
    clamp_rows += rows
    per_p[p] = dict(wc=wc, cells={f"{rho:g}": cell_summary([r for r in rows if r["rho"] == rho])
                                  for rho in cfg.rhos})
  all_rows = write_tables(sess, phases)
  fits = delay_fits(cfg, clamp_rows)
  fits["shared"]["n_diverged"] = sum(1 for r in clamp_rows if r["diverged"])
  for p in cfg.moduli:
    per_p[p].update(fits["per_modulus"].get(p, {}))
  result = dict(experiment="pinned_norm", lr=lr, per_modulus=per_p, shared=fits["shared"],
                fit_method=fits["method"], **grok_rule(cfg, all_rows))
  io.write_json(sess.path("fit.json"), result)
  plots.delay_law(sess.path("figures", "delay_law.png"), clamp_rows, result)
  plots.curves(sess.path("figures", "curves.png"), phases)
  print_delay_summary(result)
  return result
