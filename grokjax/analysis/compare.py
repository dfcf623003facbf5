"""Verdicts that are tests: how a sample of ours compares with a reference, like for like.

Three kinds of reference, three kinds of verdict, weakest last:

- **samples** (the authors' per-seed data): `compare_samples` gives the ratio ours /
  reference of the two medians with a bootstrap 95 % CI (both samples resampled; censored
  runs count as later than every observed time, so a median is known while fewer than half
  are censored), and a Mann-Whitney rank test on the values. The verdict (`sample_verdict`):
  "agrees" when the ratio's CI lies inside the equivalence margin [1 - m, 1 + m] and the rank
  test does not reject; "agrees within m, shifted" when inside the margin but the test
  rejects (a real difference smaller than the margin); "differs" when the test rejects and
  the CI lies outside the margin or excludes 1 beyond it; else "inconclusive".
- **interval** (a paper point with its CI): "CIs overlap" or "differs".
- **point** (a paper number alone): the point inside our CI ("consistent") or not
  ("differs"); the weakest check, since the paper's own scatter is unknown.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from grokjax.analysis.stats import censored_median, percentile_ci, usable

MARGIN = 0.10  # equivalence margin of a ratio: [0.90, 1.10] reads "agrees"
ALPHA = 0.05  # level of the rank test


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Ours against a reference sample: medians, their ratio with a 95 % CI, the rank test."""
  ours_median: float | None
  ref_median: float | None
  ratio: float | None
  ratio_ci: tuple[float, float] | None
  p_value: float | None
  n_ours: int
  n_ref: int
  censored_ours: int
  censored_ref: int
  verdict: str


def rank_test(a: np.ndarray, b: np.ndarray) -> float | None:
  """Two-sided Mann-Whitney p-value of two samples (inf allowed: a censored run)."""
  from scipy import stats
  a, b = np.asarray(a, float), np.asarray(b, float)
  if len(a) < 2 or len(b) < 2:
    return None
  if np.all(a == a[0]) and np.all(b == a[0]):
    return 1.0
  finite = np.concatenate([a, b])
  top = np.max(finite[np.isfinite(finite)]) if np.isfinite(finite).any() else 0.0
  # ranks only: a censored run ranks above every observed value, tied with the others
  a, b = np.where(np.isfinite(a), a, top + 1), np.where(np.isfinite(b), b, top + 1)
  return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def compare_samples(ours, ours_censored, ref, ref_censored, n_boot: int = 2000,
                    margin: float = MARGIN, rng_seed: int = 0) -> Comparison:
  """Ours against a reference sample (see the module docstring)."""
  ours, ref = np.asarray(ours, float), np.asarray(ref, float)
  oc = np.asarray(ours_censored, bool) if ours_censored is not None else np.zeros(len(ours), bool)
  rc = np.asarray(ref_censored, bool) if ref_censored is not None else np.zeros(len(ref), bool)
  mo, mr = censored_median(ours, oc), censored_median(ref, rc)
  ratio = mo / mr if mo is not None and mr else None
  rng = np.random.default_rng(rng_seed)
  boots = []
  for _ in range(n_boot):
    i, j = rng.integers(0, len(ours), len(ours)), rng.integers(0, len(ref), len(ref))
    a, b = censored_median(ours[i], oc[i]), censored_median(ref[j], rc[j])
    if a is not None and b:
      boots.append(a / b)
  ci = percentile_ci(boots, n_boot) if ratio is not None else None
  ci = None if ci is None else tuple(ci)
  p = rank_test(np.where(oc, np.inf, ours), np.where(rc, np.inf, ref))
  return Comparison(mo, mr, ratio, ci, p, len(ours), len(ref), int(oc.sum()), int(rc.sum()),
                    sample_verdict(ratio, ci, p, margin))


def sample_verdict(ratio: float | None, ci: Sequence[float] | None, p: float | None,
                   margin: float = MARGIN) -> str:
  """The verdict of a two-sample comparison (see the module docstring)."""
  if ratio is None or ci is None or p is None:
    return "inconclusive"
  inside = 1 - margin <= ci[0] and ci[1] <= 1 + margin
  rejects = p < ALPHA
  if inside:
    return f"agrees within {margin:.0%}, shifted" if rejects else "agrees"
  if rejects and (ci[0] > 1 or ci[1] < 1):
    return "differs"
  return "inconclusive"


def interval_verdict(ref_ci: Sequence[float], ours_ci: Sequence[float] | None) -> str:
  """A paper CI against ours: overlap or not."""
  if ours_ci is None:
    return "inconclusive"
  return "CIs overlap" if ours_ci[0] <= ref_ci[1] and ref_ci[0] <= ours_ci[1] else "differs"


def point_verdict(ref: float, ours_ci: Sequence[float] | None, half: float = 0.0) -> str:
  """A paper point, standing for [ref - half, ref + half] (the values that round to it),
  against our CI: the weakest check."""
  if ours_ci is None:
    return "inconclusive"
  return ("consistent (point)" if ours_ci[0] <= ref + half and ref - half <= ours_ci[1]
          else "differs (point)")


def paired_ratio(ref_rows, rows) -> dict[str, Any]:
  """Seed-paired T_grok ratio (this arm / the reference) and a two-sided Wilcoxon
  signed-rank test on ln T_grok. A censored run enters at its budget, a lower bound: a
  ratio with a censored numerator is a lower bound, the median of ratios treats those as
  censored (`censored_median`); a pair censored on both sides has no ratio and is only
  counted; diverged runs are left out. The test on budgets understates the slower side.
  Rows are runs.csv rows (seed, t_grok, censored, diverged); a seed pairs with the same
  seed of the reference (the same data split and initial weights in one seed stream)."""
  from scipy import stats
  ref = {r["seed"]: r for r in usable(ref_rows)}
  pairs = [(ref[r["seed"]], r) for r in usable(rows) if r["seed"] in ref]
  both = [(a, b) for a, b in pairs if a["censored"] and b["censored"]]
  known = [(a, b) for a, b in pairs if not (a["censored"] and b["censored"])]
  ratio = np.array([b["t_grok"] / a["t_grok"] for a, b in known], float)
  lower = np.array([b["censored"] for _, b in known], bool)  # this arm's time a lower bound
  upper = np.array([a["censored"] for a, _ in known], bool)
  diff = np.array([math.log(b["t_grok"]) - math.log(a["t_grok"]) for a, b in pairs], float)
  p_value = None
  if len(diff) >= 2 and np.any(diff != 0):
    p_value = float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)
  return dict(n_pairs=len(pairs), n_both_censored=len(both),
              n_ratio_lower_bound=int(lower.sum()), n_ratio_upper_bound=int(upper.sum()),
              median_ratio=censored_median(ratio[~upper], lower[~upper]) if len(ratio) else None,
              ratios=[round(float(x), 4) for x in ratio], wilcoxon_p=p_value)
