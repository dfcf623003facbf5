"""Figures a researcher looks at; each function writes one PNG and returns its path."""

from __future__ import annotations

from typing import Any

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

COLLAPSE_MARK = 0.5  # a run whose train softmax collapsed on at least half the samples


def _save(fig, path: str) -> str:
  """Write the figure as `path` (PNG, 150 dpi) and beside it as a vector PDF; returns path."""
  from grokjax.io import atomic_bytes
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
    from grokjax.io import atomic_bytes
    atomic_bytes(listing, ("\n".join(sorted(names | {os.path.basename(path)})) + "\n").encode())


def _ci_text(ci) -> str:
  return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""


def median_with_ci(rows, n_boot: int = 400) -> tuple[float | None, list | None]:
  """A cell's censored median T_grok and its 95 % seed-bootstrap CI (None where half or
  more of the runs, or of a resample's, are censored). Diverged runs are left out."""
  from grokjax.compare import censored_median
  from grokjax.stats import seed_bootstrap
  ok = [r for r in rows if not r["diverged"]]
  stat = lambda rs: censored_median(np.array([r["t_grok"] for r in rs], float),
                                    np.array([r["censored"] for r in rs], bool))
  return seed_bootstrap(ok, stat, n_boot=n_boot) if ok else (None, None)


def _plain_log_axis(axis) -> None:
  """Tick labels of a log axis as plain numbers (2,000, 5,000), not powers of ten."""
  plain = lambda v: f"{v:,.0f}" if v >= 1 else f"{v:g}"
  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: plain(v)))
  axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(  # 2 and 5 of each decade
      lambda v, _: plain(v) if f"{v:.0e}"[0] in "25" else ""))


def _centred(n: int, step: float) -> np.ndarray:
  """Offsets of n points spread symmetrically about their cell's x."""
  return (np.arange(n) - (n - 1) / 2) * step


def delay_law(path: str, rows: list[dict[str, Any]], result: dict[str, Any], title: str = ""):
  """T_grok against rho on a log axis: per-seed points (open triangles: censored at the
  budget, x: softmax collapse), cell medians with their 95 % seed-bootstrap CIs, the fitted
  line per modulus (solid) with alpha's CI, and the shared fit (dashed)."""
  fig, ax = plt.subplots(figsize=(6.6, 4.8))
  _draw_delay_law(ax, rows, result, title)
  return _save(fig, path)


def _draw_delay_law(ax, rows, result, title):
  moduli = sorted({r["p"] for r in rows})
  shared = result.get("shared", {})
  rhos = sorted({r["rho"] for r in rows})
  gap = min(np.diff(rhos)) if len(rhos) > 1 else 0.1
  lo, hi = result.get("fit_rhos") or (-np.inf, np.inf)
  for k, p in enumerate(moduli):
    color = f"C{k}"
    dx = (k - (len(moduli) - 1) / 2) * 0.07 * gap  # moduli side by side, lines shifted alike
    rs = [r for r in rows if r["p"] == p and not r["diverged"]]
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
              label=f"p={p}: alpha {cells['alpha']:.2f}{_ci_text(cells.get('alpha_ci'))}"
                    + (f", R2 {cells['r2']:.3f}" if cells.get("r2") is not None else ""))
    icpt = (shared.get("intercepts") or {}).get(str(p), (shared.get("intercepts") or {}).get(p))
    if shared.get("alpha") is not None and icpt is not None:
      ax.plot(grid + dx, np.exp(icpt + shared["alpha"] * grid), "--", color=color, lw=1)
  if shared.get("alpha") is not None:
    ax.plot([], [], "--", color="0.4", lw=1,
            label=f"shared (dashed, per modulus): alpha {shared['alpha']:.2f}"
                  f"{_ci_text(shared.get('alpha_ci'))}")
  ax.errorbar([], [], yerr=[], fmt="s", color="0.6", mec="k", ms=6, capsize=3,
              label="cell median, 95% CI over seeds")
  ax.scatter([], [], s=22, marker="^", facecolors="none", edgecolors="0.4",
             label="seed censored at its budget")
  ax.set_yscale("log")
  _plain_log_axis(ax.yaxis)
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
  from grokjax.stats import critical_norm, seed_bootstrap
  fig, ax = plt.subplots(figsize=(5.4, 4.2))
  per = result["per_modulus"]
  ps = np.array([int(p) for p in per], float)
  wc = np.array([np.nan if per[p]["wc"] is None else per[p]["wc"] for p in per], float)
  err = None
  if rows:
    lr0 = result.get("lr")
    cis = [seed_bootstrap([r for r in rows if r["p"] == int(p) and r["arm"] == "free"
                           and (lr0 is None or np.isclose(r["lr"], lr0))],
                          lambda rs: critical_norm(rs) if rs else None, n_boot=400)[1]
           for p in per]
    err = np.array([[w - c[0], c[1] - w] if c else [0, 0] for w, c in zip(wc, cis)]).T
  ax.errorbar(ps, wc, yerr=err, fmt="o", capsize=3, label="W_c, median over seeds"
              + (" (95% CI)" if err is not None else ""))
  law = result.get("power_law", {})
  if law.get("beta") is not None:
    x = np.geomspace(ps.min(), ps.max(), 50)
    ax.plot(x, law["c"] * x ** law["beta"], "-",
            label=f"{law['c']:.2f} p^{law['beta']:.3f}{_ci_text(law.get('beta_ci'))}, "
                  f"R2 {law['r2']:.3f}")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xticks(ps, [f"{p:g}" for p in ps])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  _plain_log_axis(ax.yaxis)
  ax.set_xlabel("modulus p (log)")
  ax.set_ylabel("W_c = ||W|| at T_grok (log)")
  ax.set_title(f"critical norm against p (lr {result.get('lr', '')})", fontsize=9)
  ax.legend(fontsize=8)
  return _save(fig, path)


