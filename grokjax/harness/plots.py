"""Figures a researcher looks at; each function writes one PNG and returns its path."""

from __future__ import annotations

from typing import Any

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from grokjax.analysis.stats import usable  # noqa: E402

COLLAPSE_MARK = 0.5  # a run whose train softmax collapsed on at least half the samples


def save(fig, path: str) -> str:
  """Write the figure as `path` (PNG, 150 dpi) and beside it as a vector PDF; returns path."""
  from grokjax.harness.io import atomic_bytes
  import io as _io
  fig.tight_layout()
  for fmt, target in (("png", path), ("pdf", os.path.splitext(path)[0] + ".pdf")):
    buf = _io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150,  # no creation date: the same figure, the same bytes
                metadata={"CreationDate": None} if fmt == "pdf" else None)
    atomic_bytes(target, buf.getvalue())
    _own(target)
  plt.close(fig)
  return path


OWNED = ".grokjax-figures"  # the figures grokjax wrote in a folder: all --force-new may delete


def _own(path: str) -> None:
  listing = os.path.join(os.path.dirname(path) or ".", OWNED)
  names = set(open(listing).read().split()) if os.path.exists(listing) else set()
  if os.path.basename(path) not in names:
    from grokjax.harness.io import atomic_bytes
    atomic_bytes(listing, ("\n".join(sorted(names | {os.path.basename(path)})) + "\n").encode())


def ci_text(ci) -> str:
  return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def median_with_ci(rows, n_boot: int = 400) -> tuple[float | None, list | None]:
  """A cell's censored median T_grok and its 95 % seed-bootstrap CI (None where half or
  more of the runs, or of a resample's, are censored). Diverged runs are left out."""
  from grokjax.analysis.stats import censored_median
  from grokjax.analysis.stats import seed_bootstrap
  ok = usable(rows)
  stat = lambda rs: censored_median(np.array([r["t_grok"] for r in rs], float),
                                    np.array([r["censored"] for r in rs], bool))
  return seed_bootstrap(ok, stat, n_boot=n_boot) if ok else (None, None)


def plain_log_axis(axis) -> None:
  """Tick labels of a log axis as plain numbers (2,000, 5,000), not powers of ten."""
  plain = lambda v: f"{v:,.0f}" if v >= 1 else f"{v:g}"
  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: plain(v)))
  axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(  # 2 and 5 of each decade
      lambda v, _: plain(v) if f"{v:.0e}"[0] in "25" else ""))


def _centred(n: int, step: float) -> np.ndarray:
  """Offsets of n points spread symmetrically about their cell's x."""
  return (np.arange(n) - (n - 1) / 2) * step


def delay_law(path: str, rows: list[dict[str, Any]], result: dict[str, Any], title: str = "",
              clock: str = "step0"):
  """T_grok against rho on a log axis: per-seed points (open triangles: censored at the
  budget, x: softmax collapse), cell medians with their 95 % seed-bootstrap CIs, the fitted
  line per modulus (solid) with alpha's CI, and the shared fit (dashed). clock "clamp":
  T_grok - t_int and the fits of result["clamp_clock"] (`grokjax.analysis.shape`)."""
  if clock == "clamp":
    from grokjax.analysis.shape import on_clamp_clock
    rows = on_clamp_clock(rows, t_int=result["clamp_clock"].get("t_int"))[0]
    result = dict(result["clamp_clock"], fit_rhos=result.get("fit_rhos"))
    title = title or "Delay law on the clamp's clock: T_grok - t_int = exp(c + alpha rho)"
  fig, ax = plt.subplots(figsize=(6.6, 4.8))
  _draw_delay_law(ax, rows, result, title)
  if clock == "clamp":
    ax.set_ylabel("T_grok - t_int (steps since the clamp started, log scale)")
  return save(fig, path)


def delay_law_scan(path: str, axis: str, per_value: dict[str, tuple[list[dict], dict]]):
  """The delay law of a --scan, one panel per value (its rows and its fit, as `delay_law`
  draws them), on one T_grok axis; each panel's title gives its shared alpha."""
  fig, axes = plt.subplots(1, len(per_value), figsize=(5.0 * len(per_value), 4.6), sharey=True,
                           squeeze=False)
  for k, (ax, (v, (rows, result))) in enumerate(zip(axes[0], per_value.items())):
    shared = result.get("shared", {})
    alpha = (f"shared alpha {shared['alpha']:.2f}{ci_text(shared.get('alpha_ci'))}"
             if shared.get("alpha") is not None else "no fit")
    _draw_delay_law(ax, rows, result, f"{axis.replace('_', ' ')} {v}: {alpha}")
    ax.set_xlabel("rho (held norm / its W_c)")
    if k:
      ax.set_ylabel("")
  return save(fig, path)


