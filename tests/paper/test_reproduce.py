"""The reproduction report on small synthetic results: rows, verdicts, the locked
prediction, and the command line (report-only, the missing-folder error)."""

import os
import time

import numpy as np
import pytest

from grokjax import cli
from grokjax.harness import io
from grokjax.paper import claims, mlp_claims, prediction, report, table
from grokjax.analysis import stats


def _write(folder, rows, **config):
  io.write_csv(os.path.join(folder, "runs.csv"), rows)
  cfg = dict(experiment="pinned_norm", preset="paper", frac=0.4, seeds=8)
  cfg.update(config)
  io.write_json(os.path.join(folder, "config.json"),
                dict(config=cfg, environment=dict(platform="cpu", device_count=2, jax="test")))
  io.write_json(os.path.join(folder, "timing.json"), dict(phases={"p59_free": 60.0, "p59_clamp": 120.0}))


def _run(p, seed, arm, rho, t, norm, budget, grokked=True, lr=1e-3, diverged=False):
  return dict(p=p, seed=seed, arm=arm, rho=rho, lr=lr, budget=budget, steps_trained=t,
              t_grok=t if grokked else budget, grokked=grokked, censored=not grokked,
              diverged=diverged, norm_at_grok=norm if grokked else None, layernorm=False)


def law_rows(p, alpha, c, wc, seeds, rhos, rng, saturate_at=None, lr=1e-3):
  """Free runs with norm W_c (1 % noise) and clamp runs with ln T = c + alpha rho (5 %)."""
  rows = []
  for s in range(seeds):
    rows.append(_run(p, s, "free", None, int(np.exp(c + alpha)), wc * (1 + 0.01 * rng.normal()),
                     10 ** 6, lr=lr))
    for rho in rhos:
      mean = c + alpha * (min(rho, saturate_at) if saturate_at else rho)
      t = int(round(np.exp(mean + 0.05 * rng.normal()) / 10) * 10)
      rows.append(_run(p, s, "clamp", rho, t, rho * wc, 10 ** 6, lr=lr))
  return rows


def test_verdicts():
  assert table.verdict(7.64, (7.47, 7.81), 7.5, (7.0, 8.0)) == "CIs overlap"
  assert table.verdict(7.64, (7.47, 7.81), 8.0, (7.7, 8.3)) == "CIs overlap"
  assert table.verdict(7.64, (7.47, 7.81), 9.0, (8.5, 9.5)) == "differs"
  assert table.verdict(55.0, None, 56.0, (54.5, 57.0)) == "consistent (point)"  # inside our CI
  assert table.verdict(55.0, None, 56.0, (55.6, 57.0)) == "differs (point)"
  # a paper number stands for the values that round to it: 0.994 reaches down to 0.9935
  assert table.verdict(0.994, None, 0.993, (0.989, 0.99357)) == "consistent (point)"
  assert table.verdict(0.994, None, 0.993, (0.989, 0.9934)) == "differs (point)"
  assert table.verdict(None, None, 56.0, None) == "new"
  assert table.verdict(55.0, None, None, None) == "not measured"
  assert table.verdict(55.0, None, 50.0, None) == "inconclusive (no CI)"  # a point alone: no test
  row = table.paper_row("c", "q", 50.0, None, 55.0, (52.0, 58.0))
  assert row.ratio == (1.1, [1.04, 1.16])  # every row shows ours / paper with its CI


def test_seed_bootstrap_median_and_undefined_replicates():
  rows = [dict(seed=s, v=float(s)) for s in range(20)]
  point, ci = stats.seed_bootstrap(rows, lambda rs: float(np.median([r["v"] for r in rs])), 300)
  assert point == 9.5 and ci[0] < 9.5 < ci[1] and ci[0] >= 4 and ci[1] <= 15
  # a statistic undefined in most replicates has no CI rather than a misleading one
  point, ci = stats.seed_bootstrap(rows, lambda rs: None if len({r["seed"] for r in rs}) < 20 else 1.0, 100)
  assert ci is None


