"""Predictions of W_c and of every cell's median T_grok at moduli grokjax has not trained,
chosen by leave-one-modulus-out cross-validation, and the authors' preregistered predictor
recomputed from their per-seed data; locked to a file before the moduli are trained, then
scored.

Ours (`fit_candidates`, `predict`): per trained modulus, ln(median T_grok - t0) =
L1_p + alpha_p (rho - 1) through its cells, t0 = 0 (the paper's clock) or t_int (the
clamp's); across moduli L1(p) is linear in ln p and alpha either one shared value or
linear in ln p: four candidates. Each is scored by leave-one-modulus-out cross-validation
over the trained moduli (RMSE of ln median, every held-out cell); the best predicts. A 95 %
prediction band for a cell's median adds, in ln: the model's uncertainty (a bootstrap over
each modulus's seeds), the scatter of a median of n seeds at that held norm (pi/2 sigma^2 /
n, sigma the pooled within-cell spread of ln T) and the cross-validation RMSE (how far the
model misses a modulus it has not seen). W_c: a power law in p, banded the same way.

Theirs (`authors_predictor`, read from their `src/predict_heldout.py`'s description and
re-implemented): per modulus of their moduli scan, least squares of ln(median T_grok over
the seeds that grokked) on rho - 1 over rho 0.85 / 1.00 / 1.15; L1(p) and alpha(p) each
linear in p or in ln p, whichever has the higher R^2; M1 ("drift") extrapolates alpha(p),
M2 ("universal") holds alpha at their shared fit's value; bands: 95 % percentiles of a
bootstrap that redraws each cell's seeds independently.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Sequence

import numpy as np

from grokjax.analysis.stats import censored_median, percentile_ci
from grokjax.analysis.stats import critical_norm, seed_draws, usable

CANDIDATES = [(clock, alpha) for clock in ("step0", "clamp") for alpha in ("shared", "drift")]
RHOS = (0.85, 1.00, 1.15)


def modulus_data(folders) -> dict[int, dict[str, Any]]:
  """Per trained modulus its free rows, its clamp rows and t_int, from `Folder`s."""
  out = {}
  for f in folders:
    for p in sorted({r["p"] for r in f.rows}):
      clamp = usable(f.clamp(p))
      t_int = clamp[0].get("t_int", f.config.get("t_int")) if clamp else None
      out[p] = dict(free=f.free(p), clamp=clamp, t_int=t_int)
  return out


def _cells(d: dict, clock: str, seeds=None) -> dict[float, float]:
  """rho -> ln(median T_grok - t0) of one modulus (seeds: the draw to use, default all)."""
  t0 = d["t_int"] if clock == "clamp" else 0
  by_seed: dict = {}
  for r in d["clamp"]:
    by_seed.setdefault(r["seed"], []).append(r)
  pick = sorted(by_seed) if seeds is None else seeds
  rows = [r for s in pick for r in by_seed.get(s, [])]
  out = {}
  for rho in sorted({r["rho"] for r in rows}):
    cell = [r for r in rows if r["rho"] == rho]
    m = censored_median([r["t_grok"] for r in cell], [r["censored"] for r in cell])
    if m is not None and m - t0 > 0:
      out[rho] = math.log(m - t0)
  return out


def _per_modulus(cells: dict[float, float]) -> tuple[float, float]:
  rho = np.array(sorted(cells)) - 1.0
  alpha, l1 = np.polyfit(rho, [cells[r + 1.0] for r in rho], 1)
  return float(l1), float(alpha)


def _fit_model(per: dict[int, tuple[float, float]], alpha_model: str):
  """(L1(p), alpha(p)) as functions of p from the per-modulus (L1, alpha)."""
  ps = np.array(sorted(per), float)
  lnp = np.log(ps)
  l1 = np.polyfit(lnp, [per[p][0] for p in sorted(per)], 1)
  alphas = [per[p][1] for p in sorted(per)]
  a = np.polyfit(lnp, alphas, 1) if alpha_model == "drift" else np.array([0.0, np.mean(alphas)])
  return (lambda p: float(np.polyval(l1, math.log(p)))), (lambda p: float(np.polyval(a, math.log(p))))


def _predict_ln(data, clock, alpha_model, p, rho, seeds_of=None) -> float | None:
  """ln predicted median T_grok (step-0 clock, t_int added back) of cell (p, rho)."""
  per = {}
  for q, d in data.items():
    cells = _cells(d, clock, None if seeds_of is None else seeds_of[q])
    if len(cells) < 2:
      return None
    per[q] = _per_modulus(cells)
  l1, a = _fit_model(per, alpha_model)
  t0 = next(iter(data.values()))["t_int"] if clock == "clamp" else 0
  return math.log(t0 + math.exp(l1(p) + a(p) * (rho - 1.0)))


def cross_validate(data: dict[int, dict]) -> dict[str, Any]:
  """Leave-one-modulus-out: each candidate fitted without one modulus predicts its cells;
  RMSE of ln median per candidate (cells whose median is known), and the errors."""
  out = {}
  for clock, alpha_model in CANDIDATES:
    errors = {}
    for q in sorted(data):
      rest = {p: d for p, d in data.items() if p != q}
      truth = _cells(data[q], "step0")
      for rho, y in truth.items():
        pred = _predict_ln(rest, clock, alpha_model, q, rho)
        if pred is not None:
          errors[f"p{q} rho {rho:g}"] = pred - y
    e = np.array(list(errors.values()))
    out[f"{clock}/{alpha_model}"] = dict(clock=clock, alpha=alpha_model,
                                         rmse_ln=float(np.sqrt(np.mean(e ** 2))),
                                         errors_ln={k: round(v, 4) for k, v in errors.items()})
  return out


def _seed_scatter(data, rho: float) -> float:
  """Pooled within-cell standard deviation of ln T_grok at this held norm (the grokked
  runs of every trained modulus)."""
  devs, cells = [], 0
  for d in data.values():
    y = np.log([r["t_grok"] for r in d["clamp"] if r["rho"] == rho and r["grokked"]])
    if len(y) > 1:
      devs += list(y - y.mean())
      cells += 1
  return float(np.sqrt(np.sum(np.square(devs)) / max(len(devs) - cells, 1)))


def predict(data: dict[int, dict], moduli: Sequence[int], rhos: Sequence[float] = RHOS,
            n_seeds: int = 12, n_boot: int = 1000, rng_seed: int = 0) -> dict[str, Any]:
  """W_c and every cell's median T_grok at `moduli` by the candidate that cross-validates
  best (see the module docstring), with every candidate's CV score."""
  cv = cross_validate(data)
  # the lowest RMSE; on a tie (to 1e-6) the fewer parameters (one shared alpha)
  best = min(cv, key=lambda k: (round(cv[k]["rmse_ln"], 6), cv[k]["alpha"] == "drift"))
  clock, alpha_model = cv[best]["clock"], cv[best]["alpha"]
  ps = sorted(data)
  seeds = {p: np.array(sorted({r["seed"] for r in data[p]["clamp"]})) for p in ps}
  boots = [dict(zip(ps, draw)) for draw in seed_draws([seeds[p] for p in ps], n_boot, rng_seed)]
  wc = {p: critical_norm(data[p]["free"]) for p in ps}
  lp, lw = np.log(ps), np.log([wc[p] for p in ps])
  beta, c = np.polyfit(lp, lw, 1)
  wc_cv = [float(np.polyval(np.polyfit(np.delete(lp, i), np.delete(lw, i), 1), lp[i]) - lw[i])
           for i in range(len(ps))]
  w_sd = np.sqrt(np.mean(np.square(wc_cv)) + np.mean([
      (math.pi / 2) * np.var(np.log([r["norm_at_grok"] for r in data[p]["free"] if r["grokked"]]),
                             ddof=1) / n_seeds for p in ps]))
  result = {}
  for p in moduli:
    cells = {}
    for rho in rhos:
      point = _predict_ln(data, clock, alpha_model, p, rho)
      reps = [v for v in (_predict_ln(data, clock, alpha_model, p, rho, b) for b in boots)
              if v is not None]
      var = (np.var(reps) + (math.pi / 2) * _seed_scatter(data, rho) ** 2 / n_seeds
             + cv[best]["rmse_ln"] ** 2)
      half = 1.96 * math.sqrt(var)
      cells[f"{rho:g}"] = dict(value=math.exp(point), band=[math.exp(point - half),
                                                             math.exp(point + half)])
    w = float(np.polyval([beta, c], math.log(p)))
    result[str(p)] = dict(wc=dict(value=math.exp(w), band=[math.exp(w - 1.96 * w_sd),
                                                           math.exp(w + 1.96 * w_sd)]),
                          median_t_grok=cells)
  return dict(model=dict(clock=clock, alpha=alpha_model, chosen_by="lowest leave-one-modulus-out "
                         "RMSE of ln median T_grok (a tie: one shared alpha)"), cross_validation=cv,
              wc_power_law=dict(beta=float(beta), cv_rmse_ln=float(np.sqrt(np.mean(np.square(wc_cv))))),
              trained_moduli=ps, n_seeds=n_seeds, moduli=result)


