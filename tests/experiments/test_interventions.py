"""The intervention experiments: the free-norm delay fit on synthetic runs, and both
scripts end to end at the smoke preset."""

import json
import os

import numpy as np

from grokjax import cli
from grokjax.experiments import free_norm_delay as fnd


def test_norm_peak_is_the_height_between_memorising_and_grokking():
  from grokjax.engine.reduce import norm_peak
  steps = np.array([10, 20, 30, 40, 50])
  norm = np.array([[5.0, 9.0, 8.0, 7.0, 6.0],     # peak at 20, inside [T_mem, T_grok]
                   [5.0, 9.0, 8.0, 9.5, 6.0],     # a later, higher peak after T_grok is ignored
                   [5.0, 6.0, 7.0, 8.0, 9.0]])    # never grokked
  t_peak, n_peak = norm_peak(steps, norm, np.array([10, 20, 10]), np.array([40, 30, -1]))
  np.testing.assert_array_equal(t_peak, [20, 20, -1])
  np.testing.assert_allclose(n_peak[:2], [9.0, 9.0])
  assert np.isnan(n_peak[2])


def test_fit_kappa_recovers_the_contraction_rate():
  rng = np.random.default_rng(0)
  rows = []
  for seed in range(8):
    for lr, wd in ((1e-2, 1.0), (5e-3, 0.5)):
      for ratio in (1.2, 2.0, 4.0, 9.0):
        x = np.log(ratio) / (2 * lr * wd)
        delay = 100 + x / 0.25 + 20 * rng.normal()
        rows.append(dict(seed=seed, lr=lr, wd=wd, grokked=True, diverged=False, t_peak=300,
                         t_grok=300 + delay, v_peak=ratio * 400.0, v_grok=400.0))
  out = fnd.fit_kappa(rows, n_boot=200)
  assert abs(out["kappa"] - 0.25) < 0.01 and out["kappa_ci"][0] < 0.25 < out["kappa_ci"][1]
  assert out["r2"] > 0.99 and abs(out["intercept"] - 100) < 20


def test_matched_kappa_recovers_the_contraction_rate_and_skips_unpaired_runs():
  from grokjax.experiments.free_norm_delay import fit_matched_kappa
  rng = np.random.default_rng(1)
  rows = []
  for seed in range(8):
    for lr, wd in ((1e-2, 1.0), (5e-3, 0.5)):
      base = 2000 + 300 * rng.normal()  # each seed's own unscaled grok time
      for s in (1.0, 1.5, 2.0, 4.0):
        delay = np.log(s) / (0.5 * lr * wd) + 15 * rng.normal() * (s != 1.0)
        rows.append(dict(seed=seed, lr=lr, wd=wd, scale=s, grokked=True, diverged=False,
                         t_grok=base + delay))
  rows.append(dict(seed=9, lr=1e-2, wd=1.0, scale=2.0, grokked=True, diverged=False,
                   t_grok=1e6))  # no s = 1 partner: not a pair
  out = fit_matched_kappa(rows, n_boot=200)
  assert out["n_pairs"] == 8 * 2 * 3
  assert abs(out["kappa"] - 0.5) < 0.02 and out["kappa_ci"][0] < 0.5 < out["kappa_ci"][1]
  assert out["r2"] > 0.99
  # without a rescale effect there is no positive slope to read kappa from
  flat = [dict(r, t_grok=1000.0 + r["seed"]) for r in rows]
  assert fit_matched_kappa(flat, n_boot=20).get("kappa") is None


def test_norm_interventions_smoke(tmp_path):
  from grokjax.experiments.norm_interventions import norm_interventions
  out = str(tmp_path / "ni")
  assert cli.main("norm_interventions", norm_interventions,
                  ["--preset", "smoke", "--out", out, "--no-progress"]) == 0
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert set(fit["kick"]) == {"all", "embedding", "hidden", "output"}
  assert set(fit["oneshot"]) == {"0.85", "1.15"} and set(fit["hold"]) == {"0.95", "1.1"}
  assert fit["span_oneshot"]["value"] >= 1 and fit["span_hold"]["value"] >= 1
  assert os.path.exists(os.path.join(out, "figures", "interventions.png"))
  import csv
  rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
  assert {r["intervention"] for r in rows} == {"", "oneshot", "kick", "hold"}


def test_free_norm_delay_smoke(tmp_path):
  from grokjax.experiments.free_norm_delay import free_norm_delay
  out = str(tmp_path / "fnd")
  assert cli.main("free_norm_delay", free_norm_delay,
                  ["--preset", "smoke", "--scales", "1,2,3", "--out", out, "--no-progress"]) == 0
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert fit["kick_at"] == 0 and "kappa_matched" in fit["per_lr_wd"]["lr0.03_wd1"]
  assert fit["scales"] == [1.0, 2.0, 3.0] and "lr0.03_wd1" in fit["per_lr_wd"]
  import csv
  rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
  starts = {float(r["scale"]): [] for r in rows}
  for r in rows:
    starts[float(r["scale"])].append(float(r["start_norm"]))
  # the scaled runs start from s times the same initial weights
  np.testing.assert_allclose(np.array(starts[2.0]), 2 * np.array(starts[1.0]), rtol=1e-5)
  assert os.path.exists(os.path.join(out, "figures", "both_laws.png"))
  # --kick-at: the rescale comes at that step, from the height the run has reached
  late = str(tmp_path / "late")
  assert cli.main("free_norm_delay", free_norm_delay,
                  ["--preset", "smoke", "--scales", "1,2", "--kick-at", "30", "--out", late,
                   "--no-progress", "--no-figures"]) == 0
  z = np.load(os.path.join(late, "curves.npz"))
  rows = list(csv.DictReader(open(os.path.join(late, "runs.csv"))))
  scale = np.array([float(r["scale"]) for r in rows])
  before, after = z["steps"][0] < 30, z["steps"][0] == 30
  np.testing.assert_array_equal(z["norm"][scale == 2.0][:, before], z["norm"][scale == 1.0][:, before])
  ratio = z["norm"][scale == 2.0][:, after] / z["norm"][scale == 1.0][:, after]
  assert np.all(ratio > 1.7)  # scaled once at step 30, then contracting