def test_censored_median_and_diverged_runs():
  rows = [_run(59, s, "clamp", 1.0, 100 * (s + 1), 50.0, 10000) for s in range(3)]
  rows += [_run(59, 3, "clamp", 1.0, 0, 0, 10000, grokked=False)]
  assert table.median_t_grok(rows) == 250.0          # censored counts above every time
  rows += [_run(59, 4, "clamp", 1.0, 0, 0, 10000, grokked=False)] * 2
  assert table.median_t_grok(rows) is None            # half or more censored: unknown
  div = [_run(59, 9, "clamp", 1.0, 0, 0, 10000, grokked=False, diverged=True)]
  assert table.median_t_grok(rows[:3] + div) == 200.0  # diverged runs are left out
  assert table.grok_fraction(rows[:3] + div) == 1.0


@pytest.fixture
def results(tmp_path):
  """A docs/results-like tree with dense_rho and moduli_scan from known laws."""
  rng = np.random.default_rng(0)
  root = tmp_path / "results"
  dense = law_rows(59, 7.5, 1.0, 55.0, 8, claims.DENSE_RHOS, rng, saturate_at=1.20)
  _write(str(root / "dense_rho"), dense, moduli=[59], rhos=claims.DENSE_RHOS)
  scan = []
  for p, alpha in ((41, 8.0), (53, 7.6), (59, 7.4), (71, 7.0)):
    scan += law_rows(p, alpha, 1.0 + 0.01 * p, 10.0 * p ** 0.4, 8, [0.85, 1.0, 1.15], rng)
  _write(str(root / "moduli_scan"), scan, moduli=[41, 53, 59, 71], rhos=[0.85, 1.0, 1.15])
  return root


def test_dense_rho_rows_recover_the_law(results):
  rows = mlp_claims.dense_rho_rows(table.Folder.load(str(results / "dense_rho")), 200)
  by = {r.quantity: r for r in rows}
  alpha = by["alpha, rho 0.85-1.25"]
  # the synthetic law saturates at 1.20, so the 0.85-1.25 fit is a little flatter than 7.5
  assert 6.0 < alpha.ours < 7.6 and alpha.ours_ci[0] < alpha.ours < alpha.ours_ci[1]
  assert alpha.verdict in ("inside paper CI", "CIs overlap", "differs")
  wc = by["W_c at p=59 (free control)"]
  assert abs(wc.ours - 55.0) < 1.0
  sat = [r for r in rows if r.quantity.startswith("saturation")][0]
  assert sat.verdict == "agrees"   # 1.30 lies below the fitted exponential
  fractions = [r for r in rows if r.claim.startswith("6")]
  assert len(fractions) == 9 and all(r.verdict == "agrees" for r in fractions)


def test_grok_fraction_row_reports_a_censored_cell(results):
  f = table.Folder.load(str(results / "dense_rho"))
  for r in f.rows:
    if r["arm"] == "clamp" and r["rho"] == 1.25 and r["seed"] < 2:
      r.update(grokked=False, censored=True, t_grok=r["budget"], norm_at_grok=None)
  row = [r for r in mlp_claims.dense_rho_rows(f, 50) if r.quantity.startswith("grok fraction, rho 1.25")][0]
  assert row.verdict == "differs" and row.ours.startswith("75%")


def test_moduli_scan_shared_alpha(results):
  rows = mlp_claims.moduli_scan_rows(table.Folder.load(str(results / "moduli_scan")), 200)
  shared = [r for r in rows if r.quantity == "shared alpha"][0]
  assert 7.0 < shared.ours < 8.0
  per_p = {r.quantity.split(" (")[0]: r.ours for r in rows if r.quantity.startswith("alpha")}
  assert abs(per_p["alpha, p=41"] - 8.0) < 0.6 and abs(per_p["alpha, p=71"] - 7.0) < 0.6


