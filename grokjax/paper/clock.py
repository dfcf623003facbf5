"""The report's section on the delay law's clock and shape: alpha on the paper's clock
(T_grok from step 0) and on the clamp's (T_grok - t_int) for every delay-law folder and,
with the authors' data, for theirs over the same cells; the shape of the dense sweep; the
predictor's cross-validation over the committed moduli; the score of a locked prediction.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Sequence

import numpy as np

from grokjax.analysis import fit, shape
from grokjax.analysis.stats import fit_arrays, usable
from grokjax.harness import io
from grokjax.paper import predictor
from grokjax.paper.table import Folder, fmt_ci, num

MLP_T_INT = 500  # the authors' clamp start for the MLP (SPEC.md)


def _alphas(rows: Sequence[dict], n_boot: int, t_int: int | None = None) -> dict[str, Any]:
  """alpha with its CI on both clocks over these clamp rows (one modulus and lr), or the
  shared fit over several moduli."""
  try:
    shifted, before = shape.on_clamp_clock(usable(rows), 10, t_int)
  except ValueError as e:  # a folder that records no t_int
    shifted, before = None, None
    out = {"clamp": {"error": str(e)}}
  else:
    out = {}
  for name, rs in (("step0", usable(rows)), ("clamp", shifted)):
    if rs is None:
      continue
    ps = {r["p"] for r in rs}
    if len(ps) > 1:
      rho, t, cens, seed = fit_arrays(rs)
      out[name] = fit.safe(fit.fit_shared_delay_law, rho, t, [r["p"] for r in rs], cens, seed,
                           n_boot=n_boot)
    else:
      out[name] = fit.safe(fit.fit_delay_law, *fit_arrays(rs), n_boot=n_boot)
  out["before"] = before
  return out


def authors_rows(cells, experiment: str, lr: float = 1e-3) -> list[dict]:
  """Their clamp cells of one experiment and lr as rows (`reference.as_rows`), each with
  the MLP's clamp start."""
  from grokjax.paper.reference import as_rows
  return [dict(r, t_int=MLP_T_INT) for r in as_rows(cells, experiment)
          if r["arm"] == "clamp" and np.isclose(r["lr"], lr)]


def clock_rows(folders: dict, cells, n_boot: int) -> list[tuple]:
  """(what, rhos, ours step0, ours clamp, theirs step0, theirs clamp) per delay law."""
  out = []

  def add(what, ours, theirs, folder):
    rhos = sorted({r["rho"] for r in ours})
    theirs = [r for r in theirs if any(np.isclose(r["rho"], x) for x in rhos)]  # same cells
    o = _alphas(ours, n_boot, folder.config.get("t_int"))
    t = _alphas(theirs, n_boot) if theirs else None
    out.append((what, rhos, o, t))

  scan = folders.get("moduli_scan")
  theirs_scan = authors_rows(cells, "pscan") if cells else []
  if scan is not None:
    for p in sorted({r["p"] for r in scan.clamp()}):
      add(f"moduli scan, p={p}", scan.clamp(p), [r for r in theirs_scan if r["p"] == p], scan)
    add("moduli scan, shared", scan.clamp(), [r for r in theirs_scan if r["p"] != 31], scan)
  user = folders.get("user_moduli")
  if user is not None:
    for p in sorted({r["p"] for r in user.clamp()}):
      add(f"user moduli, p={p}", user.clamp(p), [], user)
    add("user moduli, shared", user.clamp(), [], user)
  dense = folders.get("dense_rho")
  if dense is not None:
    rows = [r for r in dense.clamp() if r["rho"] <= 1.25 + 1e-9]
    add("dense rho, p=59, rho 0.85-1.25", rows, authors_rows(cells, "denserho") if cells else [],
        dense)
  lr_folder = folders.get("norm_vs_lr")
  if lr_folder is not None:
    for lr in sorted({r["lr"] for r in lr_folder.clamp()}):
      mine = [r for r in lr_folder.clamp() if np.isclose(r["lr"], lr)]
      add(f"rho x lr, p=59, lr {lr:g}", mine, authors_rows(cells, "efflr", lr) if cells else [],
          lr_folder)
  return out


def _alpha_text(fit_result: dict | None) -> str:
  if not fit_result:
    return "-"
  if fit_result.get("alpha") is None:
    return f"no fit ({fit_result.get('error', '')})"
  return fmt_ci(fit_result["alpha"], fit_result.get("alpha_ci"))


def shape_lines(dense: Folder | None, cells, n_boot: int) -> list[str]:
  """The dense sweep's local slopes and forms on both clocks, ours and theirs."""
  if dense is None:
    return []
  sides = {"grokjax": [r for r in usable(dense.clamp()) if r["rho"] <= 1.25 + 1e-9]}
  if cells:
    sides["authors"] = authors_rows(cells, "denserho")
  lines = ["| side | clock | local slopes between adjacent rho (95 % CI) | best form | "
           "delta AIC of the straight line |", "|---|---|---|---|---|"]
  for side, rows in sides.items():
    shifted, _ = shape.on_clamp_clock(rows, 10, dense.config.get("t_int", MLP_T_INT))
    for clock, rs in (("step 0", rows), ("clamp", shifted)):
      slopes = shape.local_slopes(rs, n_boot)
      forms = fit.safe(shape.compare_forms, rs)
      text = "; ".join(f"{s['rho'][0]:g}-{s['rho'][1]:g}: {fmt_ci(s['slope'], s['slope_ci'])}"
                       for s in slopes)
      best = forms.get("best", forms.get("error"))
      lin = num(forms["forms"]["linear"]["delta_aic"], 1) if "forms" in forms else "-"
      lines.append(f"| {side} | {clock} | {text} | {best} | {lin} |")
  return lines


