"""Vectorised reduction of evaluation curves into grokking times.

All functions take curves shaped [runs, evals] (NaN where a run has no evaluation, for
example after it was retired) and reduce every run at once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def first_crossing(steps: np.ndarray, curve: np.ndarray, threshold: float, persist: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Per run, the first evaluated step with curve >= threshold for `persist` evaluations.

  Args:
    steps: int[evals], the step of each evaluation column.
    curve: float[runs, evals]; NaN never crosses.
    threshold: the level to reach.
    persist: evaluations in a row that must stay at or above the threshold, the first
      of which is the crossing (1: the first evaluation at the level). A run whose curve
      ends before the streak is complete has not crossed.

  Returns:
    (hit, step): bool[runs] whether the run crossed, int64[runs] the step (-1 if not).
  """
  if persist < 1:
    raise ValueError(f"persist must be >= 1, got {persist}")
  above = np.nan_to_num(np.asarray(curve, np.float64), nan=-np.inf) >= threshold
  if persist > 1:
    c = np.concatenate([np.zeros((above.shape[0], 1), np.int64), np.cumsum(above, axis=1)], 1)
    streak = c[:, persist:] - c[:, :-persist] == persist  # [runs, evals - persist + 1]
    above = np.zeros_like(above)
    above[:, : streak.shape[1]] = streak
  hit = above.any(axis=1)
  first = above.argmax(axis=1)
  return hit, np.where(hit, np.asarray(steps)[first], -1).astype(np.int64)


# A run is at its floor once this fraction of its train examples is (`floor_steps`): "most".
FLOOR_FRACTION = 0.5


def floor_steps(steps: np.ndarray, floor: np.ndarray, fraction: float = FLOOR_FRACTION
                ) -> np.ndarray:
  """Per run, t_floor: the first evaluated step at which at least `fraction` of its train
  examples are at the floor (a `floor` curve of `grokjax.engine.program.Program.evaluate`),
  -1 if none was.

  >>> floor_steps(np.array([10, 20, 30]), np.array([[0.1, 0.6, 0.9], [0.0, 0.2, np.nan]]))
  array([20, -1])
  """
  return first_crossing(steps, floor, fraction)[1]