def test_prediction_extrapolates_the_scan(results):
  scan = table.Folder.load(str(results / "moduli_scan"))
  pred = prediction.predict_user_moduli(scan, [97], [1.0], n_boot=100)
  one = pred["moduli"]["97"]
  assert abs(one["wc"]["value"] - 10.0 * 97 ** 0.4) / (10.0 * 97 ** 0.4) < 0.03
  lo, hi = one["wc"]["band"]
  assert lo < one["wc"]["value"] < hi
  # alpha falls linearly by ~0.033 per unit of p in the synthetic scan
  assert 5.0 < one["alpha"]["value"] < 6.8
  assert pred["locked_at"] and len(pred["source_runs_sha256"]) == 64


def test_report_only_cli(results, tmp_path, capsys):
  doc = tmp_path / "reproduction.md"
  t0 = time.perf_counter()
  code = cli.reproduce_main(["--report-only", "--only", "dense_rho,moduli_scan", "--results",
                             str(results), "--doc", str(doc), "--n-boot", "100"])
  assert code == 0 and time.perf_counter() - t0 < 60
  out = capsys.readouterr().out
  assert "alpha, rho 0.85-1.25" in out and "shared alpha" in out and "7.64 [7.47, 7.81]" in out
  text = doc.read_text()
  assert "ours / paper" in text and "**Shared seeds.**" in text  # the fixture has no streams
  assert "| 1 dense rho |" in text and "Not yet measured" in text and "norm_vs_lr" in text


def test_report_only_names_the_missing_folder(results, tmp_path, capsys):
  code = cli.reproduce_main(["--report-only", "--results", str(results), "--doc",
                             str(tmp_path / "r.md"), "--n-boot", "10"])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1
  assert "norm_vs_lr" in err and "--only norm_vs_lr" in err
  assert not (tmp_path / "r.md").exists()


def test_only_prints_its_table_and_leaves_the_report_alone(results, tmp_path, capsys,
                                                          monkeypatch):
  monkeypatch.chdir(tmp_path)
  code = cli.reproduce_main(["--report-only", "--only", "dense_rho", "--results", str(results),
                             "--n-boot", "20"])
  assert code == 0 and "alpha, rho 0.85-1.25" in capsys.readouterr().out
  assert not (tmp_path / "docs").exists()


def test_unknown_claim_is_refused(capsys):
  assert cli.reproduce_main(["--report-only", "--only", "dense_rho,bogus"]) == 2
  assert "bogus" in capsys.readouterr().err


def test_norm_vs_lr_rows_and_folds(tmp_path):
  rng = np.random.default_rng(3)
  rows = []
  for lr, c in ((1e-3, 1.0), (2e-3, 0.6)):
    rows += law_rows(59, 7.0, c, 55.0, 8, [0.85, 1.0, 1.15, 1.30], rng, lr=lr)
  _write(str(tmp_path / "nvl"), rows, experiment="norm_vs_lr")
  out = mlp_claims.norm_vs_lr_rows(table.Folder.load(str(tmp_path / "nvl")), 100)
  by = {r.quantity: r for r in out}
  assert by["median T_grok, rho 0.85, lr 0.001"].paper == 1492
  fold = by["fold change across rho at lr 0.001"]
  assert abs(fold.ours - np.exp(7.0 * 0.45)) / np.exp(7.0 * 0.45) < 0.2
  assert abs(by["fold change across lr (median over rho rows)"].ours - np.exp(0.4)) < 0.3


def test_every_claim_and_experiment_draws_its_own_seeds():
  from grokjax.experiments import registry
  streams = {name: claims.part_config(parts[0]).seed_stream for name, (_, parts) in claims.CLAIMS.items()}
  assert streams["dense_rho"] == "dense_rho" and streams["moduli_scan"] == "moduli_scan"
  assert len(set(streams.values())) == len(streams)  # no two claims share runs
  assert registry.resolve("pinned_norm", "smoke").seed_stream == "pinned_norm"
  assert registry.resolve("pinned_norm", "smoke", seed_stream="").seed_stream == ""


