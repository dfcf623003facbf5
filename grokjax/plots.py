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
  from grokjax.io import atomic_bytes
  import io as _io
  buf = _io.BytesIO()
  fig.tight_layout()
  fig.savefig(buf, format="png", dpi=120)
  plt.close(fig)
  atomic_bytes(path, buf.getvalue())
  _own(path)
  return path


OWNED = ".grokjax-figures"  # the figures grokjax wrote in a folder: all --force-new may delete


def _own(path: str) -> None:
  listing = os.path.join(os.path.dirname(path) or ".", OWNED)
  names = set(open(listing).read().split()) if os.path.exists(listing) else set()
  if os.path.basename(path) not in names:
    from grokjax.io import atomic_bytes
    atomic_bytes(listing, ("\n".join(sorted(names | {os.path.basename(path)})) + "\n").encode())


def delay_law(path: str, rows: list[dict[str, Any]], result: dict[str, Any], title: str = ""):
  """ln T_grok against rho: per-seed points (open: censored, x: softmax collapse), cell
  medians, the fitted line per modulus (solid) and the shared fit (dashed)."""
  fig, ax = plt.subplots(figsize=(6.4, 4.6))
  _draw_delay_law(ax, rows, result, title)
  return _save(fig, path)


def _draw_delay_law(ax, rows, result, title):
  moduli = sorted({r["p"] for r in rows})
  shared = result.get("shared", {})
  for k, p in enumerate(moduli):
    color = f"C{k}"
    rs = [r for r in rows if r["p"] == p and not r["diverged"]]
    rho = np.array([r["rho"] for r in rs], float)
    t = np.array([r["t_grok"] for r in rs], float)
    cens = np.array([r["censored"] for r in rs], bool)
    coll = np.array([(r.get("collapse_max") or 0) >= COLLAPSE_MARK for r in rs], bool)
    jitter = (np.arange(len(rho)) % 7 - 3) * 0.003
    ax.scatter(rho[~cens] + jitter[~cens], np.log(t[~cens]), s=12, alpha=0.5, color=color)
    ax.scatter(rho[cens] + jitter[cens], np.log(t[cens]), s=18, facecolors="none",
               edgecolors=color, label=None)
    if coll.any():
      ax.scatter(rho[coll], np.log(t[coll]), marker="x", s=25, color="k")
    cells = result["per_modulus"].get(p, result["per_modulus"].get(str(p), {}))
    med = [(float(k_), v["median_t_grok"]) for k_, v in cells.get("cells", {}).items()
           if v["median_t_grok"]]
    if med:
      x, y = zip(*sorted(med))
      ax.plot(x, np.log(y), "s", color=color, ms=7, mec="k")
    lo, hi = result.get("fit_rhos") or (-np.inf, np.inf)
    inside = rho[(rho >= lo - 1e-9) & (rho <= hi + 1e-9)]
    grid = np.linspace(inside.min(), inside.max(), 50) if len(inside) else np.array([])
    if cells.get("alpha") is not None:
      ax.plot(grid, cells["intercept"] + cells["alpha"] * grid, "-", color=color,
              label=f"p={p}: alpha={cells['alpha']:.2f}, R2={cells['r2']:.3f}")
    icpt = (shared.get("intercepts") or {}).get(str(p), (shared.get("intercepts") or {}).get(p))
    if shared.get("alpha") is not None and icpt is not None:
      ax.plot(grid, icpt + shared["alpha"] * grid, "--", color=color, lw=1)
  if shared.get("alpha") is not None:
    ax.plot([], [], "k--", lw=1, label=f"shared alpha={shared['alpha']:.2f}, R2={shared['r2']:.3f}")
  ax.set_xlabel("rho (held norm / W_c)")
  ax.set_ylabel("ln T_grok (steps)")
  span = (f"; fitted over rho {result['fit_rhos'][0]:g}-{result['fit_rhos'][1]:g}"
          if result.get("fit_rhos") else "")
  ax.set_title(title or "Delay law: points per seed, squares cell medians, open censored" + span,
               fontsize=9)
  ax.legend(fontsize=8)