def _authors_fit(med: dict[int, list[float]], ps, alpha_universal: float, targets, rhos):
  def better(x, y):
    fits = []
    for xx, how in ((np.asarray(x, float), "p"), (np.log(x), "ln p")):
      a, b = np.polyfit(xx, y, 1)
      r2 = 1 - np.sum((y - (a * xx + b)) ** 2) / np.sum((y - np.mean(y)) ** 2)
      fits.append((r2, how, a, b))
    r2, how, a, b = max(fits, key=lambda f: f[0])
    return (lambda p: a * (math.log(p) if how == "ln p" else p) + b), how
  per = {p: np.polyfit(np.array(rhos) - 1.0, np.log(med[p]), 1) for p in ps}  # alpha, L1
  l1, l1_how = better(ps, np.array([per[p][1] for p in ps]))
  al, al_how = better(ps, np.array([per[p][0] for p in ps]))
  out = {}
  for q in targets:
    out[q] = {"M1_drift": {f"{r:g}": math.exp(al(q) * (r - 1) + l1(q)) for r in rhos},
              "M2_universal": {f"{r:g}": math.exp(alpha_universal * (r - 1) + l1(q)) for r in rhos},
              "alpha_drift": al(q)}
  return out, dict(L1_in=l1_how, alpha_in=al_how, alpha_per_p={str(p): float(per[p][0]) for p in ps})