def test_transformer_claim_reads_its_cpu_parts_and_skips_absent_accelerator_parts(tmp_path):
  """The attention-model claim: alpha_2 without LayerNorm recovered from its folder, the
  LayerNorm slopes, and the comparison of the two read as a test (the with-LayerNorm CI
  below the without); the accelerator-only grids are optional."""
  rng = np.random.default_rng(3)
  root = tmp_path / "results" / "transformer_layernorm"
  noln = law_rows(59, 15.0, np.log(718) - 15.0 * 0.85, 37.0, 8, [0.85, 0.925, 1.0, 1.05], rng,
                  lr=5e-4)
  _write(str(root / "no_layernorm"), noln, arch="transformer", moduli=[59])
  for name, group in (("layernorm", "all"), ("layernorm_output", "output")):
    rows = law_rows(71, 1.0, np.log(2000) - 1.0, 12.0, 8, [0.85, 1.0, 1.15, 1.3], rng)
    _write(str(root / name), [dict(r, layernorm=True) for r in rows], arch="transformer",
           layernorm=True, norm_group=group, moduli=[71])
  rows, folders = report.report(str(tmp_path / "results"), n_boot=200, only=["transformer_layernorm"])
  assert len(folders["transformer_layernorm"]) == 3  # the paper_ grids absent: not required
  by = {r.quantity: r for r in rows}
  a = by["alpha_2 without LayerNorm, rho 0.85-1.05"]
  assert a.ours == pytest.approx(15.0, abs=1.5) and a.paper == 15.45
  assert by["W_c without LayerNorm, p=59"].ours == pytest.approx(37.0, rel=0.02)
  for what in ("whole norm", "unembedding"):
    s = by[f"slope of ln T_grok on rho with LayerNorm, {what} held, p=71"]
    assert s.ours == pytest.approx(1.0, abs=1.0) and s.verdict == "new"
    assert by[f"LayerNorm weakens the law ({what} held)"].verdict == "agrees"
  # a LayerNorm law as steep as the one without must not read "weakens"
  steep = law_rows(71, 15.0, np.log(2000) - 15.0, 12.0, 8, [0.85, 1.0, 1.15, 1.3], rng)
  _write(str(root / "layernorm"), [dict(r, layernorm=True) for r in steep], arch="transformer",
         layernorm=True, moduli=[71])
  rows, _ = report.report(str(tmp_path / "results"), n_boot=200, only=["transformer_layernorm"])
  assert {r.quantity: r for r in rows}["LayerNorm weakens the law (whole norm held)"].verdict == "differs"


def test_report_refuses_a_runs_csv_that_is_cut_edited_or_not_ours(results, tmp_path, capsys):
  """A finished folder's manifest.json (its run count and the SHA-256 of its runs.csv)
  is checked by the report: a deleted row, an edited value or a cut file is refused in one
  line naming the file; so are a renamed column and a non-numeric T_grok."""
  folder = results / "dense_rho"
  io.write_manifest(str(folder), len(table.Folder.load(str(folder)).rows))
  args = ["--report-only", "--only", "dense_rho", "--results", str(results), "--n-boot", "10"]
  assert cli.reproduce_main(args) == 0
  capsys.readouterr()
  csv_path = folder / "runs.csv"
  good = csv_path.read_text()
  lines = good.splitlines(keepends=True)
  header = lines[0].rstrip("\n").split(",")
  t_col = header.index("t_grok")
  edited = lines[1].split(",")
  edited[t_col] = str(int(float(edited[t_col])) + 10)
  for text, why in (("".join(lines[:1] + lines[2:]), "holds"),          # a row deleted
                    ("".join([lines[0], ",".join(edited)] + lines[2:]), "SHA-256"),  # edited
                    ("".join(lines[:14]), "holds")):                    # cut to 13 runs
    csv_path.write_text(text)
    assert cli.reproduce_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "runs.csv" in err and why in err, err
  (folder / "manifest.json").unlink()
  csv_path.write_text(good.replace("t_grok", "T_grok", 1))
  assert cli.reproduce_main(args) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "no column t_grok" in err
  lines[1] = ",".join(edited[:t_col] + ["soon"] + edited[t_col + 1:])
  csv_path.write_text("".join(lines))
  assert cli.reproduce_main(args) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "line 2: t_grok = 'soon' is not a number" in err