def wc_vs_wd(path: str, result: dict[str, Any]):
  """W_c against the weight decay, one line per learning rate, with seed-bootstrap 95 % CIs."""
  fig, ax = plt.subplots(figsize=(5.2, 4.2))
  for k, (p, per) in enumerate(result["per_modulus"].items()):
    wds = sorted(per["per_wd"], key=float)
    lrs = list(per["per_wd"][wds[0]]["per_lr"])
    for j, lr in enumerate(lrs):
      cells = [per["per_wd"][w]["per_lr"][lr] for w in wds]
      x = np.array([float(w) for w in wds]) * (1 + 0.03 * (j - (len(lrs) - 1) / 2))
      y = np.array([np.nan if c["wc"] is None else c["wc"] for c in cells], float)
      lo = [y[i] - c["wc_ci"][0] if c.get("wc_ci") else 0 for i, c in enumerate(cells)]
      hi = [c["wc_ci"][1] - y[i] if c.get("wc_ci") else 0 for i, c in enumerate(cells)]
      ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", capsize=3, color=f"C{j}",
                  label=f"p={p} lr {lr}")
  ax.set_xscale("log")
  ticks = sorted({float(w) for per in result["per_modulus"].values() for w in per["per_wd"]})
  ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_xlabel("weight decay lambda")
  ax.set_ylabel("W_c = median ||W|| at T_grok (95% CI)")
  ax.legend(fontsize=8)
  return _save(fig, path)


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
  free = lambda k: all(missing for missing, _ in k)  # a free run: no swept value set
  order = sorted(dict.fromkeys(key(i) for i in picked if not free(key(i))))
  cmap = plt.get_cmap("viridis")
  shade = {v: cmap(j / max(1, len(order) - 1) * 0.9) for j, v in enumerate(order)}
  shade.update({key(i): "0.45" for i in picked if free(key(i))})
  picked.sort(key=lambda i: (not free(key(i)), key(i)))  # the legend: free first, then in order
  fig, (ax_acc, ax_norm) = plt.subplots(2, 1, figsize=(7.2, 6.2), sharex=True)
  named = set()
  for i in picked:
    r, color = rows[i], shade[key(i)]
    keep = (steps[i] > 0) & np.isfinite(values["test_acc"][i])
    x = steps[i][keep]
    label = ("free control" if free(key(i)) else
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
  return _save(fig, path)


def summary_and_curves(folder: str, name: str, draw) -> list[str]:
  """A finished folder's one summary figure, draw(path, its fit or summary, its runs),
  saved as figures/`name`, and its curves where curves.npz is there."""
  from grokjax.results import load
  res = load(folder, curves=False)
  return [draw(os.path.join(folder, "figures", name), res.fit, res.runs), *curves_of(res)]


def curves_of(res) -> list[str]:
  """figures/curves.png of a loaded folder (`grokjax.load`), or nothing without curves."""
  if not res.curves:
    return []
  return [curves(os.path.join(res.folder, "figures", "curves.png"), res.steps, res.curves,
                 res.runs)]


def rho_lr_matrix(path: str, result: dict[str, Any], runs: list[dict] | None = None):
  """Heat map of median T_grok over rho x learning rate, with the free control row; with
  the runs, each cell also shows its 95 % seed-bootstrap CI."""
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
      ci = median_with_ci(cell)[1] if cell else None
      text = "censored" if np.isnan(v) else f"{v:,.0f}"
      if ci:
        text += f"\n[{ci[0]:,.0f}, {ci[1]:,.0f}]"
      ax.text(j, i, text, ha="center", va="center", fontsize=7,
              color="k" if np.isfinite(v) and np.log10(v) > bright else "w")
  ax.set_xticks(range(len(lrs)), [f"lr {l}" for l in lrs])
  ax.set_yticks(range(len(rows)), [f"rho {r}" for r in rhos] + ["free"])
  fig.colorbar(im, ax=ax, label="log10 median T_grok")
  from grokjax.fit import format_fold
  # the report's two folds: across rho at the smallest lr, across lr as a median over rows
  first = min(result["fold_across_rho"], key=float)
  ax.set_title(f"p={result['p']}: median T_grok" + (" [95% CI]" if runs else "")
               + f"; fold across rho at lr {first} "
               f"{format_fold(result['fold_across_rho'][first])}, across lr (median over rho) "
               f"{format_fold(result['fold_lr_median'])}", fontsize=8)
  return _save(fig, path)


def wc_vs_frac(path: str, per_frac: dict[float, list[dict]], paper: dict[float, float] | None,
               n_boot: int = 400):
  """W_c against the train fraction at one modulus, from one free_training folder per
  fraction: the mean norm at T_grok (the paper's estimator) and the median (ours), each
  with its 95 % seed-bootstrap CI, beside the paper's values (open squares)."""
  from grokjax.stats import critical_norm, seed_bootstrap
  mean = lambda rs: (float(np.mean([r["norm_at_grok"] for r in rs if r["grokked"]
                                    and not r["diverged"]])) if any(r["grokked"] for r in rs)
                     else None)
  fig, ax = plt.subplots(figsize=(5.6, 4.2))
  fracs = sorted(per_frac)
  for k, (stat, name) in enumerate(((mean, "mean (the paper's estimator)"),
                                    (lambda rs: critical_norm(rs) if rs else None, "median"))):
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
  return _save(fig, path)


def ablation(path: str, variants: dict[str, tuple[list, dict]]):
  """The delay law of each variant side by side, on a shared y axis."""
  fig, axes = plt.subplots(1, len(variants), figsize=(6.0 * len(variants), 4.6), sharey=True)
  for ax, (name, (rows, result)) in zip(np.atleast_1d(axes), variants.items()):
    _draw_delay_law(ax, rows, result, name)
  return _save(fig, path)


def interventions(path: str, result: dict[str, Any], rows: list[dict] | None = None):
  """Left: median T_grok of one-shot rescales and sustained holds against rho, with the
  free control's median as a line. Right: the one-shot kicks of single weight groups
  (x kick_factor at t_int), one column each. Log T_grok axes; with the runs `rows`, every
  median carries its 95 % seed-bootstrap CI."""
  fig, (ax, axk) = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True,
                                gridspec_kw=dict(width_ratios=[2.2, 1]))

  def point(a, x, key, rho=None, group=None, **style):
    """One median with its CI (from rows) at x; a median beyond the budget as a triangle."""
    cell = [r for r in rows or [] if r["arm"] == key and (rho is None or r["rho"] == rho)
            and (group is None or r.get("group") == group)]
    med, ci = median_with_ci(cell) if cell else (None, None)
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
  _plain_log_axis(ax.yaxis)
  ax.tick_params(axis="y", which="minor", labelsize=7)
  ax.set_xlabel("rho (norm in units of W_c)")
  ax.set_ylabel("median T_grok (steps, log)" + (", 95% CI" if rows else ""))
  ax.set_title(f"p={result['p']}: one-shot span {_fold(result['span_oneshot'])}, "
               f"sustained span {_fold(result['span_hold'])}", fontsize=9)
  ax.legend(fontsize=7)
  axk.legend(fontsize=7)
  return _save(fig, path)


