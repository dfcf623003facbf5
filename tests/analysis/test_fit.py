import json

import numpy as np
import pytest

from grokjax.analysis import fit
from grokjax.analysis.fit import fit_delay_law, fit_power_law, fit_shared_delay_law, fold_change

ALPHA = 7.5
RHOS = np.round(np.arange(0.85, 1.2501, 0.05), 2)


def _grid(rhos, n_seeds):
  """rho and seed index of every run of a full rho x seed grid."""
  return np.repeat(rhos, n_seeds), np.tile(np.arange(n_seeds), len(rhos))


def test_recovers_alpha_and_intercept_from_noisy_runs():
  rng = np.random.default_rng(3)
  rho, seed = _grid(RHOS, 12)
  ln_t = 0.9 + ALPHA * rho + 0.1 * rng.normal(size=rho.size)
  out = fit_delay_law(rho, np.exp(ln_t), None, seed, n_boot=300)
  lo, hi = out["alpha_ci"]
  assert lo < ALPHA < hi and lo < out["alpha"] < hi
  assert abs(out["alpha"] - ALPHA) < 0.3 and hi - lo < 1.0
  assert out["intercept_ci"][0] < 0.9 < out["intercept_ci"][1]
  assert out["r2"] > 0.99
  assert (out["n_runs"], out["n_censored"], out["n_cells"]) == (rho.size, 0, len(RHOS))
  json.dumps(out)  # plain Python values only


def test_noiseless_fit_is_exact():
  rho, seed = _grid(RHOS, 3)
  out = fit_delay_law(rho, 40.0 * np.exp(ALPHA * rho), None, seed, n_boot=50)
  assert out["alpha"] == pytest.approx(ALPHA, abs=1e-9)
  assert out["intercept"] == pytest.approx(np.log(40.0), abs=1e-9)
  assert out["r2"] == pytest.approx(1.0, abs=1e-9)
  np.testing.assert_allclose(out["alpha_ci"], [ALPHA, ALPHA], atol=1e-9)


def test_bootstrap_reproducible_and_seeded():
  rng = np.random.default_rng(5)
  rho, seed = _grid(RHOS, 6)
  t = np.exp(1.0 + ALPHA * rho + 0.2 * rng.normal(size=rho.size))
  a = fit_delay_law(rho, t, None, seed, n_boot=100, rng_seed=1)
  assert a == fit_delay_law(rho, t, None, seed, n_boot=100, rng_seed=1)
  assert a["alpha_ci"] != fit_delay_law(rho, t, None, seed, n_boot=100, rng_seed=2)["alpha_ci"]


def test_censored_runs_are_lower_bounds_in_the_median():
  rho, seed = _grid(np.array([0.9, 1.0, 1.1]), 5)
  t = np.exp(2.0 + ALPHA * rho + 0.05 * seed)  # seed 4 is the slowest in every cell
  cens = (rho == 1.1) & (seed >= 3)  # two of five censored: the median is still known
  for fill in (1.0, 1e12):  # whatever number a censored run carries, it ranks above all
    out = fit_delay_law(rho, np.where(cens, fill, t), cens, seed, n_boot=50)
    assert out["medians_used"]["1.1"] == pytest.approx(np.exp(2.0 + ALPHA * 1.1 + 0.1))
    assert out["n_censored"] == 2 and out["n_cells"] == 3
  # three of five censored: only a lower bound on the median, so the cell leaves the fit
  cens3 = (rho == 1.1) & (seed >= 2)
  out = fit_delay_law(rho, t, cens3, seed, n_boot=50)
  assert out["n_cells"] == 2 and "1.1" not in out["medians_used"] and out["n_censored"] == 3


def _three_moduli(rng, noise=0.1):
  intercepts = {41: 0.4, 59: 1.0, 71: 1.7}
  rho, seed = _grid(np.array([0.85, 1.0, 1.15]), 12)
  rows = [(np.full(rho.size, p), rho, seed, c + ALPHA * rho + noise * rng.normal(size=rho.size))
          for p, c in intercepts.items()]
  p, r, s, ln_t = (np.concatenate(col) for col in zip(*rows))
  return intercepts, p, r, s, np.exp(ln_t)


def test_shared_fit_recovers_one_alpha_and_intercepts():
  intercepts, p, rho, seed, t = _three_moduli(np.random.default_rng(6))
  out = fit_shared_delay_law(rho, t, p, None, seed, n_boot=300)
  assert out["alpha_ci"][0] < ALPHA < out["alpha_ci"][1]
  assert abs(out["alpha"] - ALPHA) < 0.3
  assert out["moduli"] == [41, 59, 71] and out["dropped"] == {}
  for k, c in intercepts.items():
    assert abs(out["intercepts"][str(k)] - c) < 0.15
  # the intercepts carry the spread between moduli, which r2 credits and r2_within not
  assert 0.9 < out["r2_within"] <= out["r2"] <= 1.0
  json.dumps(out)


