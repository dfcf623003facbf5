"""Verdicts that are tests, on synthetic samples whose answer is known, and the reader of
the authors' per-seed data on small npz files of their layout."""

import os

import numpy as np
import pytest

from grokjax.analysis import compare
from grokjax.paper import reference
from grokjax.paper import table


def _lognormal(n, median, sigma, rng):
  return median * np.exp(sigma * rng.normal(size=n))


def _verdicts(shift, trials=40, n=16, sigma=0.08):
  out = []
  for trial in range(trials):
    rng = np.random.default_rng(trial)
    ours, ref = _lognormal(n, 5000 * shift, sigma, rng), _lognormal(n, 5000, sigma, rng)
    out.append(compare.compare_samples(ours, None, ref, None, n_boot=300))
  return out


def test_same_distribution_reads_agrees_and_never_differs():
  v = [c.verdict for c in _verdicts(1.00)]
  assert "differs" not in v and v.count("agrees") >= 0.6 * len(v), v


def test_a_five_percent_shift_with_16_seeds_is_seen_but_not_overstated():
  cs = _verdicts(1.05)
  v = [c.verdict for c in cs]
  assert np.median([c.ratio for c in cs]) == pytest.approx(1.05, abs=0.03)
  seen = sum(x in ("differs", "agrees within 10%, shifted") for x in v)
  assert seen >= 0.25 * len(v), v  # the rank test often sees 5 % with 16 seeds
  assert all(c.ratio > 1 for c in cs if c.verdict == "differs")  # never the wrong way


def test_a_thirty_percent_shift_always_differs():
  assert {c.verdict for c in _verdicts(1.30)} == {"differs"}


def test_comparison_reads_censored_runs_as_later_than_every_observed_time():
  rng = np.random.default_rng(0)
  ours = _lognormal(16, 20000, 0.05, rng)
  ref = _lognormal(16, 20000, 0.05, rng)
  ref_cens = np.zeros(16, bool)
  ref_cens[:4] = True  # 4 of 16 never grokked in their budget: dropping them would bias down
  ref[:4] = 30000
  c = compare.compare_samples(ours, None, ref, ref_cens, n_boot=400)
  dropped = np.median(ref[~ref_cens])
  assert c.ref_median > dropped and c.censored_ref == 4
  half = np.ones(16, bool)
  assert compare.compare_samples(ours, None, ref, half, n_boot=50).verdict == "inconclusive"


def test_interval_and_point_verdicts():
  assert compare.interval_verdict((7.47, 7.81), (7.7, 8.3)) == "CIs overlap"
  assert compare.interval_verdict((7.47, 7.81), (8.5, 9.5)) == "differs"
  assert compare.point_verdict(55.0, (54.5, 57.0)) == "consistent (point)"
  assert compare.point_verdict(55.0, (55.6, 57.0)) == "differs (point)"


def _npz(folder, name, t_grok, **scalars):
  os.makedirs(folder, exist_ok=True)
  t = np.asarray(t_grok)
  steps = np.unique(np.geomspace(10, 30000, 200).astype(int))
  norm = np.tile(np.linspace(80, 40, len(steps)), (len(t), 1))
  base = dict(p=59, alpha=0.4, d_model=128, H=256, lam=1.0, lr=1e-3, max_steps=30000)
  base.update(scalars)
  np.savez(os.path.join(folder, name), steps=steps, T_grok_per_seed=t, weight_norm=norm,
           **{k: np.array(v) for k, v in base.items()})