def _fold(f):
  from grokjax.fit import format_fold
  return format_fold(f)


def both_laws(path: str, free_rows: list[dict[str, Any]], clamp_rows: list[dict] | None):
  """The two halves of the law on one axis of norm: T_grok of free runs against the
  starting norm (log x: the logarithmic delay is a straight line) and, from a pinned_norm
  folder, T_grok of held runs against the held norm (log y: the exponential one)."""
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
      med, ci = median_with_ci(cell)
      if med is not None:
        pts.append((float(np.median([r["start_norm"] for r in cell])), med, ci))
    if pts:
      x, y, cis = zip(*pts)
      err = np.array([[m - c[0], c[1] - m] if c else [0, 0] for m, c in zip(y, cis)]).T
      ax.errorbar(x, y, yerr=err, fmt="s-", ms=5, mec="k", capsize=3, color=f"C{k}",
                  label=f"free: lr {lr:g}, wd {wd:g} (cell median, 95% CI)")
  ax.set_xscale("log")
  _plain_log_axis(ax.xaxis)
  ax.set_xlabel("starting norm ||W_0|| (log)")
  ax.set_ylabel("T_grok (steps)")
  ax.set_title("free training: T_grok against the starting norm (the law: linear in its log)",
               fontsize=9)
  ax.legend(fontsize=7)
  if clamp_rows:
    ax = axes[0, 1]
    for k, p in enumerate(sorted({r["p"] for r in clamp_rows})):
      rs = [r for r in clamp_rows if r["p"] == p and r["grokked"] and not r["diverged"]]
      ax.plot([r["target_norm"] for r in rs], [r["t_grok"] for r in rs], "o", ms=3,
              alpha=0.6, color=f"C{k}", label=f"held: p={p}")
    ax.set_yscale("log")
    ax.set_xlabel("held norm rho W_c")
    ax.set_ylabel("T_grok (steps, log)")
    ax.set_title("pinned norm: T_grok against the held norm (the law: its log linear in it)",
                 fontsize=9)
    ax.legend(fontsize=7)
  return _save(fig, path)


