"""The delay law with and without LayerNorm on one architecture (the paper's attention
model by default): alpha per variant, both laws side by side.
"""

from __future__ import annotations

from typing import Any

from grokjax import fit, flags, io
from grokjax.estimate import plan
from grokjax.grids import clamp_phase, free_phase, write_tables
from grokjax.session import Session, say
from grokjax.stats import cell_summary, checked_wc, delay_fits, grok_rule, print_delay_summary


OUTPUT = "fit.json"


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
  variants of a seed start from the same weights and split (the init ignores LayerNorm).
  """
  cfg = sess.cfg
  from grokjax import plots
  if len(cfg.lrs) != 1:
    raise ValueError("layernorm_ablation holds one learning rate")
  lr = cfg.lrs[0]
  cells = []
  for p in cfg.moduli:
    cells += 2 * ([(p, cfg.seeds, cfg.budget(None, p))] + [(p, cfg.seeds, cfg.budget(r, p))
                                                          for r in cfg.rhos])
  sess.estimate = plan(cfg, cells)
  phases, variants = [], {}
  for ln in (False, True):
    name = "layernorm" if ln else "no_layernorm"
    per_p, clamp_rows = {}, []
    for p in cfg.moduli:
      free = free_phase(sess, p, [lr], phases, layernorm=ln)
      wc = checked_wc(cfg, p, free, f" ({name})")
      say(f"p={p} {name}: free control W_c = {wc:.2f} "
          f"({cell_summary(free)['grok_fraction']:.0%} grokked)")
      rows = clamp_phase(sess, p, {float(lr): wc}, cfg.rhos, [lr], phases, layernorm=ln)
      clamp_rows += rows
      per_p[p] = dict(wc=wc, cells={f"{rho:g}": cell_summary([r for r in rows if r["rho"] == rho])
                                    for rho in cfg.rhos})
    fits = delay_fits(cfg, clamp_rows)
    for p in cfg.moduli:
      per_p[p].update(fits["per_modulus"].get(p, {}))
    variants[name] = dict(per_modulus=per_p, shared=fits["shared"], rows=clamp_rows)
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
  plots.ablation(sess.path("figures", "layernorm_ablation.png"),
                 {k: (v["rows"], v) for k, v in variants.items()})
  plots.curves(sess.path("figures", "curves.png"), phases)
  for name, v in variants.items():
    say(f"--- {name} ({cfg.arch})")
    print_delay_summary(v)
  return result
