"""Sparse parity: the paper's second, non-Fourier problem, every row the authors report.

One experiment, four questions, all at n bits with k relevant (default n = 30, k = 3):

- free training at the reference (m, lr, weight decay): T_grok, W_c and its seed CV;
- W_c against the number of training examples m (the authors: it moves with m, unlike
  modular addition's W_c against the train fraction);
- clamps at rho * W_c (the authors: rho 1.30 slows grokking ~2.5x, rho 0.90 does not speed
  it up);
- free training over weight decays (norm at grok falls as decay grows; the largest never
  groks) and over learning rates (T_grok ~ 1/lr at nearly one norm).

The free runs of one m share one phase (one compiled program): every (lr, wd) variant is
a per-run hyperparameter.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from grokjax.harness import config, flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, plan
from grokjax.harness.grids import clamp_runs, phase_rows, write_tables
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import cell_summary, critical_norm, cv, seed_cv
from grokjax.harness.summaries import checked_wc, grok_rule
from grokjax.engine.spec import Runs


# What the paper reports for sparse parity (arXiv:2606.13753; n = 30, k = 3, MLP
# n -> 512 -> 2, lr 1e-3, weight decay 1, 16 seeds, 50k budget; SPEC.md and the authors'
# text), printed beside ours; nothing is fitted or decided from it. None: never groks.
AUTHORS = dict(n=30, k=3, m=1000, free_t_grok=2647.5, wc=20.6, wc_cv=0.029,
               wc_by_m={600: 16.9, 1000: 20.6, 1500: 23.4},
               slowdown={1.30: 2.47, 0.90: 1.01},
               wc_by_wd={0.3: 26.7, 0.5: 23.6, 1.0: 20.8, 2.0: 17.6, 3.0: 15.7, 5.0: None},
               t_grok_by_lr={5e-4: 6637, 1e-3: 3220, 2e-3: 1763}, wc_cv_across_lr=0.03)

_SCANS = dict(problem="sparse_parity", lrs=[1e-3, 5e-4, 2e-3],
              wds=[1.0, 0.3, 0.5, 2.0, 3.0, 5.0], train_sizes=[600, 1000, 1500])
PRESETS = {
    "paper": dict(config.PROBLEM_PRESETS["sparse_parity"]["paper"], **_SCANS),
    "quick": dict(config.PROBLEM_PRESETS["sparse_parity"]["quick"], **_SCANS),
    "smoke": dict(config.PROBLEM_PRESETS["sparse_parity"]["smoke"], problem="sparse_parity:k=2",
                  lrs=[1e-2, 2e-2], wds=[1.0, 3.0], train_sizes=[200, 300], rhos=[1.3]),
}


def _variants(cfg) -> list[tuple[float, float]]:
  """(lr, wd) of the free runs at the reference m: the reference, the lr scan, the wd scan."""
  lr0, wd0 = cfg.lrs[0], cfg.wd
  return ([(lr0, wd0)] + [(lr, wd0) for lr in cfg.lrs[1:]]
          + [(lr0, wd) for wd in (cfg.wds or []) if wd != wd0])


def _other_sizes(cfg) -> list[int]:
  m0 = cfg.task(cfg.moduli[0]).n_train
  return [m for m in (cfg.train_sizes or []) if m != m0]


def cells(cfg) -> list[Cell]:
  """The free variants at the reference m, a free cell per other m, the clamp cells."""
  n = cfg.moduli[0]
  m0, budget = cfg.task(n).n_train, cfg.budget(None, n)
  return ([Cell(n, cfg.seeds * len(_variants(cfg)), budget, f"free_m{m0}")]
          + [Cell(n, cfg.seeds, budget, f"free_m{m}", train_size=m) for m in _other_sizes(cfg)]
          + [Cell(n, cfg.seeds, cfg.budget(r, n), f"clamp_m{m0}", rho=r) for r in cfg.rhos])


def add_flags(ap) -> None:
  flags.clamp_flags(ap)
  ap.add_argument("--wds", type=flags.floats("--wds"),
                  help="weight decays of the free scan (--wd is the reference)")
  ap.add_argument("--train-sizes", type=flags.ints("--train-sizes", 1),
                  help="training-set sizes m of the W_c(m) scan")


def check(cfg) -> None:
  flags.one_modulus(cfg, "sparse_parity")



def _cell(rows) -> dict[str, Any]:
  """A cell's grok fraction and median T_grok, its W_c (median norm at grok) and CV."""
  return dict(cell_summary(rows), wc=critical_norm(rows),
              wc_cv_seeds=seed_cv(rows))