def test_reference_reader_and_like_for_like_on_their_layout(tmp_path):
  root = tmp_path / "their_repo"
  m = root / "data" / "efflr" / "metrics"
  _npz(m, "adamw_p59_a0.40_d128_H256_wd1e00_none_rho1.00_lr1e-03.npz", [5000, 5100, 4900, 5050],
       arm=np.array("none"))
  _npz(m, "adamw_p59_a0.40_d128_H256_wd1e00_clamp_rho1.30_lr1e-03.npz", [-1, 28000, 27000, 29000],
       arm=np.array("clamp"), rho=1.3)
  _npz(root / "data" / "normint" / "metrics",
       "adamw_p59_a0.40_d128_H256_wd1e00_lr1e-03__layer_embed_f0.80.npz", [5300, 5200, 5400])
  cells = {c.file: c for c in reference.load(str(root))}
  free = cells["adamw_p59_a0.40_d128_H256_wd1e00_none_rho1.00_lr1e-03.npz"]
  assert free.arm == "free" and free.rho is None and free.budget == 30000
  assert np.all(np.isfinite(free.norm_at_grok))  # read off their curve at T_grok
  clamp = cells["adamw_p59_a0.40_d128_H256_wd1e00_clamp_rho1.30_lr1e-03.npz"]
  assert clamp.arm == "clamp" and clamp.rho == pytest.approx(1.3)
  assert clamp.censored.tolist() == [True, False, False, False] and clamp.t_grok[0] == 30000
  kick = cells["adamw_p59_a0.40_d128_H256_wd1e00_lr1e-03__layer_embed_f0.80.npz"]
  assert (kick.arm, kick.group, kick.rho) == ("kick", "embedding", None)
  # our folder of the same cells: free runs 2x slower than theirs must read "differs"
  ours = [dict(p=59, arm="free", rho=None, lr=1e-3, wd=1.0, seed=s, t_grok=t, grokked=True,
               diverged=False, norm_at_grok=60.0 + s, layernorm=False)
          for s, t in enumerate([10000, 10100, 9900, 10200, 9800, 10050])]
  ours += [dict(r, arm="clamp", rho=1.3, t_grok=5.6 * r["t_grok"]) for r in ours]
  folder = table.Folder("x", ours, dict(frac=0.4, d=128, hidden=256, arch="mlp", wd=1.0), {}, {})
  out = reference.like_for_like({"norm_vs_lr": folder}, list(cells.values()), n_boot=200)
  # the clamp cell seed by seed against its own control: 5.6x ours, about 5.6x theirs
  rel = [c for c in out if c.quantity == "T_grok / own control"]
  assert len(rel) == 1 and rel[0].comparison.ours_median == pytest.approx(5.6)
  assert rel[0].comparison.censored_ref == 1 and rel[0].comparison.n_ref == 4
  t = [c for c in out if c.quantity == "T_grok" and "free" in c.cell]
  assert len(t) == 1 and t[0].ref_experiment == "efflr"
  assert t[0].comparison.ratio == pytest.approx(np.median([10000, 10100, 9900, 10200, 9800, 10050])
                                                / np.median([5000, 5100, 4900, 5050]))
  assert t[0].comparison.verdict == "differs"


def test_reference_folder_without_their_data_is_one_line():
  with pytest.raises(reference.ReferenceError, match="holds no data"):
    reference.load(os.path.dirname(__file__))