def test_shared_fit_noiseless_is_exact():
  intercepts, p, rho, seed, t = _three_moduli(np.random.default_rng(0), noise=0.0)
  out = fit_shared_delay_law(rho, t, p, None, seed, n_boot=50)
  assert out["alpha"] == pytest.approx(ALPHA, abs=1e-9)
  for k, c in intercepts.items():
    assert out["intercepts"][str(k)] == pytest.approx(c, abs=1e-9)
  assert out["r2"] == pytest.approx(1.0, abs=1e-9)


def test_modulus_with_one_known_cell_is_dropped():
  _, p, rho, seed, t = _three_moduli(np.random.default_rng(8))
  r31 = np.repeat([0.85, 1.0, 1.15], 12)
  p31, s31, c31 = np.full(36, 31), np.tile(np.arange(12), 3), r31 != 1.0
  cat = lambda a, b: np.concatenate([a, b])
  out = fit_shared_delay_law(cat(rho, r31), cat(t, np.exp(2 + ALPHA * r31)), cat(p, p31),
                             cat(np.zeros(p.size, bool), c31), cat(seed, s31), n_boot=50)
  assert out["moduli"] == [41, 59, 71] and list(out["dropped"]) == ["31"]
  without = fit_shared_delay_law(rho, t, p, None, seed, n_boot=50)
  assert out["alpha"] == pytest.approx(without["alpha"], abs=1e-12)
  with pytest.raises(ValueError, match="no modulus"):
    fit_shared_delay_law(r31, np.exp(2 + ALPHA * r31), p31, c31)


@pytest.mark.parametrize("rho, t, cens, match", [
    ([1.0, 1.0, 1.0], [10.0, 20.0, 30.0], None, "two rho values"),
    ([0.9, 1.0, 1.1], [10.0, 20.0, 30.0], [False, True, True], "two rho values"),
    ([0.9, 1.0, 1.1], [10.0, 0.0, 30.0], None, "positive"),
    ([0.9, 1.0, 1.1], [10.0, np.nan, 30.0], None, "positive"),
    ([0.9, 1.0, 1.1], [10.0, 20.0], None, "same length"),
])
def test_bad_inputs_raise(rho, t, cens, match):
  with pytest.raises(ValueError, match=match):
    fit_delay_law(rho, t, cens, n_boot=10)


def test_power_law_exact_and_bad_input():
  p = np.array([29.0, 41.0, 59.0, 79.0, 97.0])
  out = fit_power_law(p, 3.0 * p ** 0.38)
  assert out["beta"] == pytest.approx(0.38, abs=1e-12)
  assert out["c"] == pytest.approx(3.0, rel=1e-10)
  assert out["r2"] == pytest.approx(1.0, abs=1e-12)
  for x, y in (([1.0], [2.0]), ([1.0, 2.0], [1.0, 0.0]), ([1.0, 2.0, 3.0], [1.0, 2.0])):
    with pytest.raises(ValueError):
      fit_power_law(x, y)


def test_fold_change_ignores_missing():
  assert fold_change([1492.0, np.nan, 27925.0, 4077.0]) == pytest.approx(27925.0 / 1492.0)
  assert fold_change([587.0, None, 1492.0]) == pytest.approx(1492 / 587)
  assert np.isnan(fold_change([np.nan, 5.0]))


def test_bootstrap_reports_replicates_kept_and_warns_when_few_survive():
  rng = np.random.default_rng(0)
  rho = np.repeat([0.9, 1.0, 1.1], 8)
  seed = np.tile(np.arange(8), 3)
  t = np.exp(2 + 7 * rho + 0.05 * rng.normal(size=24))
  ok = fit_delay_law(rho, t, seed=seed, n_boot=200)
  assert ok["n_boot_kept"] == 200 and "ci_warning" not in ok
  # rho 1.1 has 4 of 8 censored (median unknown) and rho 1.0 has 3: most resamples lose
  # the 1.0 cell too and leave a single known cell, so most replicates are dropped
  cens = np.zeros(24, bool)
  cens[16:20] = True
  cens[8:11] = True
  few = fit_delay_law(rho, t, cens, seed=seed, n_boot=200)
  assert few["n_boot_kept"] < 180 and "ci_warning" in few
  assert f"{few['n_boot_kept']} of 200" in few["ci_warning"]