def test_a_claim_with_one_of_its_folders_missing_reports_the_rest(tmp_path):
  """train_fraction with one of its five folders absent: the four others give their rows,
  the fifth a "not measured" row that says how to train it."""
  rng = np.random.default_rng(5)
  root = tmp_path / "results"
  for f in claims.FRACS[:-1]:
    rows = law_rows(59, 7.5, 1.0, 55.0, 6, [], rng)
    _write(str(root / "train_fraction" / f"frac{f:.2f}"), rows, experiment="free_training", frac=f)
  rows, folders = report.report(str(root), n_boot=50, only=["train_fraction"])
  assert len(folders["train_fraction"]) == 4
  gap = [r for r in rows if r.verdict == "not measured"]
  assert len(gap) == 1 and "frac0.65" in gap[0].quantity and "--only train_fraction" in gap[0].note
  assert any(r.ours is not None for r in rows if r.verdict != "not measured")


def test_a_whole_norm_clamp_that_never_groks_reads_as_bounds_and_a_censored_slope(tmp_path):
  """The total norm held with LayerNorm, where every run at rho >= 1 stops at its budget
  ungrokked: those cells read '>= budget' (with how many grokked), the slope comes from
  their bounds give a lower bound on the slope, and 'LayerNorm removes the dependence' is
  read as a test on that bound (refuted here: the bound, 15.4, reaches the law without)."""
  rng = np.random.default_rng(5)
  root = tmp_path / "results" / "transformer_layernorm"
  noln = law_rows(59, 15.0, np.log(718) - 15.0 * 0.85, 37.0, 8, [0.85, 0.925, 1.0, 1.05], rng,
                  lr=5e-4)
  _write(str(root / "no_layernorm"), noln, arch="transformer", moduli=[59])
  whole = law_rows(71, 30.0, np.log(2000) - 30.0 * 0.85, 18.0, 8, [0.85, 1.0, 1.15, 1.3], rng)
  for r in whole:
    if r["arm"] == "clamp" and r["rho"] >= 1.0:  # stopped at a budget of 20,000 ungrokked
      r.update(t_grok=20000, grokked=False, censored=True, budget=20000)
  _write(str(root / "layernorm"), [dict(r, layernorm=True) for r in whole], arch="transformer",
         layernorm=True, moduli=[71])
  rows, _ = report.report(str(tmp_path / "results"), n_boot=100, only=["transformer_layernorm"])
  by = {r.quantity: r for r in rows}
  cell = by["median T_grok, whole norm at rho 1.00, LayerNorm"]
  assert cell.ours == ">= 20,000" and cell.note.startswith("0 of 8 grokked within the budget 20,000")
  assert by["median T_grok, whole norm at rho 0.85, LayerNorm"].ours == pytest.approx(2000, rel=0.1)
  bound = by["lower bound on the slope of ln T_grok on rho, whole norm held, LayerNorm"]
  assert bound.ours == pytest.approx(np.log(20000 / 2000) / 0.15, rel=0.1)  # 0.85 -> 1.00
  aft = by["slope of ln T_grok on rho, whole norm held, LayerNorm (per-run censored fit)"]
  assert aft.ours is not None and "24 of 32 runs censored" in aft.note
  removes = by["LayerNorm removes the dependence, whole norm held (the paper held single weight "
               "groups)"]
  assert removes.verdict == "differs"  # the bound's CI sits above the law without LayerNorm
  assert "slope of ln T_grok on rho with LayerNorm, whole norm held, p=71" not in by
