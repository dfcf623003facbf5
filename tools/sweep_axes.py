"""Compare pinned_norm / free_training folders that differ in one training choice (the
optimiser, the loss, a gradient transform, the output temperature) with a control folder
trained on the same seeds: W_c, the delay law, every cell's median T_grok, the float32 floor,
and the seed-paired T_grok ratio to the control (Wilcoxon signed-rank on ln T_grok).

    python tools/sweep_axes.py --control adamw=/runs/pn_T1 T2=/runs/pn_T2 mse=/runs/pn_mse \
        --out docs/results/sweep_axes

One value of a --scan folder is NAME=FOLDER@VALUE (its runs at that value, and for a
pinned_norm folder the law fit.json gives that value): `b1_0.95=/runs/pn_b1scan@0.95`.

writes OUT/summary.json, OUT/summary.md and, where a folder held the norm, OUT/t_grok.png
(median T_grok against rho, one panel per modulus, one line per folder; a cell whose median
is censored is left out). Every number is read from the folders' runs.csv
and fit.json; nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from grokjax.analysis.compare import paired_ratio
from grokjax.analysis.stats import (cell_summary, critical_norm_or_none, median_or_none,
                                    seed_bootstrap, seed_cv, usable)
from grokjax.harness import io
from grokjax.harness.config import Config
from grokjax.harness.grids import rows_at


def setting(cfg: dict) -> str:
  """What a folder changes from the paper's training, in words (its lrs and wd always)."""
  parts = [f"{k} {cfg.get(k):g}" if isinstance(cfg.get(k), float) else f"{k} {cfg.get(k)}"
           for k, paper in Config.PAPER_CHOICES if cfg.get(k, paper) != paper]
  parts.append(f"lr {','.join(f'{x:g}' for x in cfg['lrs'])}, wd {cfg['wd']:g}")
  if cfg.get("wc_from"):
    parts.append(f"W_c from {os.path.basename(os.path.normpath(cfg['wc_from']))}")
  return "; ".join(parts)


def read(folder: str, value: float | None = None) -> tuple[dict, list[dict], dict]:
  """A folder's configuration, runs and fit.json ({} where it has none); with `value`, a
  --scan folder's runs at that value and its law there."""
  cfg = io.read_json(os.path.join(folder, "config.json"))["config"]
  rows = io.read_runs(os.path.join(folder, "runs.csv"))
  fit_path = os.path.join(folder, "fit.json")
  fit = io.read_json(fit_path) if os.path.exists(fit_path) else {}
  if value is not None:
    axis = next(iter(cfg["scan"]))
    rows = rows_at(rows, axis, value)
    fit = (fit.get("scan") or {}).get("per_value", {}).get(f"{value:g}", {})
  return cfg, rows, fit


def folder_summary(name: str, folder: str, control_rows=None, n_boot: int = 1000,
                   value: float | None = None) -> dict:
  """One folder (with `value`, one value of a --scan folder): per modulus W_c with its seed
  CI and CV, the delay-law fit of its fit.json, and per cell (arm, rho, lr) the summary, the
  floor and the paired ratio to the control's same cell (its same lr, or its one lr when it
  trained one: a learning-rate control)."""
  cfg, rows, fit = read(folder, value)
  what = setting(cfg) + ("" if value is None else f"; {next(iter(cfg['scan']))} {value:g}")
  out = dict(name=name, folder=folder, experiment=cfg["experiment"], setting=what,
             moduli={}, **({} if value is None else {"value": value}))
  for p in sorted({r["p"] for r in rows}):
    mine = [r for r in rows if r["p"] == p]
    free = [r for r in mine if r["arm"] == "free"]
    wc, wc_ci = seed_bootstrap(free, critical_norm_or_none, n_boot) if free else (None, None)
    per_p = (fit.get("per_modulus") or {}).get(str(p), {})
    cells = []
    for arm, rho, lr in sorted({(r["arm"], r["rho"], r["lr"]) for r in mine},
                               key=lambda k: (k[0] != "free", k[1] or 0, k[2])):
      cell = [r for r in mine if (r["arm"], r["rho"], r["lr"]) == (arm, rho, lr)]
      floors = [r.get("t_floor") for r in usable(cell)]
      c = dict(arm=arm, rho=rho, lr=lr, **cell_summary(cell),
               n_floor=sum(f is not None for f in floors),
               median_t_floor=median_or_none([f for f in floors if f is not None and np.isfinite(f)]))
      if control_rows is not None:
        ref = [r for r in control_rows if r["p"] == p and r["arm"] == arm and r["rho"] == rho
               and (r["lr"] == lr or len({x["lr"] for x in control_rows}) == 1)]
        if ref:
          c["vs_control"] = paired_ratio(ref, cell)
      cells.append(c)
    out["moduli"][str(p)] = dict(
        wc=wc if free else per_p.get("wc"), wc_ci=wc_ci, wc_cv=seed_cv(free) if free else None,
        wc_given=not free, alpha=per_p.get("alpha"), alpha_ci=per_p.get("alpha_ci"),
        r2=per_p.get("r2"), aft_alpha=(per_p.get("aft") or {}).get("alpha"),
        aft_alpha_ci=(per_p.get("aft") or {}).get("alpha_ci"), cells=cells)
  shared = fit.get("shared") or {}
  if shared.get("alpha") is not None:
    aft = shared.get("aft") or {}
    out["shared"] = dict(alpha=shared["alpha"], alpha_ci=shared.get("alpha_ci"),
                         aft_alpha=aft.get("alpha"), aft_alpha_ci=aft.get("alpha_ci"),
                         aft_n_censored=aft.get("n_censored"))
  return out


