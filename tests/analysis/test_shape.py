"""The delay law's clock and shape on synthetic grids whose answer is known."""

import numpy as np
import pytest
from scipy import stats

from grokjax.analysis import fit, shape

RHOS = [0.85, 0.90, 0.95, 1.00, 1.05, 1.10, 1.15, 1.20, 1.25]
SEEDS = 12
# the same seed-to-seed scatter in every cell: normal quantiles, spread 0.1 in ln T
SCATTER = 0.1 * stats.norm.ppf((np.arange(SEEDS) + 0.5) / SEEDS)


def _rows(law, rhos=RHOS, budget=None, t_int=500):
  out = []
  for rho in rhos:
    for s in range(SEEDS):
      t = float(law(rho) * np.exp(SCATTER[s]))
      cens = budget is not None and t > budget
      out.append(dict(p=59, lr=1e-3, rho=rho, seed=s, t_grok=budget if cens else t,
                      censored=cens, grokked=not cens, diverged=False, t_int=t_int))
  return out


def test_a_straight_law_is_linear_and_its_local_slopes_are_alpha():
  rows = _rows(lambda r: np.exp(1.0 + 7.5 * r))
  out = shape.compare_forms(rows)
  assert out["best"] == "linear"
  assert out["forms"]["linear"]["params"][1] == pytest.approx(7.5, rel=1e-3)
  for s in shape.local_slopes(rows, n_boot=200):
    assert s["slope"] == pytest.approx(7.5, rel=1e-6)
    assert s["slope_ci"][0] - 1e-9 <= 7.5 <= s["slope_ci"][1] + 1e-9


def test_a_known_offset_is_found_and_the_clamp_clock_straightens_it():
  t0, law = 500.0, lambda r: 500.0 + np.exp(0.5 + 8.0 * r)
  rows = _rows(law)
  out = shape.compare_forms(rows)
  assert out["best"] == "offset_exponential"
  assert out["forms"]["offset_exponential"]["t0"] == pytest.approx(t0, rel=0.05)
  assert out["forms"]["linear"]["delta_aic"] > 6  # AIC: the straight line clearly worse
  # the medians on the clamp's clock lie on exp(0.5 + 8 rho) exactly
  shifted, dropped = shape.on_clamp_clock(rows)
  assert dropped == 0
  f = fit.fit_delay_law([r["rho"] for r in shifted], [r["t_grok"] for r in shifted], n_boot=20)
  assert f["alpha"] == pytest.approx(8.0, abs=0.3)
  f0 = fit.fit_delay_law([r["rho"] for r in rows], [r["t_grok"] for r in rows], n_boot=20)
  assert f0["alpha"] < f["alpha"] - 0.4  # from step 0 the fixed time flattens the law


def test_an_s_shaped_law_is_not_linear():
  rows = _rows(lambda r: np.exp(8.0 + 7.0 * (r - 1.05) - 40.0 * (r - 1.05) ** 3))
  out = shape.compare_forms(rows)
  assert out["best"] == "cubic"
  assert out["forms"]["linear"]["delta_aic"] > 10
  slopes = [s["slope"] for s in shape.local_slopes(rows, n_boot=50)]
  assert slopes[len(slopes) // 2] > max(slopes[0], slopes[-1]) + 2  # steep in the middle


def test_censored_runs_are_lower_bounds_in_the_shape_fit():
  law = lambda r: np.exp(1.0 + 7.5 * r)
  full = shape.compare_forms(_rows(law))
  cut = shape.compare_forms(_rows(law, budget=law(1.25)))  # half the last cell censored
  assert cut["n_censored"] == SEEDS // 2
  assert cut["forms"]["linear"]["params"][1] == pytest.approx(
      full["forms"]["linear"]["params"][1], rel=0.02)


def test_cells_the_clamp_never_acted_on_leave_the_clamp_clock():
  rows = _rows(lambda r: 400.0 + 50 * r, rhos=[0.85, 1.0]) + _rows(lambda r: 5000.0, rhos=[1.15])
  shifted, dropped = shape.on_clamp_clock(rows)
  assert dropped == 2 and {r["rho"] for r in shifted} == {1.15}
  assert min(r["t_grok"] for r in shifted) == pytest.approx(5000 * np.exp(SCATTER[0]) - 500)


def test_the_reports_clock_rows_fit_both_clocks_over_the_cells_both_sides_ran(monkeypatch):
  from grokjax.paper import clock
  law = lambda r: 500.0 + np.exp(0.5 + 8.0 * r)

  class Ours:
    config = {"t_int": 500}
    rows = [dict(r, arm="clamp") for r in _rows(law, rhos=[0.85, 1.0, 1.15])]
    clamp = lambda self, p=None: self.rows
  # the authors ran rho 1.30 too, where their times follow another law
  theirs = _rows(law, rhos=[0.85, 1.0, 1.15]) + _rows(lambda r: 1e6, rhos=[1.30])
  monkeypatch.setattr(clock, "authors_rows", lambda cells, experiment, lr=1e-3: theirs)
  (what, rhos, ours, auth), = clock.clock_rows({"dense_rho": Ours()}, ["their cells"], 50)
  assert rhos == [0.85, 1.0, 1.15]
  for side in (ours, auth):  # 12 seeds: the median's two middle seeds bias it by ~1e-5
    assert side["clamp"]["alpha"] == pytest.approx(8.0, abs=1e-3)
    assert side["step0"]["alpha"] < 7.5


def test_a_cell_that_grokked_before_its_clamp_is_no_cell_of_the_law(capsys):
  from grokjax.experiments import registry
  from grokjax.harness.summaries import delay_fits, print_delay_summary
  cfg = registry.resolve("pinned_norm", "smoke", n_boot=20)
  late = _rows(lambda r: np.exp(1.0 + 7.5 * r), rhos=[1.0, 1.1, 1.2], t_int=40)
  early = _rows(lambda r: 30.0, rhos=[0.9], t_int=40)  # every run grokked at step ~30 < 40
  out = delay_fits(cfg, late + early)
  assert out["cells_not_clamped"] == ["p=59 rho 0.9"]
  assert out["per_modulus"][59]["n_cells"] == 3
  assert out["per_modulus"][59]["alpha"] == pytest.approx(7.5, abs=1e-3)
  none = delay_fits(cfg, early)
  assert "every run grokked before its clamp" in none["shared"]["error"]
  print_delay_summary(dict(none, per_modulus={59: dict(wc=20.0, cells={})}))
  printed = capsys.readouterr().out
  assert "not clamp cells" in printed and "alpha =" not in printed