def _draw_delay_law(ax, rows, result, title):
  moduli = sorted({r["p"] for r in rows})
  shared = result.get("shared", {})
  rhos = sorted({r["rho"] for r in rows})
  gap = min(np.diff(rhos)) if len(rhos) > 1 else 0.1
  lo, hi = result.get("fit_rhos") or (-np.inf, np.inf)
  for k, p in enumerate(moduli):
    color = f"C{k}"
    dx = (k - (len(moduli) - 1) / 2) * 0.07 * gap  # moduli side by side, lines shifted alike
    rs = [r for r in usable(rows) if r["p"] == p]
    for rho in sorted({r["rho"] for r in rs}):
      cell = [r for r in rs if r["rho"] == rho]
      x = rho + dx + _centred(len(cell), 0.06 * gap / max(len(cell), 1))
      t = np.array([r["t_grok"] for r in cell], float)
      cens = np.array([r["censored"] for r in cell], bool)
      coll = np.array([(r.get("collapse_max") or 0) >= COLLAPSE_MARK for r in cell], bool)
      ax.scatter(x[~cens], t[~cens], s=10, alpha=0.45, color=color, lw=0)
      ax.scatter(x[cens], t[cens], s=22, marker="^", facecolors="none", edgecolors=color)
      if coll.any():
        ax.scatter(x[coll], t[coll], marker="x", s=22, color="k", lw=0.8)
      med, ci = median_with_ci(cell)
      if med is not None:
        err = None if ci is None else [[med - ci[0]], [ci[1] - med]]
        ax.errorbar([rho + dx], [med], yerr=err, fmt="s", color=color, mec="k", ms=6,
                    capsize=3, elinewidth=1, zorder=3)
    cells = result["per_modulus"].get(p, result["per_modulus"].get(str(p), {}))
    rho = np.array([r["rho"] for r in rs], float)
    inside = rho[(rho >= lo - 1e-9) & (rho <= hi + 1e-9)]
    grid = np.linspace(inside.min(), inside.max(), 50) if len(inside) else np.array([])
    if cells.get("alpha") is not None:
      ax.plot(grid + dx, np.exp(cells["intercept"] + cells["alpha"] * grid), "-", color=color,
              label=f"p={p}: alpha {cells['alpha']:.2f}{ci_text(cells.get('alpha_ci'))}"
                    + (f", R2 {cells['r2']:.3f}" if cells.get("r2") is not None else ""))
    icpt = (shared.get("intercepts") or {}).get(str(p), (shared.get("intercepts") or {}).get(p))
    if shared.get("alpha") is not None and icpt is not None:
      ax.plot(grid + dx, np.exp(icpt + shared["alpha"] * grid), "--", color=color, lw=1)
  if shared.get("alpha") is not None:
    ax.plot([], [], "--", color="0.4", lw=1,
            label=f"shared (dashed, per modulus): alpha {shared['alpha']:.2f}"
                  f"{ci_text(shared.get('alpha_ci'))}")
  ax.errorbar([], [], yerr=[], fmt="s", color="0.6", mec="k", ms=6, capsize=3,
              label="cell median, 95% CI over seeds")
  ax.scatter([], [], s=22, marker="^", facecolors="none", edgecolors="0.4",
             label="seed censored at its budget")
  ax.set_yscale("log")
  plain_log_axis(ax.yaxis)
  ax.tick_params(axis="y", which="minor", labelsize=7)
  ax.set_xlabel("rho (held norm / W_c)" + (f"; moduli offset by {0.07 * gap:.3g} to be seen"
                                            if len(moduli) > 1 else ""))
  ax.set_ylabel("T_grok (steps, log scale)")
  span = (f", fitted over rho {result['fit_rhos'][0]:g}-{result['fit_rhos'][1]:g}"
          if result.get("fit_rhos") else "")
  ax.set_title(title or f"Delay law: T_grok = exp(c + alpha rho){span}", fontsize=9)
  ax.legend(fontsize=7)


