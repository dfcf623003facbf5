"""The cross-validated predictor of new moduli and the authors' predictor, on synthetic
moduli whose law is known."""

import math

import numpy as np
import pytest
from scipy import stats

from grokjax.paper import predictor
from grokjax.paper.reference import RefCell

SEEDS = 11  # odd: a cell's median is its middle seed, the law itself
SCATTER = 0.1 * stats.norm.ppf((np.arange(SEEDS) + 0.5) / SEEDS)
T_INT = 500
ALPHA = 8.6


def _law(p, rho):
  """Known: on the clamp's clock one alpha, L1 linear in ln p; W_c = 10 p^0.4."""
  return T_INT + math.exp(12.0 - 1.1 * math.log(p) + ALPHA * (rho - 1.0))


def _data(moduli):
  out = {}
  for p in moduli:
    clamp = [dict(p=p, rho=rho, seed=s, t_grok=_law(p, rho) * math.exp(SCATTER[s]),
                  censored=False, grokked=True, diverged=False, t_int=T_INT)
             for rho in predictor.RHOS for s in range(SEEDS)]
    free = [dict(p=p, seed=s, arm="free", grokked=True, diverged=False,
                 norm_at_grok=10 * p ** 0.4 * math.exp(0.01 * SCATTER[s])) for s in range(SEEDS)]
    out[p] = dict(free=free, clamp=clamp, t_int=T_INT)
  return out


def test_the_predictor_chooses_the_true_clock_and_covers_unseen_moduli():
  data = _data([41, 53, 59, 71, 97, 113])
  out = predictor.predict(data, [67, 127], n_seeds=SEEDS, n_boot=50)
  assert out["model"]["clock"] == "clamp" and out["model"]["alpha"] == "shared"
  assert out["cross_validation"]["clamp/shared"]["rmse_ln"] < 1e-6
  assert out["cross_validation"]["step0/shared"]["rmse_ln"] > 0.01
  for p in (67, 127):
    wc = out["moduli"][str(p)]["wc"]
    assert wc["value"] == pytest.approx(10 * p ** 0.4, rel=1e-3)
    for rho in predictor.RHOS:
      cell = out["moduli"][str(p)]["median_t_grok"][f"{rho:g}"]
      truth = _law(p, rho)
      assert cell["value"] == pytest.approx(truth, rel=1e-6)
      # the band: at least the seed scatter of an 11-seed median, plus the model's own
      # (bootstrap) uncertainty; the cross-validation adds nothing on an exact law
      half = 1.96 * math.sqrt(math.pi / 2 * np.var(SCATTER, ddof=1) / SEEDS)
      lo, hi = cell["band"]
      assert half <= math.log(hi / cell["value"]) < 3 * half
      assert math.log(hi / cell["value"]) == pytest.approx(math.log(cell["value"] / lo))
      assert lo < truth < hi
  width = lambda p: math.log(out["moduli"][str(p)]["median_t_grok"]["1.15"]["band"][1])
  assert width(127) - math.log(_law(127, 1.15)) > width(67) - math.log(_law(67, 1.15))


def _ref(p, arm, rho, t):
  t = np.asarray(t, float)
  return RefCell(experiment="pscan", file="x", p=p, frac=0.4, d=128, hidden=256, arch="mlp",
                 wd=1.0, lr=1e-3, arm=arm, rho=rho, group=None, budget=10 ** 6, t_grok=t,
                 censored=np.zeros(len(t), bool), norm_at_grok=np.full(len(t), 5.0 * p ** 0.4))


def test_the_authors_predictor_recovers_a_drifting_exponent_and_their_shared_one():
  cells = []
  for p in (41, 53, 59, 71):
    alpha = 10.0 - 0.04 * p  # drifts linearly in p
    l1 = 9.0 - 0.02 * p
    cells.append(_ref(p, "free", None, [100.0] * 5))
    for rho in predictor.RHOS:
      cells.append(_ref(p, "clamp", rho, [math.exp(l1 + alpha * (rho - 1.0))] * 5))
  out = predictor.authors_predictor(cells, [97], n_boot=50)
  assert out["meta"]["alpha_in"] == "p" and out["meta"]["L1_in"] == "p"
  m = out["moduli"]["97"]
  assert m["alpha_drift"] == pytest.approx(10.0 - 0.04 * 97, rel=1e-9)
  assert m["M1_drift"]["1.15"]["value"] == pytest.approx(
      math.exp(9.0 - 0.02 * 97 + (10.0 - 0.04 * 97) * 0.15), rel=1e-9)
  assert m["M2_universal"]["1"]["value"] == pytest.approx(math.exp(9.0 - 0.02 * 97), rel=1e-9)
  assert m["wc"] == pytest.approx(5.0 * 97 ** 0.4, rel=1e-9)
  # their universal exponent: one alpha through every modulus's cells (with intercepts)
  assert 10.0 - 0.04 * 71 < m["alpha_universal"] < 10.0 - 0.04 * 41


def test_score_marks_each_cell_inside_or_outside_its_band():
  class F:
    rows = [dict(p=83, rho=1.0, arm="clamp", seed=s, t_grok=t, censored=False, grokked=True,
                 diverged=False) for s, t in enumerate([900, 1000, 1100])]
    clamp = lambda self, p: self.rows
    free = lambda self, p: [dict(p=83, arm="free", seed=s, grokked=True, diverged=False,
                                 norm_at_grok=62.5) for s in range(3)]
  pred = {"ours": {"moduli": {"83": {"median_t_grok": {"1": dict(value=800, band=[600, 1200])},
                                     "wc": dict(value=63.0, band=[60.0, 66.0])}}},
          "authors": {"moduli": {"83": {"wc": 61.0,
                                        "M1_drift": {"1": dict(value=2000, band=[1800, 2200])},
                                        "M2_universal": {"1": dict(value=1000, band=[900, 990])}}}}}
  scored = predictor.score(pred, F())
  wc = {s["predictor"]: s for s in scored if s["rho"] is None}
  assert wc["grokjax"]["inside"] and not wc["authors"]["inside"]  # theirs a point
  out = {s["predictor"]: s for s in scored if s["rho"] is not None}
  assert out["grokjax"]["inside"] and out["grokjax"]["ratio"] == pytest.approx(1.25)
  assert not out["authors M1_drift"]["inside"] and not out["authors M2_universal"]["inside"]