def test_attention_cells_carry_layernorm_and_the_held_group(tmp_path):
  """Their attention-model files: tfnoln_long has no LayerNorm, tfnormint has it and holds
  one group (their "unembed" is our "output"); the delay-law slope of ours and of theirs is
  refitted over the held norms both ran, by the same estimator."""
  root = tmp_path / "their_repo"
  rng = np.random.default_rng(0)
  tf = dict(p=59, d_model=128, H=512, n_heads=4, lr=5e-4, max_steps=200000)
  law = lambda rho, alpha, n: np.round(np.exp(np.log(700) + alpha * (rho - 0.85)
                                              + 0.05 * rng.normal(size=n))).astype(int)
  noln = root / "data" / "tfnoln_long" / "metrics"
  for rho in (0.85, 1.00, 1.15):
    _npz(noln, f"adamw_p59_a0.40_d128_h4_H512_wd1e+00_lr5e-04__clamp_rho{rho:.2f}.npz",
         law(rho, 15.0, 16), arm=np.array("clamp"), rho=rho, **tf)
  ln = root / "data" / "tfnormint" / "metrics"
  ln_tf = dict(tf, p=71, lr=1e-3, max_steps=25000)
  for rho in (0.85, 1.30):
    _npz(ln, f"adamw_p71_a0.40_d128_h4_H512_wd1e+00_lr1e-03__clamp_unembed_rho{rho:.2f}.npz",
         law(rho, 1.0, 16), arm=np.array("clamp"), rho=rho, **ln_tf)
  cells = reference.load(str(root))
  unembed = [c for c in cells if c.experiment == "tfnormint"]
  assert {(c.arm, c.group, c.layernorm) for c in unembed} == {("clamp_group", "output", True)}
  assert {c.layernorm for c in cells if c.experiment == "tfnoln_long"} == {False}

  def rows(p, lr, rhos, alpha, layernorm, norm_group="all"):
    out = []
    for s in range(8):
      for rho in rhos:
        t = float(law(rho, alpha, 1)[0])
        out.append(dict(p=p, arm="clamp", rho=rho, lr=lr, wd=1.0, seed=s, t_grok=t, grokked=True,
                        diverged=False, layernorm=layernorm, arch="transformer",
                        norm_group=norm_group))
    return out
  cfg = dict(frac=0.4, d=128, hidden=512, arch="transformer", wd=1.0)
  # ours steeper (alpha 20 over 0.85-1.05), theirs alpha 15: compared over 0.85 and 1.00 only
  noln_ours = table.Folder("a", rows(59, 5e-4, [0.85, 0.925, 1.00, 1.05], 20.0, False), cfg, {}, {})
  (s,) = reference.delay_slopes(noln_ours, cells, "transformer_layernorm", n_boot=200)
  assert s["rhos"] == [0.85, 1.0] and s["experiment"] == "tfnoln_long"
  assert s["ours"]["alpha"] == pytest.approx(20.0, abs=2.5)
  assert s["theirs"]["alpha"] == pytest.approx(15.0, abs=1.5)
  # a whole-norm clamp with LayerNorm is not their group clamp: nothing to compare
  whole = table.Folder("b", rows(71, 1e-3, [0.85, 1.30], 1.0, True), cfg, {}, {})
  assert reference.delay_slopes(whole, cells, "transformer_layernorm", n_boot=50) == []
  held = table.Folder("c", rows(71, 1e-3, [0.85, 1.30], 1.0, True, "output"),
                   dict(cfg, norm_group="output"), {}, {})
  (u,) = reference.delay_slopes(held, cells, "transformer_layernorm", n_boot=200)
  assert "clamp_group" in u["cell"] and "output" in u["cell"] and "LayerNorm" in u["cell"]
  assert u["experiment"] == "tfnormint" and abs(u["ours"]["alpha"] - u["theirs"]["alpha"]) < 1.0
  t = [c for c in reference.like_for_like({"transformer_layernorm": held}, cells, n_boot=100)
       if c.quantity == "T_grok"]
  assert len(t) == 2 and all(c.comparison.verdict != "differs" for c in t)


def test_paired_ratios_keep_censored_runs_as_bounds():
  row = lambda seed, t, censored=False, diverged=False: dict(
      seed=seed, t_grok=t, censored=censored, grokked=not censored, diverged=diverged)
  ref = [row(0, 100), row(1, 200), row(2, 300), row(3, 400, True), row(4, 100)]
  arm = [row(0, 200), row(1, 400), row(2, 900, True), row(3, 900, True), row(4, 50, diverged=True)]
  vs = compare.paired_ratio(ref, arm)
  assert vs["n_pairs"] == 4 and vs["n_both_censored"] == 1  # seed 4 diverged: left out
  assert vs["n_ratio_lower_bound"] == 1 and vs["ratios"] == [2.0, 2.0, 3.0]
  assert vs["median_ratio"] == 2.0 and 0 < vs["wilcoxon_p"] <= 1
