"""The natural contraction of free runs (`grokjax.analysis.contraction`) against its
definition on synthetic runs, and the columns it reads in every runs.csv."""

import numpy as np
import pytest

from grokjax.analysis import contraction


def runs(kappa_of, seeds=8, noise=0.0, rng_seed=0):
  """Free runs whose delay from the peak is ln(V_peak / V_grok) / (2 kappa lr wd) exactly
  (times 1 + noise), kappa_of(lr, wd) per cell."""
  rng = np.random.default_rng(rng_seed)
  out = []
  for lr in (3e-4, 1e-3, 3e-3):
    for wd in (0.3, 1.0, 3.0):
      for seed in range(seeds):
        w_grok = 55.0 + rng.normal()
        w_peak = w_grok * np.exp(rng.uniform(0.05, 0.2))
        delay = np.log(w_peak ** 2 / w_grok ** 2) / (2 * kappa_of(lr, wd) * lr * wd)
        delay *= 1 + noise * rng.normal()
        out.append(dict(seed=seed, lr=lr, wd=wd, arm="free", grokked=True, diverged=False,
                        t_mem=150, norm_at_mem=w_grok, t_peak=300, norm_peak=w_peak,
                        t_grok=300 + delay, norm_at_grok=w_grok))
  return out


def test_run_kappa_is_its_definition_and_none_without_what_it_needs():
  r = dict(lr=1e-3, wd=2.0, t_grok=1300, norm_at_grok=50.0, t_peak=300, norm_peak=60.0,
           grokked=True, diverged=False)
  assert contraction.run_kappa(r) == pytest.approx(np.log(3600 / 2500) / (2 * 2e-3 * 1000))
  assert contraction.run_kappa(dict(r, grokked=False)) is None
  assert contraction.run_kappa(dict(r, diverged=True)) is None
  assert contraction.run_kappa(dict(r, norm_peak=None)) is None
  assert contraction.run_kappa(dict(r, t_peak=1300)) is None  # no time to contract in
  # from T_mem: a norm at memorisation below the norm at grokking gives a negative kappa
  assert contraction.run_kappa(dict(r, t_mem=100, norm_at_mem=45.0), start="mem") < 0


def test_one_kappa_is_recovered_and_predicts_every_held_out_cell():
  law = contraction.natural_law(runs(lambda lr, wd: 0.02, noise=0.02), n_boot=200)
  assert law["kappa"] == pytest.approx(0.02, rel=0.02)
  lo, hi = law["kappa_ci"]
  assert lo <= law["kappa"] <= hi and hi - lo < 0.05 * 0.02  # a tight interval about it
  assert len(law["cells"]) == 9 and law["n_runs"] == 72
  assert all(v["inside"] for v in law["leave_one_cell_out"].values())
  assert law["median_abs_error"] < 0.05


def test_a_kappa_that_moves_with_the_cell_fails_the_held_out_prediction():
  law = contraction.natural_law(runs(lambda lr, wd: 0.02 * (lr * wd / 1e-3) ** 0.5, noise=0.02),
                                n_boot=200)
  loo = law["leave_one_cell_out"]
  assert sum(v["inside"] for v in loo.values()) < len(loo) / 2
  assert law["median_abs_error"] > 0.3


def test_the_delay_exponent_is_minus_one_for_a_constant_kappa_and_moves_with_it():
  flat = contraction.delay_exponent(runs(lambda lr, wd: 0.02, rng_seed=1), 200, start="peak")
  # the delay ~ ln(V_peak / V_grok) / (lr wd): -1 up to the spread of the log ratio per cell
  assert flat["beta"] == pytest.approx(-1.0, abs=0.05) and flat["n_cells"] == 9
  steep = contraction.delay_exponent(runs(lambda lr, wd: 0.02 * (lr * wd) ** 0.1, rng_seed=1),
                                     200, start="peak")
  assert steep["beta"] == pytest.approx(-1.1, abs=0.05)
  one_cell = [r for r in runs(lambda lr, wd: 0.02) if r["lr"] == 1e-3 and r["wd"] == 1.0]
  assert contraction.delay_exponent(one_cell, 50).get("beta") is None


def test_every_runs_csv_has_the_start_of_the_contraction(tmp_path):
  from grokjax.engine.reduce import grok_times
  steps = np.array([0, 100, 200, 300, 400])
  train = np.array([[0.1, 1.0, 1.0, 1.0, 1.0], [0.1, 0.5, 0.6, 0.7, 0.8]])
  test = np.array([[0.0, 0.1, 0.2, 0.95, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
  norm = np.array([[40.0, 50.0, 62.0, 55.0, 54.0], [40.0, 41.0, 42.0, 43.0, 44.0]])
  out = grok_times(steps, train, test, norm, np.array([400, 400]))
  np.testing.assert_array_equal(out.t_peak, [200, -1])
  np.testing.assert_allclose(out.norm_peak[:1], [62.0])
  np.testing.assert_allclose(out.norm_at_mem[:1], [50.0])
  assert np.isnan(out.norm_peak[1]) and np.isnan(out.norm_at_mem[1])