def wc_vs_p(path: str, result: dict[str, Any], rows: list[dict] | None = None):
  """W_c against p on log-log axes with the power-law fit (beta with its CI); with the
  free runs `rows`, each W_c with its 95 % seed-bootstrap CI."""
  from grokjax.analysis.stats import critical_norm_or_none, seed_bootstrap
  fig, ax = plt.subplots(figsize=(5.4, 4.2))
  per = result["per_modulus"]
  ps = np.array([int(p) for p in per], float)
  wc = np.array([np.nan if per[p]["wc"] is None else per[p]["wc"] for p in per], float)
  err = None
  if rows:
    lr0 = result.get("lr")
    cis = [seed_bootstrap([r for r in rows if r["p"] == int(p) and r["arm"] == "free"
                           and (lr0 is None or np.isclose(r["lr"], lr0))],
                          critical_norm_or_none, n_boot=400)[1]
           for p in per]
    err = np.array([[w - c[0], c[1] - w] if c else [0, 0] for w, c in zip(wc, cis)]).T
  ax.errorbar(ps, wc, yerr=err, fmt="o", capsize=3, label="W_c, median over seeds"
              + (" (95% CI)" if err is not None else ""))
  law = result.get("power_law", {})
  if law.get("beta") is not None:
    x = np.geomspace(ps.min(), ps.max(), 50)
    ax.plot(x, law["c"] * x ** law["beta"], "-",
            label=f"{law['c']:.2f} p^{law['beta']:.3f}{ci_text(law.get('beta_ci'))}, "
                  f"R2 {law['r2']:.3f}")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xticks(ps, [f"{p:g}" for p in ps])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  plain_log_axis(ax.yaxis)
  ax.set_xlabel("modulus p (log)")
  ax.set_ylabel("W_c = ||W|| at T_grok (log)")
  ax.set_title(f"critical norm against p (lr {result.get('lr', '')})", fontsize=9)
  ax.legend(fontsize=8)
  return save(fig, path)


def wc_vs_wd(path: str, result: dict[str, Any], scan: bool = False):
  """W_c against the weight decay (scan: against a --scan's values), one line per modulus
  and learning rate, with seed-bootstrap 95 % CIs."""
  fig, ax = plt.subplots(figsize=(5.2, 4.2))
  of = lambda per: per["scan"]["per_value"] if scan else per["per_wd"]
  axis = next(iter(result["per_modulus"].values()))["scan"]["axis"] if scan else None
  log = not scan or axis == "temperature"
  for k, (p, per) in enumerate(result["per_modulus"].items()):
    wds = sorted(of(per), key=float)
    lrs = list(of(per)[wds[0]]["per_lr"])
    for j, lr in enumerate(lrs):
      cells = [of(per)[w]["per_lr"][lr] for w in wds]
      nudge = 0.03 * (j - (len(lrs) - 1) / 2)
      x = np.array([float(w) for w in wds]) * (1 + nudge if log else 1) + (0 if log else nudge / 10)
      y = np.array([np.nan if c["wc"] is None else c["wc"] for c in cells], float)
      lo = [y[i] - c["wc_ci"][0] if c.get("wc_ci") else 0 for i, c in enumerate(cells)]
      hi = [c["wc_ci"][1] - y[i] if c.get("wc_ci") else 0 for i, c in enumerate(cells)]
      ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", capsize=3, color=f"C{k * len(lrs) + j}",
                  label=f"p={p} lr {lr}")
  if log:
    ax.set_xscale("log")
  if scan and log:  # W_c = c T^gamma: a line
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    laws = [(p, per["scan"].get("power_law", {})) for p, per in result["per_modulus"].items()]
    ax.set_title("; ".join(f"p={p}: gamma {law['gamma']:.3f}" + (
        f" [{law['gamma_ci'][0]:.3f}, {law['gamma_ci'][1]:.3f}]" if law.get("gamma_ci") else "")
        for p, law in laws if "gamma" in law), fontsize=9)
  ticks = sorted({float(w) for per in result["per_modulus"].values() for w in of(per)})
  ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_xlabel(axis.replace("_", " ") if scan else "weight decay lambda")
  ax.set_ylabel("W_c = median ||W|| at T_grok (95% CI)")
  ax.legend(fontsize=8)
  return save(fig, path)


SWEPT = ("rho", "lr", "wd", "scale", "layernorm", "p")  # what a curve's colour shows