def wc_vs_p(path: str, result: dict[str, Any]):
  """W_c against p on log-log axes with the power-law fit."""
  fig, ax = plt.subplots(figsize=(5.2, 4.2))
  per = result["per_modulus"]
  ps = np.array([int(p) for p in per], float)
  wc = np.array([np.nan if per[p]["wc"] is None else per[p]["wc"] for p in per], float)
  ax.loglog(ps, wc, "o", label="W_c (median over seeds)")
  law = result.get("power_law", {})
  if law.get("beta") is not None:
    x = np.geomspace(ps.min(), ps.max(), 50)
    ax.loglog(x, law["c"] * x ** law["beta"], "-",
              label=f"{law['c']:.2f} p^{law['beta']:.3f}, R2={law['r2']:.3f}")
  ax.set_xlabel("p")
  ax.set_ylabel("W_c = ||W|| at T_grok")
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


def curves(path: str, phases, max_runs: int = 4):
  """Accuracy and ||W|| of a few runs per phase, with T_mem and T_grok marked."""
  fig, (ax_acc, ax_norm) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
  k = 0
  for res, rows in phases:
    pick = np.linspace(0, len(rows) - 1, min(max_runs, len(rows))).astype(int)
    for i in np.unique(pick):
      r, color = rows[i], f"C{k % 10}"
      k += 1
      label = f"p={r['p']} {r['arm']}" + (f" rho={r['rho']:g}" if r["rho"] is not None else "") \
          + f" seed={r['seed']}"
      ax_acc.plot(res.steps, res.curves["test_acc"][i], color=color, label=label)
      ax_acc.plot(res.steps, res.curves["train_acc"][i], color=color, ls=":", lw=1)
      ax_norm.plot(res.steps, res.curves["norm"][i], color=color)
      for t, ls in ((r["t_mem"], ":"), (r["t_grok"] if r["grokked"] else -1, "--")):
        if t and t > 0:
          ax_acc.axvline(t, color=color, ls=ls, lw=0.8)
  ax_acc.set_ylabel("accuracy (test solid, train dotted)")
  ax_norm.set_ylabel("||W||")
  ax_norm.set_xlabel("step (T_mem dotted, T_grok dashed)")
  ax_acc.set_xscale("log")
  ax_acc.legend(fontsize=6, ncol=2)
  return _save(fig, path)


def rho_lr_matrix(path: str, result: dict[str, Any]):
  """Heat map of median T_grok over rho x learning rate, with the free control row."""
  rhos = list(result["median_t_grok"])
  lrs = list(result["free_control"])
  rows = [[result["median_t_grok"][r][l] for l in lrs] for r in rhos]
  rows.append([result["free_control"][l] for l in lrs])
  grid = np.array([[np.nan if v is None else v for v in row] for row in rows], float)
  fig, ax = plt.subplots(figsize=(1.3 * len(lrs) + 2.5, 0.6 * len(rows) + 1.8))
  im = ax.imshow(np.log10(grid), cmap="viridis", aspect="auto")
  for i, row in enumerate(grid):
    for j, v in enumerate(row):
      ax.text(j, i, "censored" if np.isnan(v) else f"{v:.0f}", ha="center", va="center",
              color="w", fontsize=8)
  ax.set_xticks(range(len(lrs)), [f"lr {l}" for l in lrs])
  ax.set_yticks(range(len(rows)), [f"rho {r}" for r in rhos] + ["free"])
  fig.colorbar(im, ax=ax, label="log10 median T_grok")
  from grokjax.fit import format_fold
  # the report's two folds: across rho at the smallest lr, across lr as a median over rows
  first = min(result["fold_across_rho"], key=float)
  ax.set_title(f"p={result['p']}: fold across rho at lr {first} "
               f"{format_fold(result['fold_across_rho'][first])}, across lr (median over rho) "
               f"{format_fold(result['fold_lr_median'])}", fontsize=9)
  return _save(fig, path)


def ablation(path: str, variants: dict[str, tuple[list, dict]]):
  """The delay law of each variant side by side, on a shared y axis."""
  fig, axes = plt.subplots(1, len(variants), figsize=(6.0 * len(variants), 4.6), sharey=True)
  for ax, (name, (rows, result)) in zip(np.atleast_1d(axes), variants.items()):
    _draw_delay_law(ax, rows, result, name)
  return _save(fig, path)