def sparse_parity(sess: Session) -> dict[str, Any]:
  """Free variants (lr, wd) at the reference m, free runs at the other m, clamp cells."""
  cfg = sess.cfg
  if len(cfg.moduli) != 1:
    raise ValueError("sparse_parity runs at one input size n (--moduli)")
  n, lr0, wd0 = cfg.moduli[0], cfg.lrs[0], cfg.wd
  m0 = cfg.task(n).n_train
  sizes, variants = _other_sizes(cfg), _variants(cfg)
  budget = cfg.budget(None, n)
  sess.estimate = plan(cfg, cells(cfg))

  phases: list = []
  seeds = np.tile(np.arange(cfg.seeds), len(variants))
  lr = np.repeat([v[0] for v in variants], cfg.seeds)
  wd = np.repeat([v[1] for v in variants], cfg.seeds)
  runs = Runs.free(seeds, lr, wd, budget)
  free = phase_rows(sess, f"free_m{m0}", cfg.task(n), runs, ["free"] * len(runs),
                     [None] * len(runs), phases, [dict(m=m0)] * len(runs))
  ref = [r for r in free if r["lr"] == lr0 and r["wd"] == wd0]
  wc = checked_wc(cfg, n, ref, f" (m={m0})")
  control = _cell(ref)
  say(f"n={n} m={m0}: free W_c = {wc:.2f} (CV {control['wc_cv_seeds']:.1%}, "
      f"{control['grok_fraction']:.0%} grokked, median T_grok {control['median_t_grok']})")

  by_m = {str(m0): control}  # sorted by m below
  for m in sizes:
    task = dataclasses.replace(cfg.task(n), train_size=m)
    rs = phase_rows(sess, f"free_m{m}", task, Runs.free(np.arange(cfg.seeds), lr0, wd0, budget),
                     ["free"] * cfg.seeds, [None] * cfg.seeds, phases, [dict(m=m)] * cfg.seeds)
    by_m[str(m)] = _cell(rs)
    say(f"n={n} m={m}: free W_c = {by_m[str(m)]['wc']:.2f}, median T_grok "
        f"{by_m[str(m)]['median_t_grok']}")

  by_m = {k: by_m[k] for k in sorted(by_m, key=int)}
  clamp = []
  if cfg.rhos:
    cr, rho = clamp_runs(cfg, n, {float(lr0): wc}, cfg.rhos, [lr0])
    clamp = phase_rows(sess, f"clamp_m{m0}", cfg.task(n), cr, ["clamp"] * len(cr), list(rho),
                        phases, [dict(m=m0, wc=wc)] * len(cr))
  all_rows = write_tables(sess, phases)

  t_free = control["median_t_grok"]
  by_rho = {}
  for rho in cfg.rhos:
    s = cell_summary([r for r in clamp if r["rho"] == rho])
    s["slowdown"] = slowdown(s["median_t_grok"], t_free, cfg.budget(rho, n))
    by_rho[f"{rho:g}"] = s
  by_wd = {f"{w:g}": _cell([r for r in free if r["lr"] == lr0 and r["wd"] == w])
           for w in sorted({v[1] for v in variants})}
  by_lr = {f"{l:g}": _cell([r for r in free if r["lr"] == l and r["wd"] == wd0])
           for l in sorted({v[0] for v in variants})}
  wc_lrs = [c["wc"] for c in by_lr.values()]
  result = dict(experiment="sparse_parity", problem=cfg.problem, n=n, m=m0, lr=lr0, wd=wd0,
                wc=wc, free=control, by_m=by_m, by_rho=by_rho, by_wd=by_wd, by_lr=by_lr,
                wc_cv_across_lr=cv(wc_lrs), **grok_rule(cfg, all_rows))
  io.write_json(sess.path("summary.json"), result)
  sess.draw(figures)
  print_summary(result)
  return result


def slowdown(t_clamp: float | None, t_free: float | None, budget: int) -> dict[str, Any]:
  """Median T_grok of a clamp cell over the free median (below 1: a speed-up). A censored
  cell (median None) gives its budget over the free median, a lower bound."""
  if t_free is None:
    return dict(value=float("nan"), lower_bound=False)
  if t_clamp is None:
    return dict(value=budget / t_free, lower_bound=True)
  return dict(value=t_clamp / t_free, lower_bound=False)


def _t(v) -> str:
  return "censored" if v is None else f"{v:.0f}"


def print_summary(result: dict[str, Any]) -> None:
  """The rows the authors report (`AUTHORS`), ours beside theirs."""
  a = AUTHORS
  f = result["free"]
  say(f"free (m={result['m']}): median T_grok {_t(f['median_t_grok'])} (authors "
      f"{a['free_t_grok']}), W_c {result['wc']:.2f} (authors {a['wc']}), seed CV "
      f"{f['wc_cv_seeds']:.1%} (authors {a['wc_cv']:.1%})")
  say("W_c against m: " + ", ".join(
      f"m={m}: {c['wc']:.2f}" + (f" (authors {a['wc_by_m'][int(m)]})" if int(m) in a['wc_by_m']
                                 else "") for m, c in result["by_m"].items()))
  for rho, c in result["by_rho"].items():
    theirs = a["slowdown"].get(float(rho))
    say(f"clamp rho {rho}: median T_grok {_t(c['median_t_grok'])}, {c['grok_fraction']:.0%} "
        f"grokked, {'>= ' if c['slowdown']['lower_bound'] else ''}{c['slowdown']['value']:.2f}x "
        "the free median"
        + (f" (authors {theirs}x)" if theirs else ""))
  say("weight decay: " + ", ".join(
      f"{w}: " + ("no grok" if not c["grok_fraction"] else f"W_c {c['wc']:.2f}")
      + f" ({c['grok_fraction']:.0%})"
      + (f" [authors {a['wc_by_wd'][float(w)] or 'no grok'}]" if float(w) in a["wc_by_wd"] else "")
      for w, c in result["by_wd"].items()))
  say("learning rate: " + ", ".join(
      f"{l}: T_grok {_t(c['median_t_grok'])}, W_c {c['wc']:.2f}"
      + (f" [authors {a['t_grok_by_lr'][float(l)]}]" if float(l) in a["t_grok_by_lr"] else "")
      for l, c in result["by_lr"].items())
      + f"; W_c CV across lr {result['wc_cv_across_lr']:.1%} (authors {a['wc_cv_across_lr']:.0%})")


