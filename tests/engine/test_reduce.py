import numpy as np
import pytest

from grokjax.engine.reduce import first_crossing, grok_times

STEPS = np.array([10, 20, 30, 40, 50])


def _curves():
  train = np.array([[0.5, 0.995, 1.0, 1.0, 1.0],
                    [0.2, 0.5, 0.98, 0.991, 1.0],
                    [0.9, 1.0, 1.0, np.nan, np.nan]])
  test = np.array([[0.0, 0.1, 0.89, 0.95, 0.99],
                   [0.0, 0.0, 0.0, 0.85, 0.92],
                   [0.0, 0.2, 0.5, np.nan, np.nan]])
  norm = np.array([[5.0, 6.0, 7.0, 8.0, 9.0],
                   [1.0, 2.0, 3.0, 4.0, 5.0],
                   [3.0, 3.0, 3.0, np.nan, np.nan]])
  return train, test, norm


def test_exact_steps_and_norm_at_grok():
  train, test, norm = _curves()
  out = grok_times(STEPS, train, test, norm, budget=np.array([50, 50, 30]))
  np.testing.assert_array_equal(out.t_mem, [20, 40, 20])
  np.testing.assert_array_equal(out.t_grok[:2], [40, 50])
  np.testing.assert_array_equal(out.norm_at_grok[:2], [8.0, 5.0])


def test_censored_run_kept_and_flagged():
  train, test, norm = _curves()
  out = grok_times(STEPS, train, test, norm, budget=np.array([50, 50, 30]))
  assert len(out.t_grok) == 3
  np.testing.assert_array_equal(out.grokked, [True, True, False])
  np.testing.assert_array_equal(out.censored, [False, False, True])
  assert out.t_grok[2] == 30  # censored at its own budget
  assert np.isnan(out.norm_at_grok[2])


def test_thresholds_are_arguments():
  train, test, norm = _curves()
  budget = np.array([50, 50, 30])
  low = grok_times(STEPS, train, test, norm, budget, grok_threshold=0.5, mem_threshold=0.9)
  np.testing.assert_array_equal(low.t_grok, [30, 40, 30])
  np.testing.assert_array_equal(low.grokked, [True, True, True])
  np.testing.assert_array_equal(low.t_mem, [20, 30, 10])
  high = grok_times(STEPS, train, test, norm, budget, grok_threshold=0.95)
  np.testing.assert_array_equal(high.t_grok, [40, 50, 30])
  np.testing.assert_array_equal(high.grokked, [True, False, False])


def test_first_crossing_never():
  hit, step = first_crossing(STEPS, np.full((2, 5), np.nan), 0.5)
  assert not hit.any() and (step == -1).all()


def test_grok_persist_needs_a_streak_and_fell_back_counts_relapses():
  steps = np.array([10, 20, 30, 40, 50, 60])
  test = np.array([[0.2, 0.95, 0.5, 0.92, 0.93, 0.94],    # spike at 20, holds from 40
                   [0.2, 0.5, 0.91, 0.92, 0.93, np.nan],  # holds from 30 to its end
                   [0.1, 0.2, 0.3, 0.4, 0.95, 0.96]])     # crosses at 50, streak of 2
  train = np.ones_like(test)
  norm = np.ones_like(test)
  budget = np.array([60, 60, 60])
  one = grok_times(steps, train, test, norm, budget)
  np.testing.assert_array_equal(one.t_grok, [20, 30, 50])
  np.testing.assert_array_equal(one.fell_back, [True, False, False])
  three = grok_times(steps, train, test, norm, budget, grok_persist=3)
  np.testing.assert_array_equal(three.t_grok, [40, 30, 60])   # run 3: censored at budget
  np.testing.assert_array_equal(three.grokked, [True, True, False])
  with pytest.raises(ValueError):
    grok_times(steps, train, test, norm, budget, grok_persist=0)


def test_a_diverged_run_is_not_censored_by_the_public_reducer_as_in_runs_csv():
  from grokjax import grok_times
  steps = np.array([10, 20, 30])
  test = np.array([[0.1, 0.5, 0.95], [0.1, 0.2, np.nan], [0.1, 0.2, 0.3]])
  train = np.ones_like(test)
  out = grok_times(steps, train, test, np.ones_like(test), np.array([30, 30, 30]),
                   diverged=np.array([False, True, False]))
  assert out.grokked.tolist() == [True, False, False]
  assert out.censored.tolist() == [False, False, True]
  assert out.diverged.tolist() == [False, True, False]  # the record knows, nobody patches it
  assert out.final_test_acc.tolist() == [0.95, 0.2, 0.3]  # the last evaluation, NaN skipped


def test_grok_times_is_a_typed_record_with_every_runs_csv_outcome():
  from grokjax import GrokTimes, grok_times
  steps = np.array([10, 20])
  out = grok_times(steps, np.ones((2, 2)), np.array([[0.5, 0.95], [0.5, 0.6]]),
                   np.ones((2, 2)), np.array([20, 20]))
  assert isinstance(out, GrokTimes) and all(len(v) == 2 for v in out)
  assert out.diverged.tolist() == [False, False] and out.censored.tolist() == [False, True]


def test_the_seed_cv_of_wc_leaves_a_run_that_grokked_then_diverged_out():
  from grokjax.analysis.stats import seed_cv
  rows = [dict(grokked=True, diverged=False, norm_at_grok=w) for w in (50.0, 51.0, 49.0)]
  bad = dict(grokked=True, diverged=True, norm_at_grok=80.0)
  assert seed_cv(rows + [bad]) == seed_cv(rows)