def test_aft_fit_recovers_alpha_where_the_median_fit_cannot():
  from grokjax.analysis.fit import fit_aft_delay_law
  rng = np.random.default_rng(1)
  rho = np.repeat([0.9, 1.0, 1.1, 1.2], 32)
  seed = np.tile(np.arange(32), 4)
  t_true = np.exp(1.0 + 8.0 * rho + 0.5 * rng.normal(size=len(rho)))
  budget = np.exp(1.0 + 8.0 * 1.0 - 0.1)   # only the rho 0.9 cell keeps a known median
  cens = t_true > budget
  t = np.where(cens, budget, t_true)
  with pytest.raises(ValueError):
    fit_delay_law(rho, t, cens, seed, n_boot=10)
  out = fit_aft_delay_law(rho, t, cens, seed, n_boot=100)
  assert out["alpha_ci"][0] < 8.0 < out["alpha_ci"][1]
  assert abs(out["alpha"] - 8.0) < 1.5 and abs(out["sigma"] - 0.5) < 0.15
  assert out["n_censored"] == int(cens.sum()) > 64


def test_aft_fit_without_censoring_matches_least_squares():
  from grokjax.analysis.fit import fit_aft_delay_law
  rng = np.random.default_rng(2)
  rho = np.repeat([0.9, 1.0, 1.1], 10)
  p = np.tile([41, 59], 15)
  y = np.where(p == 41, 1.0, 2.0) + 7.0 * rho + 0.2 * rng.normal(size=30)
  out = fit_aft_delay_law(rho, np.exp(y), None, None, p, n_boot=0)
  X = np.stack([rho, p == 41, p == 59], 1).astype(float)
  coef, *_ = np.linalg.lstsq(X, y, rcond=None)
  assert abs(out["alpha"] - coef[0]) < 1e-6
  assert abs(out["intercepts"]["41"] - coef[1]) < 1e-6


def test_fold_change_with_a_censored_slow_cell_is_a_lower_bound():
  from grokjax.analysis.fit import bounded_median, fold_change_bounded, format_fold
  # rho 1.30 at lr 1e-3 censored in more than half its seeds: median > its 30k budget
  fold = fold_change_bounded([1492.0, 4077.0, 13426.0, None], [30000] * 4)
  assert fold["lower_bound"] and fold["value"] == pytest.approx(30000 / 1492)
  assert format_fold(fold).startswith(">= 20.1")
  full = fold_change_bounded([1492.0, 4077.0, 13426.0, 27925.0], [30000] * 4)
  assert not full["lower_bound"] and full["value"] == pytest.approx(27925 / 1492)
  med = bounded_median([fold, full, full])
  assert med["lower_bound"] and med["value"] == pytest.approx(27925 / 1492)


def test_censored_log_survival_is_exact_and_smooth_where_the_tail_takes_over():
  from scipy import stats
  from grokjax.analysis.fit import log_sf_and_mills
  z = np.array([-6.0, -1.0, 0.0, 2.0, 8.0, 24.999, 25.001, 38.0, 60.0])
  log_sf, mills = log_sf_and_mills(z)
  np.testing.assert_allclose(log_sf, stats.norm.logsf(z), rtol=1e-12)
  np.testing.assert_allclose(mills, np.exp(stats.norm.logpdf(z) - stats.norm.logsf(z)),
                             rtol=1e-10)
  assert abs(log_sf[6] - log_sf[5]) < 0.06 and np.all(np.isfinite(mills))  # no jump at 25


def test_power_law_has_a_standard_error_and_a_ci():
  rng = np.random.default_rng(1)
  p = np.array([29, 41, 59, 79, 97], float)
  inside = 0
  for _ in range(200):
    w = 11.6 * p ** 0.38 * np.exp(0.01 * rng.normal(size=5))
    out = fit_power_law(p, w)
    inside += out["beta_ci"][0] <= 0.38 <= out["beta_ci"][1]
    assert out["beta_se"] > 0
  assert 0.90 <= inside / 200 <= 0.99  # a 95 % interval covers the true exponent
  assert fit_power_law([10, 20], [1.0, 2.0])["beta_ci"] is None  # two points: no error


def test_one_seed_has_no_ci_and_a_never_grokking_top_cell_makes_alpha_a_bound():
  from grokjax.harness.summaries import aft_line
  rho = [0.9, 1.0, 1.1]
  one = fit.fit_delay_law(rho, [100.0, 210.0, 390.0], seed=[0, 0, 0], n_boot=50)
  assert one["alpha_ci"] is None and "one seed" in one["ci_warning"]
  aft = fit.fit_aft_delay_law(rho, [100.0, 210.0, 390.0], seed=[0, 0, 0], n_boot=50)
  assert aft["alpha_ci"] is None
  rho9 = np.repeat(rho, 3)
  t = np.array([100, 110, 90, 200, 210, 190, 600, 600, 600], float)
  cut = fit.fit_aft_delay_law(rho9, t, np.arange(9) >= 6, seed=np.tile([0, 1, 2], 3), n_boot=50)
  assert cut["lower_bound"] and "lower bound" in cut["bound_note"]
  assert aft_line(cut, "").startswith("per-run censored (AFT) fit: alpha >= ")
  assert "[CI undefined]" in aft_line(aft, "")