def interventions(path: str, result: dict[str, Any]):
  """Median T_grok of one-shot rescales and sustained holds against rho, the free control
  as a line, and the one-shot group kicks as points at rho = 1 (log scale)."""
  fig, ax = plt.subplots(figsize=(6.4, 4.6))
  for key, label, color in (("oneshot", "one-shot rescale at t_int, then free", "C0"),
                            ("hold", "sustained hold from t_int", "C3")):
    xs = [float(k) for k, c in result[key].items() if c["median_t_grok"] is not None]
    ys = [c["median_t_grok"] for c in result[key].values() if c["median_t_grok"] is not None]
    ax.plot(xs, ys, "o-", color=color, label=label)
    cens = [float(k) for k, c in result[key].items() if c["median_t_grok"] is None]
    if cens:
      ax.plot(cens, [result["budget"]] * len(cens), "^", color=color, mfc="none",
              label=f"{key}: median beyond the budget")
  for j, (group, c) in enumerate(result["kick"].items()):
    if c["median_t_grok"] is not None:
      ax.plot(1.0 + 0.015 * (j - 1.5), c["median_t_grok"], "s", color=f"C{4 + j}",
              label=f"one-shot x{result['kick_factor']:g}: {group}")
  if result["control"]["median_t_grok"] is not None:
    ax.axhline(result["control"]["median_t_grok"], color="k", ls=":", label="free control")
  ax.set_yscale("log")
  ax.set_xlabel("rho (norm in units of W_c)")
  ax.set_ylabel("median T_grok (steps)")
  ax.set_title(f"p={result['p']}: one-shot span {_fold(result['span_oneshot'])}, "
               f"sustained span {_fold(result['span_hold'])}", fontsize=9)
  ax.legend(fontsize=7)
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
    rs = [r for r in free_rows if r["lr"] == lr and r["wd"] == wd and r["grokked"]]
    ax.plot([r["start_norm"] for r in rs], [r["t_grok"] for r in rs], "o", ms=3, alpha=0.6,
            color=f"C{k}", label=f"free: lr {lr:g}, wd {wd:g}")
  ax.set_xscale("log")
  ax.set_xlabel("starting norm ||W_0|| (log)")
  ax.set_ylabel("T_grok (steps)")
  ax.set_title("free training: T_grok linear in ln(starting norm)", fontsize=9)
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
    ax.set_title("pinned norm: ln T_grok linear in the held norm", fontsize=9)
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


def sparse_parity(path: str, result: dict[str, Any]):
  """The sparse-parity rows, ours (filled) beside the authors' (open): W_c against m and
  against weight decay, median T_grok against the learning rate, clamp slowdowns."""
  from grokjax import paper
  a = paper.SPARSE_PARITY
  fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))

  def pairs(ax, ours: dict, theirs: dict, key: str, xlabel: str, ylabel: str, logx=False):
    xs = [float(k) for k in ours]
    ax.plot(xs, [np.nan if v[key] is None else v[key] for v in ours.values()], "o-", label="grokjax")
    tx = [x for x, v in theirs.items() if v is not None]
    ax.plot(tx, [theirs[x] for x in tx], "s", mfc="none", color="k", label="authors")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
      ax.set_xscale("log")
    ax.legend(fontsize=7)

  pairs(axes[0], result["by_m"], a["wc_by_m"], "wc", "training examples m", "W_c")
  pairs(axes[1], result["by_wd"], a["wc_by_wd"], "wc", "weight decay", "W_c (no point: no grok)",
        logx=True)
  pairs(axes[2], result["by_lr"], a["t_grok_by_lr"], "median_t_grok", "learning rate",
        "median T_grok", logx=True)
  axes[2].set_yscale("log")
  rhos = list(result["by_rho"])
  ax = axes[3]
  ax.bar(np.arange(len(rhos)) - 0.2, [result["by_rho"][r]["slowdown"]["value"] for r in rhos],
         0.4, label="grokjax")
  ax.bar(np.arange(len(rhos)) + 0.2, [a["slowdown"].get(float(r), np.nan) for r in rhos], 0.4,
         color="none", edgecolor="k", label="authors")
  ax.axhline(1.0, color="grey", lw=0.8)
  ax.set_xticks(np.arange(len(rhos)), [f"rho {r}" for r in rhos])
  ax.set_ylabel("clamp / free median T_grok")
  ax.legend(fontsize=7)
  fig.suptitle(f"sparse parity n={result['n']}, m={result['m']}", fontsize=9)
  return _save(fig, path)