def authors_predictor(cells, targets: Sequence[int], rhos: Sequence[float] = RHOS,
                      n_boot: int = 3000, rng_seed: int = 0) -> dict[str, Any]:
  """Their preregistered predictor (module docstring) from their moduli-scan cells
  (`grokjax.paper.reference.RefCell`s of experiment "pscan" at lr 1e-3)."""
  scan = [c for c in cells if c.experiment == "pscan" and c.arm in ("clamp", "free")]
  ps = sorted({c.p for c in scan if c.arm == "clamp" and all(
      any(d.p == c.p and d.arm == "clamp" and d.rho is not None and abs(d.rho - r) < 1e-6
          and (~d.censored).any() for d in scan) for r in rhos)})
  times = {p: [next(c for c in scan if c.p == p and c.arm == "clamp" and abs(c.rho - r) < 1e-6)
               for r in rhos] for p in ps}
  grokked = {p: [c.t_grok[~c.censored] for c in times[p]] for p in ps}
  med = {p: [float(np.median(t)) for t in grokked[p]] for p in ps}
  # their universal exponent: one alpha, one intercept per modulus, through those medians
  X = np.column_stack([np.concatenate([np.array(rhos) for _ in ps])]
                      + [np.repeat(np.eye(len(ps))[i], len(rhos)) for i in range(len(ps))])
  y = np.concatenate([np.log(med[p]) for p in ps])
  alpha_u = float(np.linalg.lstsq(X, y, rcond=None)[0][0])
  point, meta = _authors_fit(med, ps, alpha_u, targets, rhos)
  rng = np.random.default_rng(rng_seed)
  reps = []
  for _ in range(n_boot):
    bmed = {p: [float(np.median(rng.choice(t, len(t)))) for t in grokked[p]] for p in ps}
    reps.append(_authors_fit(bmed, ps, alpha_u, targets, rhos)[0])
  band = lambda q, m, k: percentile_ci([b[q][m][k] for b in reps], n_boot)
  wc_ps = [p for p in ps if any(c.p == p and c.arm == "free" for c in scan)]
  wcs = [float(np.nanmedian([c for c in scan if c.p == p and c.arm == "free"][0].norm_at_grok))
         for p in wc_ps]
  k, c0 = np.polyfit(np.log(wc_ps), np.log(wcs), 1)
  out = {}
  for q in targets:
    out[str(q)] = dict(
        wc=float(math.exp(c0 + k * math.log(q))), alpha_drift=point[q]["alpha_drift"],
        alpha_universal=alpha_u,
        **{m: {key: dict(value=v, band=band(q, m, key)) for key, v in point[q][m].items()}
           for m in ("M1_drift", "M2_universal")})
  return dict(trained_moduli=ps, meta=meta, wc_exponent=float(k), moduli=out)