def value_at(steps: np.ndarray, curve: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Per run, the curve at its step t (the first evaluation at or after it), NaN where t < 0.

  >>> value_at(np.array([10, 20]), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([20, -1]))
  array([ 2., nan])
  """
  t = np.asarray(t)
  col = np.minimum(np.searchsorted(np.asarray(steps), np.maximum(t, 0)), len(steps) - 1)
  at = np.take_along_axis(np.asarray(curve, np.float64), col[:, None], axis=1)[:, 0]
  return np.where(t >= 0, at, np.nan)


def norm_peak(steps: np.ndarray, norm: np.ndarray, t_mem: np.ndarray, t_grok: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
  """Per run, the step and value of the largest ||W|| between T_mem and T_grok, the height
  a free run's natural contraction starts from; (-1, NaN) for a run without both (t < 0).

  >>> norm_peak(np.array([10, 20, 30]), np.array([[5.0, 9.0, 8.0], [5.0, 6.0, 7.0]]),
  ...           np.array([10, 10]), np.array([30, -1]))
  (array([20, -1]), array([ 9., nan]))
  """
  steps = np.asarray(steps)
  t_mem, t_grok = np.asarray(t_mem), np.asarray(t_grok)
  window = (steps[None, :] >= t_mem[:, None]) & (steps[None, :] <= t_grok[:, None])
  window &= ((t_mem >= 0) & (t_grok >= 0))[:, None]
  masked = np.where(window & np.isfinite(norm), norm, -np.inf)
  col = np.argmax(masked, axis=1)
  top = masked[np.arange(len(col)), col]
  ok = np.isfinite(top)
  return np.where(ok, steps[col], -1).astype(np.int64), np.where(ok, top, np.nan)


def fell_back(steps: np.ndarray, curve: np.ndarray, threshold: float) -> np.ndarray:
  """bool[runs]: the curve reached the threshold and was later evaluated below it."""
  hit, first = first_crossing(steps, curve, threshold)
  later = np.asarray(steps)[None, :] > first[:, None]
  below = np.nan_to_num(np.asarray(curve, np.float64), nan=np.inf) < threshold
  return hit & np.any(later & below, axis=1)


class GrokTimes(NamedTuple):
  """Every run's outcome, read from its curves (`grok_times`); each field is an array [runs].

  - t_mem: first step with train accuracy >= the memorisation threshold (-1 if never);
    memorised: whether it memorised.
  - t_grok: first step with test accuracy >= the grok threshold, a censored run's budget;
    grokked: whether it grokked.
  - censored: neither grokked nor diverged, so its t_grok is a lower bound (the one rule);
    diverged: it became non-finite (neither a grok time nor a censoring time).
  - norm_at_grok: ||W|| at T_grok (NaN unless grokked); norm_at_mem: at T_mem.
  - fell_back: test accuracy reached the threshold and was later evaluated below it.
  - t_peak, norm_peak: the largest ||W|| between T_mem and T_grok and its step
    (`norm_peak`; -1 / NaN unless the run did both).
  - final_train_acc, final_test_acc: the last evaluated accuracies (NaN if none).
  """
  t_mem: np.ndarray
  memorised: np.ndarray
  t_grok: np.ndarray
  grokked: np.ndarray
  censored: np.ndarray
  diverged: np.ndarray
  norm_at_grok: np.ndarray
  fell_back: np.ndarray
  norm_at_mem: np.ndarray
  t_peak: np.ndarray
  norm_peak: np.ndarray
  final_train_acc: np.ndarray
  final_test_acc: np.ndarray


def grok_times(steps: np.ndarray, train_acc: np.ndarray, test_acc: np.ndarray,
               norm: np.ndarray, budget: np.ndarray, *, mem_threshold: float = 0.99,
               grok_threshold: float = 0.90, grok_persist: int = 1,
               diverged: np.ndarray | None = None) -> GrokTimes:
  """T_mem, T_grok, ||W|| at T_grok, censoring and divergence for every run.

  A run that never reaches `grok_threshold` is censored: its `t_grok` is its budget
  (a lower bound on the true time), `grokked` is False, `censored` True and
  `norm_at_grok` NaN. It is kept, never dropped. A run given as diverged is not censored:
  a diverged run is neither a grok time nor a censoring time (the one rule; runs.csv
  reads it from here through `SweepResult.reduce`).

  Args:
    steps: int[evals], step of each evaluation (counted from step 0).
    train_acc, test_acc, norm: float[runs, evals] curves.
    budget: int[runs], each run's step budget.
    mem_threshold: train accuracy that defines memorisation (T_mem).
    grok_threshold: test accuracy that defines grokking (T_grok).
    grok_persist: evaluations in a row the test accuracy must hold the threshold for
      (`first_crossing`); 1 is the paper's rule.
    diverged: bool[runs], runs that became non-finite (default none).

  Returns:
    a `GrokTimes`.
  """
  memorised, t_mem = first_crossing(steps, train_acc, mem_threshold)
  grokked, t_grok = first_crossing(steps, test_acc, grok_threshold, grok_persist)
  t_peak, top = norm_peak(steps, norm, np.where(memorised, t_mem, -1),
                         np.where(grokked, t_grok, -1))
  diverged = (np.zeros(len(grokked), bool) if diverged is None
              else np.asarray(diverged, bool))
  return GrokTimes(
      t_mem=t_mem,
      memorised=memorised,
      t_grok=np.where(grokked, t_grok, np.asarray(budget)).astype(np.int64),
      grokked=grokked,
      censored=~grokked & ~diverged,
      diverged=diverged,
      norm_at_grok=value_at(steps, norm, np.where(grokked, t_grok, -1)),
      fell_back=fell_back(steps, test_acc, grok_threshold),
      norm_at_mem=value_at(steps, norm, np.where(memorised, t_mem, -1)),
      t_peak=t_peak,
      norm_peak=top,
      final_train_acc=last_finite(train_acc),
      final_test_acc=last_finite(test_acc),
  )


def last_finite(curve: np.ndarray) -> np.ndarray:
  """Per row, the last non-NaN value (NaN for an empty row).

  >>> last_finite(np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan]]))
  array([ 2., nan])
  """
  curve = np.asarray(curve, np.float64)
  ok = np.isfinite(curve)
  last = curve.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
  return np.where(ok.any(1), curve[np.arange(len(curve)), last], np.nan)