def matched_delay(path: str, pairs: np.ndarray, result: dict[str, Any]):
  """The free-norm delay seed by seed: T_grok(s) - T_grok(1) of the same seed against
  ln(s) / (lr wd) (`pairs`: rows [lr, wd, x, y], `grokjax.free_norm_delay.matched_pairs`),
  one colour per (lr, wd), with the pooled matched fit and its CI."""
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
  return _save(fig, path)


def sparse_parity(path: str, result: dict[str, Any], rows: list[dict] | None = None):
  """The sparse-parity rows, ours (filled, with 95 % seed-bootstrap CIs from the runs
  `rows`) beside the authors' (open): W_c against m and against weight decay, median
  T_grok against the learning rate, clamp slowdowns."""
  from grokjax import paper
  from grokjax.stats import critical_norm, seed_bootstrap
  a = paper.SPARSE_PARITY
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
      return seed_bootstrap(cell, lambda rs: critical_norm(rs) if rs else None, n_boot=400)[1]
    return median_with_ci(cell)[1]

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
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)

  pairs(axes[0], "m", result["by_m"], a["wc_by_m"], "wc", "training examples m", "W_c")
  pairs(axes[1], "wd", result["by_wd"], a["wc_by_wd"], "wc", "weight decay",
        "W_c (no point: no grok)", logx=True)
  pairs(axes[2], "lr", result["by_lr"], a["t_grok_by_lr"], "median_t_grok", "learning rate",
        "median T_grok (log)", logx=True)
  axes[2].set_yscale("log")
  _plain_log_axis(axes[2].yaxis)
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
  return _save(fig, path)