def curves(path: str, steps: np.ndarray, values: dict[str, np.ndarray], rows: list[dict],
           max_runs: int = 3):
  """Accuracy and ||W|| of a few runs (seed 0, then the next seeds) of each cell, coloured
  by the variable the grid sweeps; a dot marks T_grok on the test curve. steps
  int[runs, evals] (-1: none), values name -> float[runs, evals], rows: runs.csv's. A
  curve ends where its run stopped (its budget, or retire-margin steps past T_grok)."""
  cells: dict[tuple, list[int]] = {}
  for i, r in enumerate(rows):
    key = tuple(r.get(k) for k in ("p", "arm") + SWEPT)
    cells.setdefault(key, []).append(i)
  per_cell = max(1, min(max_runs, 24 // len(cells)))  # at most about 24 curves in all
  picked = [i for ids in cells.values() for i in ids[:per_cell]]
  swept = [k for k in SWEPT if len({rows[i].get(k) for i in picked} - {None}) > 1] or ["arm"]
  key = lambda i: tuple((rows[i].get(k) is None, rows[i].get(k) or 0) for k in swept)
  free = lambda i: rows[i]["arm"] == "free" and "rho" in swept  # the controls of a rho sweep
  order = sorted(dict.fromkeys(key(i) for i in picked if not free(i)))
  cmap = plt.get_cmap("viridis")
  shade = {v: cmap(j / max(1, len(order) - 1) * 0.9) for j, v in enumerate(order)}
  colour = lambda i: "0.45" if free(i) else shade[key(i)]
  picked.sort(key=lambda i: (not free(i), key(i)))  # the legend: free first, then in order
  fig, (ax_acc, ax_norm) = plt.subplots(2, 1, figsize=(7.2, 6.2), sharex=True)
  named = set()
  for i in picked:
    r, color = rows[i], colour(i)
    keep = (steps[i] > 0) & np.isfinite(values["test_acc"][i])
    x = steps[i][keep]
    label = ("free control" + (f", p {r['p']}" if "p" in swept else "") if free(i) else
             ", ".join(f"{k} {r.get(k) if r.get(k) is not None else '-'}" for k in swept))
    ax_acc.plot(x, values["test_acc"][i][keep], color=color, lw=1,
                label=label if label not in named else None)
    named.add(label)
    ax_acc.plot(x, values["train_acc"][i][keep], color=color, ls=":", lw=0.8)
    ax_norm.plot(x, values["norm"][i][keep], color=color, lw=1)
    if r["grokked"] and r["t_grok"] in set(x.tolist()):
      j = list(x).index(r["t_grok"])
      ax_acc.plot([x[j]], [values["test_acc"][i][keep][j]], "o", color=color, ms=4, mec="k")
  ax_acc.set_ylabel("accuracy (test solid, train dotted)")
  ax_norm.set_ylabel("||W||")
  ax_norm.set_xlabel("step (log); a dot marks T_grok; a curve ends where its run stopped")
  ax_acc.set_xscale("log")
  ax_acc.set_title(f"{len(picked)} of {len(rows)} runs, coloured by {', '.join(swept)}",
                   fontsize=9)
  ax_acc.legend(fontsize=6, ncol=2)
  return save(fig, path)


def summary_and_curves(folder: str, name: str, draw) -> list[str]:
  """A finished folder's one summary figure, draw(path, its fit or summary, its runs),
  saved as figures/`name`, and its curves where curves.npz is there."""
  from grokjax.harness.results import load
  res = load(folder, curves=False)
  return [draw(os.path.join(folder, "figures", name), res.fit, res.runs), *curves_of(res)]


def curves_of(res) -> list[str]:
  """figures/curves.png of a loaded folder (`grokjax.load`), or nothing without curves."""
  if not res.curves:
    return []
  return [curves(os.path.join(res.folder, "figures", "curves.png"), res.steps, res.curves,
                 res.runs)]


def wc_vs_frac(path: str, per_frac: dict[float, list[dict]], paper: dict[float, float] | None,
               n_boot: int = 400):
  """W_c against the train fraction at one modulus, from one free_training folder per
  fraction: the mean norm at T_grok (the paper's estimator) and the median (ours), each
  with its 95 % seed-bootstrap CI, beside the paper's values (open squares)."""
  from grokjax.analysis.stats import critical_norm_or_none, mean_norm, seed_bootstrap
  fig, ax = plt.subplots(figsize=(5.6, 4.2))
  fracs = sorted(per_frac)
  for k, (stat, name) in enumerate(((mean_norm, "mean (the paper's estimator)"),
                                    (critical_norm_or_none, "median"))):
    vals = [seed_bootstrap(per_frac[f], stat, n_boot=n_boot) for f in fracs]
    y = np.array([np.nan if v is None else v for v, _ in vals], float)
    err = np.array([[m - c[0], c[1] - m] if c else [0, 0] for m, (_, c) in zip(y, vals)]).T
    ax.errorbar(np.array(fracs) + (k - 0.5) * 0.006, y, yerr=err, fmt="o-", capsize=3,
                label=f"grokjax: {name}, 95% CI")
  if paper:
    xs = sorted(paper)
    ax.plot(xs, [paper[x] for x in xs], "s", mfc="none", color="k", ms=7, label="paper (mean)")
  ax.set_xlabel("train fraction")
  ax.set_ylabel("W_c = ||W|| at T_grok")
  ps = sorted({r["p"] for rs in per_frac.values() for r in rs})
  ax.set_title(f"critical norm against the train fraction, p={', '.join(map(str, ps))}",
               fontsize=9)
  ax.legend(fontsize=8)
  return save(fig, path)


def ablation(path: str, variants: dict[str, tuple[list, dict]]):
  """The delay law of each variant side by side, on a shared y axis."""
  fig, axes = plt.subplots(1, len(variants), figsize=(6.0 * len(variants), 4.6), sharey=True)
  for ax, (name, (rows, result)) in zip(np.atleast_1d(axes), variants.items()):
    _draw_delay_law(ax, rows, result, name)
  return save(fig, path)
