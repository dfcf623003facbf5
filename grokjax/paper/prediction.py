"""The user's moduli (97 and 113): a prediction of W_c and every cell's median T_grok,
extrapolated from the moduli scan and locked before training, then checked.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any, Sequence

import numpy as np

from grokjax.analysis import fit
from grokjax.harness import io
from grokjax.paper.table import (Folder, Row, delay_fit, log_linear_cells, median_t_grok, num,
                                 paper_row, shared_fit)
from grokjax.analysis.stats import critical_norm_or_none, percentile_ci, seed_bootstrap

def user_moduli_rows(f: Folder, scan: Folder | None, prediction: dict | None,
                     n_boot: int) -> list[Row]:
  claim = "5 p = 97, 113"
  out = []
  pred = (prediction or {}).get("moduli", {})
  for p in sorted({r["p"] for r in f.rows}):
    wc, ci = seed_bootstrap(f.free(p), critical_norm_or_none, n_boot)
    pw = pred.get(str(p), {}).get("wc")
    out.append(Row(claim, f"W_c, p={p}", _pred_text(pw), None, wc, ci, _pred_verdict(pw, wc, ci),
                   "left: locked prediction" if pw else "no locked prediction"))
    d = delay_fit(f.clamp(p), n_boot)
    out.append(paper_row(claim, f"alpha, p={p} (R^2 {num(d.get('r2'), 3)})", None, None,
                    d.get("alpha"), d.get("alpha_ci"), d.get("error", "")))
    for rho in sorted({r["rho"] for r in f.clamp(p)}):
      m, mci = seed_bootstrap([r for r in f.clamp(p) if r["rho"] == rho], median_t_grok, n_boot)
      pc = pred.get(str(p), {}).get("median_t_grok", {}).get(f"{rho:g}")
      out.append(Row(claim, f"median T_grok, p={p}, rho {rho:.2f}", _pred_text(pc), None, m, mci,
                     _pred_verdict(pc, m, mci), "left: locked prediction" if pc else ""))
  s = shared_fit(f.clamp(), n_boot)
  out.append(paper_row(claim, "shared alpha, p = 97, 113", None, None, s.get("alpha"), s.get("alpha_ci"),
                  s.get("error", "")))
  if scan is not None:
    s = shared_fit(scan.clamp() + f.clamp(), n_boot)
    ps = sorted({r["p"] for r in scan.clamp() + f.clamp()})
    out.append(paper_row(claim, f"shared alpha, p = {', '.join(map(str, ps))}", None, None,
                    s.get("alpha"), s.get("alpha_ci"), f"R^2 {num(s.get('r2'), 3)}"))
  return out


def _pred_text(pred):
  if not pred:
    return None
  return f"{pred['value']:.4g} [{pred['band'][0]:.4g}, {pred['band'][1]:.4g}]"


def _pred_verdict(pred, ours, ours_ci) -> str:
  if not pred:
    return "new"
  if ours is None:
    return "not measured"
  lo, hi = pred["band"]
  if lo <= ours <= hi:
    return "inside predicted band"
  if ours_ci is not None and ours_ci[0] <= hi and lo <= ours_ci[1]:
    return "bands overlap"
  return "differs from prediction"


def predict_user_moduli(scan: Folder, moduli: Sequence[int], rhos: Sequence[float],
                        n_boot: int = 1000, rng_seed: int = 0) -> dict[str, Any]:
  """W_c and every cell's median T_grok at new moduli, from the moduli scan alone.

  W_c: the power law W_c = c p^beta through the scan's W_c, extrapolated. Cells:
  ln T = c_p + alpha_p * rho per scanned modulus, with alpha_p and c_p each extrapolated
  linearly in p (and, as a second model, one shared alpha with c_p linear in p). Bands are
  95 % percentile bootstraps over the scan's seeds.
  """
  scan_ps = sorted({r["p"] for r in scan.clamp()})

  def model(rows):
    wc, per = {}, {}
    for p in scan_ps:
      wc[p] = critical_norm_or_none([r for r in rows if r["arm"] == "free" and r["p"] == p])
      line = log_linear_cells([r for r in rows if r["arm"] == "clamp" and r["p"] == p])
      if line is None or wc[p] is None:
        return None
      per[p] = line  # alpha, c
    ps = np.array(scan_ps, float)
    pw = fit.fit_power_law(ps, [wc[p] for p in scan_ps])
    a_p = np.polyfit(ps, [per[p][0] for p in scan_ps], 1)
    c_p = np.polyfit(ps, [per[p][1] for p in scan_ps], 1)
    out = {}
    for p in moduli:
      alpha = np.polyval(a_p, p)
      c = np.polyval(c_p, p)
      out[p] = dict(wc=pw["c"] * p ** pw["beta"], alpha=alpha,
                    cells={rho: float(np.exp(c + alpha * rho)) for rho in rhos})
    return out

  point = model(scan.rows)
  if point is None:
    raise ValueError("the moduli scan has a modulus without W_c or two rho cells with a "
                     "known median; cannot extrapolate")
  seeds = sorted({r["seed"] for r in scan.rows})
  by_seed = {s: [r for r in scan.rows if r["seed"] == s] for s in seeds}
  rng = np.random.default_rng(rng_seed)
  boots = [m for m in (model([r for s in rng.choice(seeds, len(seeds)) for r in by_seed[s]])
                       for _ in range(n_boot)) if m is not None]
  band = lambda get: percentile_ci([get(b) for b in boots], n_boot)
  result = {}
  for p in moduli:
    result[str(p)] = dict(
        wc=dict(value=point[p]["wc"], band=band(lambda b: b[p]["wc"])),
        alpha=dict(value=point[p]["alpha"], band=band(lambda b: b[p]["alpha"])),
        median_t_grok={f"{rho:g}": dict(value=point[p]["cells"][rho],
                                        band=band(lambda b: b[p]["cells"][rho]))
                       for rho in rhos})
  with open(os.path.join(scan.path, "runs.csv"), "rb") as fh:
    digest = hashlib.sha256(fh.read()).hexdigest()
  return dict(locked_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              source=scan.path, source_runs_sha256=digest, n_boot=len(boots),
              method=predict_user_moduli.__doc__.split("\n\n")[1].strip(), moduli=result)


def lock_prediction(results: str, cfg, say=print) -> None:
  """Write results/user_moduli/prediction.json from the moduli scan, once, before training."""
  path = os.path.join(results, "user_moduli", "prediction.json")
  if os.path.exists(path):
    say(f"prediction already locked: {path} ({io.read_json(path)['locked_at']})")
    return
  scan = Folder.load(os.path.join(results, "moduli_scan"))
  pred = predict_user_moduli(scan, cfg.moduli, cfg.rhos)
  io.write_json(path, pred)
  say(f"locked a prediction of W_c and every cell's median T_grok: {path}")

