"""Figures drawn from rows: PNG beside a vector PDF."""

import os

import numpy as np

from grokjax.harness import plots


def _free_rows(p, frac_shift, n=6):
  rng = np.random.default_rng(0)
  return [dict(p=p, seed=s, arm="free", grokked=True, diverged=False,
               norm_at_grok=55.0 + frac_shift + rng.normal(0, 0.3)) for s in range(n)]


def test_wc_against_the_train_fraction_is_drawn_with_the_papers_points(tmp_path):
  per_frac = {0.3: _free_rows(59, 1.5), 0.4: _free_rows(59, 0.0), 0.5: _free_rows(59, 0.3)}
  path = plots.wc_vs_frac(str(tmp_path / "wc_vs_frac.png"), per_frac, {0.3: 56.4, 0.4: 54.8},
                          n_boot=50)
  assert path.endswith("wc_vs_frac.png") and os.path.getsize(path) > 1000
  with open(tmp_path / "wc_vs_frac.pdf", "rb") as f:
    assert f.read(5) == b"%PDF-"
  listing = (tmp_path / plots.OWNED).read_text().split()
  assert listing == ["wc_vs_frac.pdf", "wc_vs_frac.png"]  # --force-new may remove both


def test_a_cells_median_ci_leaves_diverged_runs_out_and_needs_half_grokked():
  rows = [dict(seed=s, t_grok=1000.0 + 10 * s, censored=False, diverged=False) for s in range(8)]
  med, ci = plots.median_with_ci(rows + [dict(seed=9, t_grok=1.0, censored=False, diverged=True)],
                                 n_boot=200)
  assert med == 1035.0 and ci[0] <= med <= ci[1]
  cens = [dict(r, censored=True, t_grok=5000.0) for r in rows[:5]]
  assert plots.median_with_ci(cens + rows[5:], n_boot=50)[0] is None
