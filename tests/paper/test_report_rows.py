"""Report rows that compare like with like (#41): the paper's W_c list mapped by learning
rate, the CV rows against the paper's own bound or the authors' per-seed data."""

import numpy as np

from grokjax.paper import mlp_claims
from grokjax.paper.reference import RefCell
from grokjax.paper.table import Folder

LRS = (3e-4, 1e-3, 3e-3)


def _folder(means):
  rows = [dict(p=59, arm="free", wd=wd, lr=lr, seed=s, grokked=True, censored=False,
               diverged=False, t_grok=1000, norm_at_grok=m * (1 + 0.001 * (s - 2)))
          for (wd, lr), m in means.items() for s in range(5)]
  return Folder("synthetic", rows, {}, {}, {})


def _ref(wd, lr, mean):
  w = np.full(5, mean)
  return RefCell(experiment="grokfss", file="x", p=59, frac=0.5, d=128, hidden=256, arch="mlp",
                 wd=wd, lr=lr, arm="free", rho=None, group=None, budget=10 ** 5,
                 t_grok=np.full(5, 1000.0), censored=np.zeros(5, bool), norm_at_grok=w)


def test_the_papers_wc_list_is_read_by_learning_rate_and_its_cv_bound_is_under_one_percent():
  f = _folder({(3.0, lr): m for lr, m in zip(LRS, (49.1, 48.9, 48.7))})
  rows = {r.quantity.rsplit(" (", 1)[0] if "grokked" in r.quantity else r.quantity: r
          for r in mlp_claims.wc_wd_lr_rows(f, 50)}
  assert rows["W_c (mean), wd 3, lr 0.0003"].paper == 49.1
  assert rows["W_c (mean), wd 3, lr 0.003"].paper == 48.7
  assert all(rows[f"W_c (mean), wd 3, lr {lr:g}"].verdict.startswith("consistent") for lr in LRS)
  cv = rows["CV of W_c across lr 0.0003, 0.001, 0.003, wd 3"]
  assert cv.paper == "< 1%" and cv.verdict == "agrees"


def test_a_cv_the_authors_data_share_agrees_though_the_abstract_says_otherwise():
  means = {(1.0, lr): m for lr, m in zip(LRS, (57.6, 55.0, 53.5))}  # CV ~ 3 %
  f = _folder(means)
  plain = [r for r in mlp_claims.wc_wd_lr_rows(f, 50) if r.quantity.startswith("CV")][0]
  assert plain.verdict == "differs" and "sufficient weight decay" in plain.note
  ref = [_ref(wd, lr, m) for (wd, lr), m in means.items()]
  row = [r for r in mlp_claims.wc_wd_lr_rows(f, 50, ref) if r.quantity.startswith("CV")][0]
  assert row.verdict == "agrees" and row.paper.startswith("authors' data: 3.")
  far = [_ref(wd, lr, m) for (wd, lr), m in zip(means, (50.0, 50.0, 50.1))]
  row = [r for r in mlp_claims.wc_wd_lr_rows(f, 50, far) if r.quantity.startswith("CV")][0]
  assert row.verdict == "differs"


def test_an_attention_law_fitted_over_fewer_cells_than_the_papers_gets_no_verdict():
  from grokjax.paper import attention
  rows = [dict(p=59, arm="free", rho=None, lr=5e-4, wd=1.0, seed=s, grokked=True,
               censored=False, diverged=False, t_grok=4000, norm_at_grok=37.0) for s in range(4)]
  rows += [dict(p=59, arm="clamp", rho=rho, lr=5e-4, wd=1.0, seed=s, grokked=True,
                censored=False, diverged=False, t_grok=float(np.exp(2 + 6 * rho) * (1 + 0.01 * s)),
                norm_at_grok=37.0 * rho) for rho in (0.85, 0.95, 1.05) for s in range(4)]
  f = Folder("synthetic", rows, {}, {}, {})
  (row,) = [r for r in attention.transformer_rows({"no_layernorm": f}, 50)
            if r.quantity.startswith("alpha_2")]
  assert row.quantity.endswith("0.85-1.05") and row.verdict == "not comparable (other cells)"
  assert "the paper's over 0.85-1.15" in row.note


def test_a_median_at_another_held_norm_is_read_off_the_line_through_the_cells():
  from grokjax.paper.attention import at_held_norm
  rows = [dict(target_norm=n, t_grok=float(np.exp(1 + 0.12 * n)), grokked=True, censored=False,
               diverged=False, seed=s) for n in (9.0, 11.0, 13.0) for s in range(3)]
  assert abs(at_held_norm(rows, 12.1) / np.exp(1 + 0.12 * 12.1) - 1) < 1e-9
  assert at_held_norm(rows[:3], 12.1) is None  # one cell: no line


def test_a_cell_the_authors_released_is_compared_with_their_data_not_the_papers_point():
  times = lambda rho: [float(np.exp(1 + 7.5 * rho)) * (1 + 0.02 * s) for s in range(6)]
  rows = [dict(p=59, arm="free", rho=None, lr=1e-3, wd=1.0, seed=s, grokked=True,
               censored=False, diverged=False, t_grok=5000.0, norm_at_grok=54.7) for s in range(6)]
  rows += [dict(p=59, arm="clamp", rho=rho, lr=1e-3, wd=1.0, seed=s, grokked=True,
                censored=False, diverged=False, t_grok=t, norm_at_grok=54.7 * rho, budget=25000)
           for rho in (0.90, 1.00) for s, t in enumerate(times(rho))]
  f = Folder("synthetic", rows, {}, {}, {})
  theirs = [RefCell(experiment="denserho", file="x", p=59, frac=0.4, d=128, hidden=256,
                    arch="mlp", wd=1.0, lr=1e-3, arm="clamp", rho=0.90, group=None,
                    budget=10 ** 5, t_grok=np.array(times(0.90)), censored=np.zeros(6, bool),
                    norm_at_grok=np.full(6, 49.0))]
  by = lambda ref: {r.quantity: r for r in mlp_claims.dense_rho_rows(f, 50, ref)}
  with_data = by(theirs)
  assert with_data["median T_grok, rho 0.90"].verdict == "CIs overlap"
  assert "authors' per-seed data" in with_data["median T_grok, rho 0.90"].note
  assert with_data["median T_grok, rho 1.00"].verdict.endswith("(point)")  # not released: Table 1
  assert by(None)["median T_grok, rho 0.90"].verdict == "new"
