"""The free-norm delay: free training whose weights are scaled by s (at step 0, or at
step --kick-at, once the run has memorised), over a grid of learning rates and weight
decays.

What it measures, in two parts:

- **The rescale** (s > 1, `fit_matched_kappa`): the same seed with and without the rescale.
  Decoupled AdamW multiplies the weights by (1 - lr wd) every step and Adam's update is
  bounded by about lr per coordinate, so an excess norm put on by hand decays at the bare
  rate of decoupled weight decay, and grokking waits for it: T_grok(s) - T_grok(1) =
  c + ln(s) / (kappa lr wd) with kappa near 1 confirms decoupled decay. The informative part
  is what the rescale adds beyond that wait (the intercept c, and kappa's distance from 1).
- **The natural contraction** (s = 1, `grokjax.analysis.contraction.natural_law`): the free
  training law the abstract's last sentence points to, T_grok - T_peak =
  ln(V_peak / V_grok) / (2 kappa lr wd), V = ||W||^2, from each unperturbed run's own peak
  after memorising. Its kappa is far below 1 (Adam pushes the norm back up), and need not
  be one number across (lr, wd): the fit.json gives it per cell, pooled, and how well the
  other cells' kappa predicts each cell's delay.

`fit_kappa` is the older pooled regression of T_grok - T_peak on ln(V_peak / V_grok) /
(2 lr wd) over every s, kept in fit.json; its x barely varies inside a cell.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from grokjax.harness import config
from grokjax.analysis import contraction, fit
from grokjax.harness import flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, plan
from grokjax.harness.grids import phase_rows, write_tables
from grokjax.engine.optim import NEVER
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import cell_summary, grokked, median_or_none
from grokjax.harness.summaries import grok_rule
from grokjax.engine.spec import Runs


PRESETS = {
    # Rescaled at t_int = 500, past memorisation (T_mem about 160 at lr 1e-3): a rescale of
    # the initial weights is undone by the climb to the memorisation peak (quick preset).
    "paper": dict(config.PAPER, moduli=[59], seeds=8, lrs=[1e-3, 2e-3], wds=[0.5, 1.0],
                  scales=[1.0, 1.5, 2.0, 3.0, 4.0], kick_at=500, rhos=[],
                  budgets={"free": 60000}),
    "quick": dict(config.QUICK, moduli=[47], seeds=4, lrs=[5e-3, 1e-2], wds=[0.5, 1.0],
                  scales=[1.0, 2.0, 4.0, 6.0], rhos=[], budgets={"free": 15000}),
    "smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[3e-2], wds=[1.0], scales=[1.0, 2.0],
                  rhos=[]),
}


def cells(cfg) -> list[Cell]:
  """One free phase: every (lr, wd, scale, seed), a cell per weight decay."""
  p = cfg.moduli[0]
  n = cfg.seeds * len(cfg.lrs) * len(cfg.scales or [1.0])
  return [Cell(p, n, cfg.budget(None, p), f"free_p{p}", wd=wd) for wd in cfg.wds or [cfg.wd]]


def add_flags(ap) -> None:
  ap.add_argument("--scales", type=flags.floats("--scales"), help="initial-weight scales s")
  ap.add_argument("--wds", type=flags.floats("--wds"), help="comma-separated weight decays")
  ap.add_argument("--kick-at", type=flags.integer("--kick-at", 0),
                  help="scale the weights by s at this step (default 0: the initial "
                       "weights); a step past memorisation keeps the height s gives")
  ap.add_argument("--clamp-from", help="a pinned_norm folder: its delay law joins the figure")


def check(cfg) -> None:
  flags.one_modulus(cfg, "free_norm_delay")
  if cfg.clamp_from and not os.path.isfile(os.path.join(cfg.clamp_from, "runs.csv")):
    raise flags.UsageError(f"--clamp-from: {cfg.clamp_from!r} holds no runs.csv")
  budget = min(cfg.budget(None, p) for p in cfg.moduli)
  if cfg.kick_at >= budget and any(s != 1.0 for s in cfg.scales or []):
    raise flags.UsageError(f"--kick-at: the weights would be scaled at step {cfg.kick_at:,}, at "
                           f"or past the budget {budget:,}; every run would train unscaled")



def _line(x: np.ndarray, y: np.ndarray):
  """Least-squares y = icept + slope x: (slope, icept, R^2); None with fewer than 3 points
  or no spread in x."""
  if len(x) < 3 or np.ptp(x) == 0:
    return None
  slope, icept = np.polyfit(x, y, 1)
  total = np.sum((y - y.mean()) ** 2)
  r2 = 1 - np.sum((y - (icept + slope * x)) ** 2) / total if total > 0 else float("nan")
  return slope, icept, r2


def fit_kappa(rows, n_boot: int) -> dict[str, Any]:
  """T_grok - T_peak = c + x / kappa, x = ln(V_peak / V_grok) / (2 lr wd): kappa, its
  95 % bootstrap CI over seeds, R^2 and the intercept c."""
  ok = [r for r in grokked(rows) if r["t_peak"] is not None and r["t_peak"] >= 0
        and r["v_peak"] and r["v_grok"]]

  def one(rs):
    x = np.array([np.log(r["v_peak"] / r["v_grok"]) / (2 * r["lr"] * r["wd"]) for r in rs])
    return _line(x, np.array([r["t_grok"] - r["t_peak"] for r in rs], float))

  point = one(ok)
  if point is None or point[0] <= 0:
    return dict(error="fewer than 3 grokked runs with a peak, or no positive slope",
                n_runs=len(ok))
  from grokjax.analysis.stats import percentile_ci, seed_draws
  boots = []
  for (drawn,) in seed_draws([sorted({r["seed"] for r in ok})], n_boot):
    res = one([r for s in drawn for r in ok if r["seed"] == s])
    if res is not None and res[0] > 0:
      boots.append(1 / res[0])
  ci = percentile_ci(boots, n_boot)
  return dict(kappa=float(1 / point[0]), kappa_ci=ci, slope=float(point[0]),
              intercept=float(point[1]), r2=float(point[2]), n_runs=len(ok),
              n_boot_kept=len(boots))


def matched_pairs(rows) -> np.ndarray:
  """Per rescaled run whose seed also grokked unscaled at the same (lr, wd), both
  grokked: [lr, wd, x, y] with x = ln(s) / (lr wd) and y = T_grok(s) - T_grok(1)."""
  base = {(r["seed"], r["lr"], r["wd"]): r["t_grok"] for r in grokked(rows)
          if r["scale"] == 1.0}
  out = [(r["lr"], r["wd"], np.log(r["scale"]) / (r["lr"] * r["wd"]),
          r["t_grok"] - base[(r["seed"], r["lr"], r["wd"])])
         for r in grokked(rows) if r["scale"] != 1.0 and (r["seed"], r["lr"], r["wd"]) in base]
  return np.array(out, float).reshape(-1, 4)


def fit_matched_kappa(rows, n_boot: int) -> dict[str, Any]:
  """kappa from matched pairs (`matched_pairs`): T_grok(s) - T_grok(1) = c + x / kappa with
  x = ln(s) / (lr wd); its 95 % CI over seeds resampled, R^2, and the number of pairs."""
  from grokjax.analysis.stats import seed_bootstrap

  def line(rs):
    xy = matched_pairs(rs)
    return _line(xy[:, 2], xy[:, 3])

  point, n_pairs = line(rows), len(matched_pairs(rows))
  if point is None or point[0] <= 0:
    return dict(error="fewer than 3 matched pairs, or no positive slope", n_pairs=n_pairs)
  inv = lambda rs: (lambda f: None if f is None or f[0] <= 0 else float(1 / f[0]))(line(rs))
  _, ci = seed_bootstrap(rows, inv, n_boot)
  return dict(kappa=float(1 / point[0]), kappa_ci=ci, slope=float(point[0]),
              intercept=float(point[1]), r2=float(point[2]), n_pairs=n_pairs)


def free_norm_delay(sess: Session) -> dict[str, Any]:
  """Free runs from initial weights scaled by s, over learning rates x weight decays."""
  from grokjax.problems.models import weight_norm
  from grokjax.engine.program import program
  import jax
  cfg = sess.cfg
  if len(cfg.moduli) != 1:
    raise ValueError("free_norm_delay runs at one modulus")
  p = cfg.moduli[0]
  budget = cfg.budget(None, p)
  wds = cfg.wds or [cfg.wd]
  grid = [(lr, wd, s, seed) for lr in cfg.lrs for wd in wds for s in cfg.scales
          for seed in range(cfg.seeds)]
  lr, wd, scale, seed = (np.array(c) for c in zip(*grid))
  sess.estimate = plan(cfg, cells(cfg))
  runs = Runs(seed, lr, wd, np.nan, NEVER, budget, kick=scale,
              t_kick=np.where(scale != 1.0, cfg.kick_at, NEVER))
  task = cfg.task(p)
  phases: list = []
  rows = phase_rows(sess, f"free_scaled_p{p}", task, runs, ["free"] * len(grid),
                     [None] * len(grid), phases, [dict(scale=s) for s in scale])
  res = phases[-1][0]
  # ||W|| of each run's initial weights, times its scale: the height the contraction starts from
  # (with --kick-at: the first norm recorded from the rescale on)
  stream = cfg.seed_stream or ""
  init = program(task).init(np.array([task.init_seed(w, s, stream) for w, s in zip(wd, seed)],
                                     np.uint32))
  w0 = np.asarray(jax.vmap(weight_norm)(init.params)) * scale
  if cfg.kick_at > 0:
    col = int(np.searchsorted(res.steps, cfg.kick_at))
    w0 = res.curves["norm"][:, min(col, len(res.steps) - 1)].astype(float)
  for i, r in enumerate(rows):  # t_peak and norm_peak: every runs.csv's (`reduce.norm_peak`)
    r.update(start_norm=float(w0[i]),
             v_peak=r["norm_peak"] ** 2 if r["norm_peak"] is not None else None,
             v_grok=float(r["norm_at_grok"] ** 2) if r["grokked"] else None)
  all_rows = write_tables(sess, phases)
  per = {}
  for l in cfg.lrs:
    for w in wds:
      rs = [r for r in rows if np.isclose(r["lr"], l) and np.isclose(r["wd"], w)]
      by_s = {f"{s:g}": cell_summary([r for r in rs if r["scale"] == s]) for s in cfg.scales}
      delays = [r["t_grok"] - r["t_peak"] for r in rs if r["grokked"] and r["t_peak"] is not None]
      per[f"lr{l:g}_wd{w:g}"] = dict(lr=l, wd=w, kappa=fit_kappa(rs, cfg.n_boot), cells=by_s,
                                     kappa_matched=fit_matched_kappa(rs, cfg.n_boot),
                                     median_delay=median_or_none(delays))
  # Pooled over the grid, where 1 / (2 lr wd) also moves x: a scale s below the
  # memorisation peak does not move V_peak, so one (lr, wd) cell alone may not pin kappa.
  pooled = fit_kappa(rows, cfg.n_boot)
  pooled_matched = fit_matched_kappa(rows, cfg.n_boot)
  natural = contraction.natural_law([r for r in rows if r["scale"] == 1.0], cfg.n_boot)
  pts = [(v["lr"] * v["wd"], v["median_delay"]) for v in per.values()
         if v["median_delay"] and v["median_delay"] > 0]
  scaling = (fit.safe(fit.fit_power_law, *zip(*pts)) if len(pts) >= 2 else
             dict(error="needs two (lr, wd) points with a positive median delay"))
  result = dict(experiment="free_norm_delay", p=p, scales=cfg.scales, per_lr_wd=per,
                kick_at=cfg.kick_at, kappa_pooled=pooled, kappa_matched_pooled=pooled_matched,
                delay_vs_eta_lambda=scaling, natural=natural, **grok_rule(cfg, all_rows))
  io.write_json(sess.path("fit.json"), result)
  sess.draw(figures)
  for key, v in per.items():
    k = v["kappa"]
    line = "  ".join(f"s={s}: {c['grok_fraction']:.0%}, T_grok {c['median_t_grok']}"
                     for s, c in v["cells"].items())
    say(f"lr {v['lr']:g}, wd {v['wd']:g}: {line}")
    if k.get("kappa") is not None:
      ci = k["kappa_ci"] or [float("nan")] * 2
      say(f"   kappa = {k['kappa']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  R^2 = {k['r2']:.2f} "
          f"({k['n_runs']} runs; delay T_grok - T_peak = {k['intercept']:.0f} + "
          f"ln(V_peak/V_grok) / (2 kappa lr wd))")
    else:
      say(f"   no kappa: {k.get('error')}")
    say("   " + _matched_line(v["kappa_matched"]))
  if pooled.get("kappa") is not None:
    ci = pooled["kappa_ci"] or [float("nan")] * 2
    say(f"pooled over lr x wd: kappa = {pooled['kappa']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
        f"R^2 = {pooled['r2']:.2f} ({pooled['n_runs']} runs)")
  else:
    say(f"pooled over lr x wd: no kappa: {pooled.get('error')}")
  say("pooled over lr x wd: " + _matched_line(pooled_matched))
  if scaling.get("beta") is not None:
    say(f"median delay after the peak ~ (lr wd)^{scaling['beta']:.2f} across the grid, every s "
        f"(R^2 {scaling['r2']:.2f}; decoupled decay alone would give -1)")
  say(natural_line(natural))
  return result


def natural_line(natural: dict) -> str:
  """One line for the natural contraction of the unscaled runs (`contraction.natural_law`)."""
  if natural.get("kappa") is None:
    return f"natural contraction (s = 1): {natural.get('error')}"
  ci = natural["kappa_ci"] or [float("nan")] * 2
  cells = ", ".join(f"{v['kappa']:.3f}" for v in natural["cells"].values())
  err = natural.get("median_abs_error")
  return (f"natural contraction (s = 1, each run from its own peak): kappa = {natural['kappa']:.3f} "
          f"[{ci[0]:.3f}, {ci[1]:.3f}] over {natural['n_runs']} runs (per cell {cells})"
          + (f"; a cell's delay from the others' kappa: median |error| {err:.0%}"
             if err is not None else ""))


def _matched_line(m: dict) -> str:
  if m.get("kappa") is None:
    return f"matched kappa: {m.get('error')}"
  ci = m["kappa_ci"] or [float("nan")] * 2
  return (f"matched kappa = {m['kappa']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  R^2 = {m['r2']:.2f} "
          f"({m['n_pairs']} pairs; T_grok(s) - T_grok(1) = {m['intercept']:.0f} + "
          "ln(s) / (kappa lr wd))")


def both_laws(path: str, free_rows: list[dict[str, Any]], clamp_rows: list[dict] | None):
  """The two halves of the law on one axis of norm: T_grok of free runs against the
  starting norm (log x: the logarithmic delay is a straight line) and, from a pinned_norm
  folder, T_grok of held runs against the held norm (log y: the exponential one)."""
  from grokjax.harness import plots
  plt = plots.plt
  fig, axes = plt.subplots(1, 2 if clamp_rows else 1, figsize=(11 if clamp_rows else 6.4, 4.6),
                           squeeze=False)
  ax = axes[0, 0]
  keys = sorted({(r["lr"], r["wd"]) for r in free_rows})
  for k, (lr, wd) in enumerate(keys):
    mine = [r for r in free_rows if r["lr"] == lr and r["wd"] == wd]
    rs = [r for r in mine if r["grokked"]]
    ax.plot([r["start_norm"] for r in rs], [r["t_grok"] for r in rs], "o", ms=2.5, alpha=0.4,
            color=f"C{k}")
    pts = []
    for s in sorted({r.get("scale") for r in mine}, key=lambda v: (v is None, v or 0)):
      cell = [r for r in mine if r.get("scale") == s]
      med, ci = plots.median_with_ci(cell)
      if med is not None:
        pts.append((float(np.median([r["start_norm"] for r in cell])), med, ci))
    if pts:
      x, y, cis = zip(*pts)
      err = np.array([[m - c[0], c[1] - m] if c else [0, 0] for m, c in zip(y, cis)]).T
      ax.errorbar(x, y, yerr=err, fmt="s-", ms=5, mec="k", capsize=3, color=f"C{k}",
                  label=f"free: lr {lr:g}, wd {wd:g} (cell median, 95% CI)")
  ax.set_xscale("log")
  plots.plain_log_axis(ax.xaxis)
  ax.set_xlabel("starting norm ||W_0|| (log)")
  ax.set_ylabel("T_grok (steps)")
  ax.set_title("free training rescaled by s: T_grok against the starting norm\n(decoupled decay "
               "removes the excess at rate lr wd: linear in its log)", fontsize=9)
  ax.legend(fontsize=7)
  if clamp_rows:
    ax = axes[0, 1]
    for k, p in enumerate(sorted({r["p"] for r in clamp_rows})):
      rs = [r for r in grokked(clamp_rows) if r["p"] == p]
      ax.plot([r["target_norm"] for r in rs], [r["t_grok"] for r in rs], "o", ms=3,
              alpha=0.6, color=f"C{k}", label=f"held: p={p}")
    ax.set_yscale("log")
    ax.set_xlabel("held norm rho W_c")
    ax.set_ylabel("T_grok (steps, log)")
    ax.set_title("pinned norm: T_grok against the held norm (the law: its log linear in it)",
                 fontsize=9)
    ax.legend(fontsize=7)
  return plots.save(fig, path)


def matched_delay(path: str, pairs: np.ndarray, result: dict[str, Any]):
  """The free-norm delay seed by seed: T_grok(s) - T_grok(1) of the same seed against
  ln(s) / (lr wd) (`pairs`: rows [lr, wd, x, y], `grokjax.experiments.free_norm_delay.matched_pairs`),
  one colour per (lr, wd), with the pooled matched fit and its CI."""
  from grokjax.harness import plots
  plt = plots.plt
  fig, ax = plt.subplots(figsize=(6.2, 4.4))
  cells = sorted({(lr, wd) for lr, wd in pairs[:, :2]})
  for k, (lr, wd) in enumerate(cells):
    mine = (pairs[:, 0] == lr) & (pairs[:, 1] == wd)
    ax.scatter(pairs[mine, 2], pairs[mine, 3], s=12, alpha=0.6, color=f"C{k}",
               label=f"lr {lr:g}, wd {wd:g}")
  xmax = pairs[:, 2].max() if len(pairs) else 0.0
  m = result.get("kappa_matched_pooled") or {}
  if m.get("kappa") and xmax:
    xs = np.linspace(0, xmax, 50)
    ci = m.get("kappa_ci")
    ci_text = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    ax.plot(xs, m["intercept"] + xs / m["kappa"], "k-",
            label=f"pooled: kappa = {m['kappa']:.2f}{ci_text}, R2 = {m['r2']:.2f}")
    ax.plot(xs, xs, "k:", lw=1, label="kappa = 1: bare weight-decay contraction")
  ax.set_xlabel("ln(s) / (lr wd)  (steps)")
  ax.set_ylabel("T_grok(s) - T_grok(1), same seed (steps)")
  ax.set_title(f"free-norm delay: weights x s at step {result.get('kick_at', 0)}", fontsize=9)
  ax.legend(fontsize=8)
  return plots.save(fig, path)


def figures(folder: str) -> list[str]:
  """Both halves of the law (with --clamp-from's held runs), the matched delay seed by
  seed (runs.csv, fit.json) and the curves."""
  from grokjax.harness import plots
  from grokjax.harness.results import load
  res = load(folder, curves=False)
  clamp_from = res.config.get("clamp_from")
  clamp_rows = None
  if clamp_from and os.path.isfile(os.path.join(clamp_from, "runs.csv")):
    clamp_rows = [r for r in io.read_runs(os.path.join(clamp_from, "runs.csv"))
                  if r["arm"] == "clamp"]
  return [both_laws(os.path.join(folder, "figures", "both_laws.png"), res.runs, clamp_rows),
          matched_delay(os.path.join(folder, "figures", "matched_delay.png"),
                              matched_pairs(res.runs), res.fit),
          *plots.curves_of(res)]


EXPERIMENT = registry.Experiment(
    name="free_norm_delay", run=free_norm_delay, presets=PRESETS, cells=cells,
    add_flags=add_flags, check=check, figures=figures, output="fit.json", doc=__doc__)