def _num(x, fmt="{:.0f}") -> str:
  return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def _ci(ci, fmt="{:.0f}") -> str:
  return f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else ""


def markdown(summaries: list[dict], control: str) -> str:
  lines = ["W_c: the median norm at T_grok of the free runs (pooled over a folder's learning "
           "rates), its seed-bootstrap CI and seed CV; \"given\": read from another folder "
           "(--wc-from). alpha: the per-modulus delay-law fit on the cell medians.", "",
           "| folder | what it changes | p | W_c [95 % CI] (seed CV) | alpha [95 % CI] (R^2) |",
           "|---|---|---|---|---|"]
  for s in summaries:
    for p, m in s["moduli"].items():
      wc = (_num(m["wc"], "{:.2f}") + _ci(m["wc_ci"], "{:.2f}")
            + (f" ({m['wc_cv']:.3f})" if m["wc_cv"] is not None and np.isfinite(m["wc_cv"])
               else "") + (" (given)" if m["wc_given"] else ""))
      alpha = (_num(m["alpha"], "{:.2f}") + _ci(m["alpha_ci"], "{:.2f}")
               + (f" ({m['r2']:.3f})" if m["r2"] is not None else ""))
      lines.append(f"| {s['name']} | {s['setting']} | {p} | {wc} | {alpha} |")
  shared = [s for s in summaries if s.get("shared")]
  if shared:
    lines += ["", "The delay law fitted over both moduli (one alpha, an intercept per modulus): "
              "on the cell medians, and per run with censoring (log-normal AFT).", "",
              "| folder | shared alpha [95 % CI] | per-run (AFT) alpha [95 % CI] (censored runs) |",
              "|---|---|---|"]
    for s in shared:
      sh = s["shared"]
      lines.append(f"| {s['name']} | {_num(sh['alpha'], '{:.2f}')}{_ci(sh['alpha_ci'], '{:.2f}')} | "
                   f"{_num(sh['aft_alpha'], '{:.2f}')}{_ci(sh['aft_alpha_ci'], '{:.2f}')} "
                   f"({_num(sh['aft_n_censored'], '{}')}) |")
  lines += ["", f"Per cell: grok fraction, median T_grok (censored runs as lower bounds), floor "
            f"(runs whose float32 floor arrived, median t_floor), and the seed-paired ratio to "
            f"`{control}` with its Wilcoxon p.", "",
            "| folder | p | cell | grokked | median T_grok | floor (median t_floor) | "
            "ratio to control (Wilcoxon p) |", "|---|---|---|---|---|---|---|"]
  for s in summaries:
    for p, m in s["moduli"].items():
      for c in m["cells"]:
        cell = ("free" if c["arm"] == "free" else f"rho {c['rho']:g}") + f", lr {c['lr']:g}"
        vs = c.get("vs_control")
        ratio = "-"
        if vs and s["name"] != control:
          ratio = (_num(vs["median_ratio"], "x{:.2f}") + (
              f" ({vs['wilcoxon_p']:.3g})" if vs["wilcoxon_p"] is not None else "")
                   + (f", {vs['n_ratio_lower_bound']} lower bounds"
                      if vs["n_ratio_lower_bound"] else ""))
        lines.append(f"| {s['name']} | {p} | {cell} | {c['n'] - c['n_censored'] - c['n_diverged']}"
                     f"/{c['n']} | {_num(c['median_t_grok'])} | {c['n_floor']}/{c['n']} "
                     f"({_num(c['median_t_floor'])}) | {ratio} |")
  return "\n".join(lines) + "\n"


