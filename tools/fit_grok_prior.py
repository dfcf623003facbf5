"""Fit the plan line's grok-time prior to the committed paper-preset results.

    python tools/fit_grok_prior.py            # rewrites grokjax/harness/grok_prior.json

Every run of every folder under docs/results trained with the paper's MLP on a + b mod p
(preset paper, d 128, H 256; the discriminating checks under docs/results/checks and the
arithmetic arms under docs/results/precision, which repeat claims' cells, left out) is one point: ln T_grok (a run censored at its budget counts
at its budget, a lower bound) against ln p, ln lr, ln wd, ln train fraction and, for a run
whose norm is held (clamp, hold), rho - 1 (with its slope moving with ln p and ln lr).
The least-squares coefficients, the ranges they were fitted over and their sources go to
grokjax/harness/grok_prior.json, which `grokjax.harness.estimate` reads; outside those ranges, or for
another model or problem, the plan keeps its budget rule.
"""

import glob
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from grokjax.harness import io  # noqa: E402
from grokjax.harness.estimate import PRIOR_FEATURES, prior_features  # noqa: E402

HELD_ARMS = ("clamp", "hold")


def paper_mlp(cfg: dict) -> bool:
  return (cfg["preset"] == "paper" and cfg["arch"] == "mlp" and cfg.get("problem", "add") == "add"
          and cfg["d"] == 128 and cfg["hidden"] == 256 and not cfg.get("layernorm"))


def fit() -> dict:
  """The prior from the committed results (what grokjax/harness/grok_prior.json holds)."""
  xs, ys, sources, vals = [], [], [], {k: [] for k in ("p", "lr", "wd", "frac", "rho")}
  repeats = tuple(os.path.join(ROOT, "docs", "results", d) + os.sep for d in ("checks", "precision"))
  for path in sorted(glob.glob(os.path.join(ROOT, "docs", "results", "**", "config.json"),
                               recursive=True)):
    cfg = io.read_json(path)["config"]
    if not paper_mlp(cfg) or path.startswith(repeats):
      continue
    folder = os.path.dirname(path)
    rows = [r for r in io.read_runs(os.path.join(folder, "runs.csv")) if not r["diverged"]]
    for r in rows:
      held = r["arm"] in HELD_ARMS
      rho = r["rho"] if held else None
      xs.append(prior_features(r["p"], rho, r["lr"], r["wd"], cfg["frac"]))
      ys.append(np.log(r["t_grok"] if r["grokked"] else r["budget"]))
      for k, v in (("p", r["p"]), ("lr", r["lr"]), ("wd", r["wd"]), ("frac", cfg["frac"])):
        vals[k].append(v)
      if held:
        vals["rho"].append(rho)
    sources.append(f"{os.path.relpath(folder, ROOT)} ({len(rows)} runs)")
  x, y = np.array(xs), np.array(ys)
  coef, *_ = np.linalg.lstsq(x, y, rcond=None)
  resid = y - x @ coef
  return dict(
      what="ln T_grok of the paper's MLP on a + b mod p (preset paper), least squares",
      features=list(PRIOR_FEATURES), coef=[float(c) for c in coef],
      residual_sd=float(resid.std()), r2=float(1 - resid.var() / y.var()), n_runs=len(y),
      ranges={k: [float(min(v)), float(max(v))] for k, v in vals.items()},
      model=dict(preset="paper", arch="mlp", problem="add", d=128, hidden=256, layernorm=False),
      sources=sources,
      command="python tools/fit_grok_prior.py")


def main() -> None:
  out = fit()
  io.write_json(os.path.join(ROOT, "grokjax", "harness", "grok_prior.json"), out)
  print(f"{out['n_runs']} runs from {len(out['sources'])} folders: R^2 {out['r2']:.3f}, residual sd "
        f"{out['residual_sd']:.3f} in ln T_grok")


if __name__ == "__main__":
  main()