def sparse_parity_figure(path: str, result: dict[str, Any], rows: list[dict] | None = None):
  """The sparse-parity rows, ours (filled, with 95 % seed-bootstrap CIs from the runs
  `rows`) beside the authors' (open): W_c against m and against weight decay, median
  T_grok against the learning rate, clamp slowdowns."""
  from grokjax.harness import plots
  plt = plots.plt
  from grokjax.analysis.stats import critical_norm_or_none, seed_bootstrap
  a = AUTHORS
  fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
  m0, lr0, wd0 = result["m"], result["lr"], result["wd"]
  free = [r for r in rows or [] if r["arm"] == "free"]
  pick = {"m": lambda r, x: r["m"] == int(x) and np.isclose(r["lr"], lr0) and r["wd"] == wd0,
          "wd": lambda r, x: r["m"] == m0 and np.isclose(r["lr"], lr0) and np.isclose(r["wd"], x),
          "lr": lambda r, x: r["m"] == m0 and np.isclose(r["lr"], x) and r["wd"] == wd0}

  def ci(along: str, x: float, key: str):
    cell = [r for r in free if pick[along](r, x)]
    if not cell:
      return None
    if key == "wc":
      return seed_bootstrap(cell, critical_norm_or_none, n_boot=400)[1]
    return plots.median_with_ci(cell)[1]

  def pairs(ax, along: str, ours: dict, theirs: dict, key: str, xlabel: str, ylabel: str,
            logx=False):
    xs = [float(k) for k in ours]
    ys = np.array([np.nan if v[key] is None else v[key] for v in ours.values()], float)
    cis = [ci(along, x, key) for x in xs]
    err = np.array([[y - c[0], c[1] - y] if c and np.isfinite(y) else [0, 0]
                    for y, c in zip(ys, cis)]).T
    ax.errorbar(xs, ys, yerr=err if rows else None, fmt="o-", capsize=3,
                label="grokjax" + (" (95% CI)" if rows else ""))
    tx = [x for x, v in theirs.items() if v is not None]
    ax.plot(tx, [theirs[x] for x in tx], "s", mfc="none", color="k", label="authors")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
      ax.set_xscale("log")
      ax.set_xticks(xs, [f"{x:g}" for x in xs], rotation=45, fontsize=7)
      ax.xaxis.set_minor_formatter(plots.matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)

  pairs(axes[0], "m", result["by_m"], a["wc_by_m"], "wc", "training examples m", "W_c")
  pairs(axes[1], "wd", result["by_wd"], a["wc_by_wd"], "wc", "weight decay",
        "W_c (no point: no grok)", logx=True)
  pairs(axes[2], "lr", result["by_lr"], a["t_grok_by_lr"], "median_t_grok", "learning rate",
        "median T_grok (log)", logx=True)
  axes[2].set_yscale("log")
  plots.plain_log_axis(axes[2].yaxis)
  rhos = list(result["by_rho"])
  ax = axes[3]
  ax.bar(np.arange(len(rhos)) - 0.2, [np.nan if result["by_rho"][r]["slowdown"]["value"] is None
                                    else result["by_rho"][r]["slowdown"]["value"] for r in rhos],
         0.4, label="grokjax")
  ax.bar(np.arange(len(rhos)) + 0.2, [a["slowdown"].get(float(r), np.nan) for r in rhos], 0.4,
         color="none", edgecolor="k", label="authors")
  ax.axhline(1.0, color="grey", lw=0.8)
  ax.set_xticks(np.arange(len(rhos)), [f"rho {r}" for r in rhos])
  ax.set_ylabel("clamp / free median T_grok")
  ax.legend(fontsize=7)
  fig.suptitle(f"sparse parity n={result['n']}, m={result['m']}", fontsize=9)
  return plots.save(fig, path)


def figures(folder: str) -> list[str]:
  """The sparse-parity rows beside the authors' (summary.json) and the curves."""
  from grokjax.harness import plots
  return plots.summary_and_curves(folder, "sparse_parity.png", sparse_parity_figure)


EXPERIMENT = registry.Experiment(
    name="sparse_parity", run=sparse_parity, presets=PRESETS, cells=cells, add_flags=add_flags,
    check=check, figures=figures, output="summary.json", doc=__doc__)