def figure(summaries: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  moduli = sorted({p for s in summaries for p, m in s["moduli"].items()
                   if any(c["arm"] == "clamp" for c in m["cells"])}, key=int)
  if not moduli:
    return  # free runs only: the tables say it all
  fig, axes = plt.subplots(1, len(moduli), figsize=(5 * len(moduli), 4), squeeze=False)
  for ax, p in zip(axes[0], moduli):
    for s in summaries:
      cells = [c for c in s["moduli"].get(p, {}).get("cells", []) if c["arm"] == "clamp"]
      x = [c["rho"] for c in cells if c["median_t_grok"] is not None]
      y = [c["median_t_grok"] for c in cells if c["median_t_grok"] is not None]
      if x:
        ax.semilogy(x, y, "o-", label=s["name"])
    ax.set_xlabel("held norm rho (units of each folder's W_c)")
    ax.set_ylabel("median T_grok")
    ax.set_title(f"p = {p}")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def _pick(name: str, given: str) -> tuple[str, float | None]:
  """NAME=FOLDER or NAME=FOLDER@VALUE -> (folder, value); ValueError, one line, for a --scan
  folder without a value (it pools several settings in one runs.csv), a value it did not
  scan, or a value of a folder that is not a scan."""
  folder, at, text = given.rpartition("@") if "@" in given else (given, "", "")
  scan = io.read_json(os.path.join(folder, "config.json"))["config"].get("scan")
  values = next(iter(scan.values())) if scan else []
  if not at:
    if scan:
      raise ValueError(f"{name}={folder} is a --scan folder ({next(iter(scan))}): take one of "
                       f"its values as {name}={folder}@VALUE (one of "
                       f"{', '.join(f'{v:g}' for v in values)})")
    return folder, None
  if not scan:
    raise ValueError(f"{name}={given}: {folder} is not a --scan folder, it has no values")
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not any(np.isclose(value, v) for v in values):
    raise ValueError(f"{name}={given}: {text!r} is not one of the values {folder} scanned "
                     f"({', '.join(f'{v:g}' for v in values)})")
  return folder, value


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("folders", nargs="+", help="NAME=FOLDER, the control first")
  ap.add_argument("--control", default=None, help="NAME of the control (default the first)")
  ap.add_argument("--out", required=True)
  ap.add_argument("--n-boot", type=int, default=1000)
  args = ap.parse_args(argv)
  named = [f.split("=", 1) for f in args.folders]
  if any(len(n) != 2 for n in named):
    print("sweep_axes: give each folder as NAME=FOLDER (or NAME=FOLDER@VALUE)", file=sys.stderr)
    return 2
  picked = []
  for n, f in named:
    try:
      picked.append((n, *_pick(n, f)))
    except ValueError as e:
      print(f"sweep_axes: {e}", file=sys.stderr)
      return 2
  control = args.control or picked[0][0]
  _, ctrl_folder, ctrl_value = next(x for x in picked if x[0] == control)
  ctrl_rows = read(ctrl_folder, ctrl_value)[1]
  summaries = [folder_summary(n, f, ctrl_rows, args.n_boot, v) for n, f, v in picked]
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "summary.json"), "w") as fh:
    json.dump(dict(control=control, folders=summaries), fh, indent=1, default=io.plain)
  with open(os.path.join(args.out, "summary.md"), "w") as fh:
    fh.write(markdown(summaries, control))
  figure(summaries, os.path.join(args.out, "t_grok.png"))
  print(markdown(summaries, control))
  return 0


if __name__ == "__main__":
  sys.exit(main())
