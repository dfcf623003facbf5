"""Free training over moduli x learning rates: W_c per (p, lr), its spread over seeds
and learning rates, its sensitivity to the grok threshold, and W_c = c p^beta.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax import flags, io
from grokjax.estimate import plan
from grokjax.grids import free_phase, write_tables
from grokjax.session import Session, say
from grokjax.stats import cell_summary, critical_norm, cv, grok_rule, wc_by_threshold


OUTPUT = "summary.json"


def add_flags(ap) -> None:
  flags.arch_flags(ap)


def check(cfg) -> None:
  """Nothing beyond the common checks."""



def free_training(sess: Session) -> dict[str, Any]:
  """Free training over moduli x learning rates: W_c, its spread, the power law in p."""
  from grokjax import fit, plots
  cfg = sess.cfg
  sess.estimate = plan(cfg, [(p, cfg.seeds * len(cfg.lrs), cfg.budget(None, p)) for p in cfg.moduli])
  phases, per_p = [], {}
  for p in cfg.moduli:
    rows = free_phase(sess, p, cfg.lrs, phases)
    by_lr = {}
    for lr in cfg.lrs:
      rs = [r for r in rows if r["lr"] == lr]
      by_lr[f"{lr:g}"] = dict(cell_summary(rs), wc=critical_norm(rs),
                              wc_cv_seeds=cv([r["norm_at_grok"] for r in rs]))
    wcs = [v["wc"] for v in by_lr.values()]
    per_p[p] = dict(wc=by_lr[f"{cfg.lrs[0]:g}"]["wc"], per_lr=by_lr, wc_cv_lrs=cv(wcs))
    say(f"p={p}: " + "  ".join(f"lr {k}: W_c {v['wc']:.2f} (CV {v['wc_cv_seeds']:.1%}, "
                               f"{v['grok_fraction']:.0%} grokked, T_grok {v['median_t_grok']})"
                               for k, v in by_lr.items()))
    per_p[p]["wc_by_threshold"] = wc_by_threshold(phases[-1][0], cfg, cfg.lrs[0])
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
  plots.wc_vs_p(sess.path("figures", "wc_vs_p.png"), result)
  plots.curves(sess.path("figures", "curves.png"), phases)
  if power.get("beta") is not None:
    say(f"W_c = {power['c']:.2f} * p^{power['beta']:.3f}  (R^2 = {power['r2']:.3f})")
  else:
    say(f"no power-law fit: {power.get('error')}")
  return result