def lock(data: dict[int, dict], ref_cells, moduli: Sequence[int], sources: dict) -> dict:
  """The prediction file's content: ours, theirs (when their data is given), a timestamp."""
  return dict(locked_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              note="locked before any of these moduli was trained by grokjax",
              sources=sources, ours=predict(data, moduli),
              authors=authors_predictor(ref_cells, moduli) if ref_cells else None)


def score(prediction: dict, folder) -> list[dict[str, Any]]:
  """Per trained cell of `folder` that the prediction covers (rho None: W_c of the free
  control; the authors' W_c is a point), each predictor's value, band, whether the measured
  value lies inside it and the ratio measured / predicted."""
  out = []
  for p in sorted({r["p"] for r in folder.rows}):
    ours = prediction["ours"]["moduli"].get(str(p))
    theirs = (prediction.get("authors") or {}).get("moduli", {}).get(str(p))
    if ours is None:
      continue
    free = folder.free(p)
    if free:
      wc = critical_norm(free)
      preds = {"grokjax": ours["wc"]}
      if theirs:
        preds["authors"] = dict(value=theirs["wc"], band=[theirs["wc"], theirs["wc"]])
      for name, pr in preds.items():
        out.append(dict(p=p, rho=None, predictor=name, measured=wc, predicted=pr["value"],
                        band=pr["band"], inside=pr["band"][0] <= wc <= pr["band"][1],
                        ratio=wc / pr["value"]))
    for rho in sorted({r["rho"] for r in folder.clamp(p)}):
      cell = usable([r for r in folder.clamp(p) if r["rho"] == rho])
      m = censored_median([r["t_grok"] for r in cell], [r["censored"] for r in cell])
      preds = {"grokjax": ours["median_t_grok"].get(f"{rho:g}")}
      if theirs:
        preds.update({f"authors {k}": theirs[k].get(f"{rho:g}") for k in ("M1_drift", "M2_universal")})
      for name, pr in preds.items():
        if pr is None:
          continue
        out.append(dict(p=p, rho=rho, predictor=name, measured=m, predicted=pr["value"],
                        band=pr["band"], inside=None if m is None else pr["band"][0] <= m <= pr["band"][1],
                        ratio=None if m is None else m / pr["value"]))
  return out


def main(argv: Sequence[str] | None = None) -> int:
  """python -m grokjax.paper.predictor --moduli 67,83 --out FILE [--reference DIR]"""
  import argparse
  import os
  from grokjax.harness import io
  from grokjax.paper import reference
  from grokjax.paper.table import Folder
  ap = argparse.ArgumentParser(prog="python -m grokjax.paper.predictor", description=__doc__.split("\n\n")[0])
  ap.add_argument("--moduli", required=True, help="comma-separated moduli to predict")
  ap.add_argument("--results", default="docs/results", help="the committed results")
  ap.add_argument("--from", dest="sources", default="moduli_scan,user_moduli",
                  help="the folders under --results trained on (default moduli_scan,user_moduli)")
  ap.add_argument("--reference", help="a checkout of the authors' repository: their predictor too")
  ap.add_argument("--out", required=True, help="the prediction file (refused if it exists)")
  args = ap.parse_args(argv)
  if os.path.exists(args.out):
    print(f"predictor: error: {args.out} exists: a locked prediction is never rewritten")
    return 2
  folders = [Folder.load(os.path.join(args.results, s)) for s in args.sources.split(",")]
  cells = reference.load(args.reference) if args.reference else None
  moduli = [int(x) for x in args.moduli.split(",")]
  out = lock(modulus_data(folders), cells, moduli, {f.path: io.sha256_file(os.path.join(f.path, "runs.csv"))
                                                    for f in folders})
  io.write_json(args.out, out)
  print(f"locked {args.out}: model {out['ours']['model']}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