def section(results: str, folders: dict, cells, n_boot: int) -> list[str]:
  """The markdown lines of the section."""
  rows = clock_rows(folders, cells, n_boot)
  if not rows:
    return []
  lines = ["## The delay law on the clamp's clock", "",
           "alpha fitted to ln(median T_grok) per cell, on the paper's clock (T_grok from step 0) "
           "and on the clamp's (T_grok - t_int, t_int = 500 for the MLP: the steps before the "
           "clamp are a fixed time the law does not act on; a cell whose median is not one "
           "evaluation past t_int leaves the clamp-clock fit). Authors: their per-seed data "
           "over the same cells, by the same fitter. `grokjax/paper/clock.py`.", "",
           "| law | held norms | grokjax, step 0 | grokjax, clamp clock | authors, step 0 | "
           "authors, clamp clock |", "|---|---|---|---|---|---|"]
  for what, rhos, o, t in rows:
    lines.append(f"| {what} | {', '.join(f'{r:g}' for r in rhos)} | {_alpha_text(o['step0'])} | "
                 f"{_alpha_text(o['clamp'])} | {_alpha_text(t and t['step0'])} | "
                 f"{_alpha_text(t and t['clamp'])} |")
  lines += ["", "### The shape of the dense sweep (p = 59, rho 0.85-1.25)", "",
            "Forms of ln T(rho) fitted to every run by censored maximum likelihood with one "
            "spread per cell, ranked by AIC (`grokjax.analysis.shape.compare_forms`).", ""]
  lines += shape_lines(folders.get("dense_rho"), cells, n_boot)
  data = {}
  for name in ("moduli_scan", "user_moduli"):
    if folders.get(name) is not None:
      data.update(predictor.modulus_data([folders[name]]))
  if len(data) >= 3 and all(d["t_int"] is not None for d in data.values()):
    cv = predictor.cross_validate(data)
    lines += ["", "### Predicting a modulus not trained: leave-one-modulus-out", "",
              f"Over the committed moduli {', '.join(map(str, sorted(data)))}: each candidate "
              "(`grokjax.paper.predictor`), fitted without one modulus, predicts that modulus's "
              "cell medians; RMSE of ln median over every held-out cell.", "",
              "| clock | alpha across moduli | RMSE of ln median | worst cell |", "|---|---|---|---|"]
    for v in cv.values():
      worst = max(v["errors_ln"].items(), key=lambda kv: abs(kv[1]))
      lines.append(f"| {v['clock']} | {v['alpha']} | {v['rmse_ln']:.3f} | "
                   f"{worst[0]}: {worst[1]:+.2f} |")
  pred_dir = os.path.join(results, "predictions")
  for name in sorted(os.listdir(pred_dir)) if os.path.isdir(pred_dir) else []:
    lines += score_lines(io.read_json(os.path.join(pred_dir, name)), name, results)
  return lines + [""]


def score_lines(prediction: dict, name: str, results: str) -> list[str]:
  """A locked prediction: when it was locked, and its score on every trained modulus."""
  lines = ["", f"### Locked prediction `{name}` ({prediction['locked_at']})", "",
           f"grokjax's model: {prediction['ours']['model']['clock']} clock, "
           f"{prediction['ours']['model']['alpha']} alpha; moduli "
           f"{', '.join(prediction['ours']['moduli'])}."]
  scored = []
  for runs in sorted(glob.glob(os.path.join(results, "**", "runs.csv"), recursive=True)):
    f = Folder.load(os.path.dirname(runs))
    if f.config.get("experiment") == "pinned_norm" and f.config.get("dtype", "float32") == "float32":
      scored += predictor.score(prediction, f)
  if not scored:
    return lines + ["", "Not yet scored: none of its moduli is trained."]
  lines += ["", "| p | cell | predictor | predicted [95 % band] | measured | inside | measured / predicted |",
            "|---|---|---|---|---|---|---|"]
  for s in scored:
    cell = "W_c" if s["rho"] is None else f"median T_grok, rho {s['rho']:g}"
    lines.append(f"| {s['p']} | {cell} | {s['predictor']} | {fmt_ci(s['predicted'], s['band'])} "
                 f"| {num(s['measured'])} | {s['inside']} | {num(s['ratio'])} |")
  cells = [s for s in scored if s["rho"] is not None]
  for name in dict.fromkeys(s["predictor"] for s in cells):
    mine = [s for s in cells if s["predictor"] == name and s["ratio"] is not None]
    dev = sorted(abs(s["ratio"] - 1) for s in mine)
    lines.append(f"\n{name}: {sum(bool(s['inside']) for s in mine)} of {len(mine)} cells inside "
                 f"the band, median |measured / predicted - 1| = {np.median(dev):.3f}")
  return lines
