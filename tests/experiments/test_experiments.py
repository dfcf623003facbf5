"""The experiment scripts end to end with the smoke preset, and their input checks."""

import contextlib
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from grokjax import cli
from grokjax.experiments import registry
from grokjax.engine.optim import NEVER
from grokjax.harness.session import Session, load_result, same_runs, save_result
from grokjax.engine.spec import CURVES
from grokjax.analysis.stats import cell_summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLUMNS = {"p", "seed", "arm", "rho", "lr", "wd", "budget", "t_mem", "t_grok", "grokked",
           "censored", "diverged", "norm_at_grok", "collapse_at_grok", "collapse_max",
           "final_train_acc", "final_test_acc"}


def _script(name, *args, check=True):
  """The experiment's command line, run in this process (its exit code, stdout, stderr):
  the compiled programs of one smoke model then serve every test that trains it. The
  scripts themselves run as processes in test_bad_input_through_the_script and in
  tests/engine/test_reliability.py."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main(name, argv=[*args, "--no-compile-cache"])
  proc = types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
  if check:
    assert proc.returncode == 0, proc.stderr[-2000:]
  return proc


# The tests that train the experiments' smoke model at p = 23 (a batch of 8, chunks of 20
# evaluations) or read the pinned_smoke folder run on one xdist worker, with the README's
# examples, test_train's free run (the README's Task), test_registry's own experiment and the
# two-process test (whose one-process reference is free_training's smoke run): the folder is
# built once, and the programs the first test compiles serve the others.
SHARES_SMOKE = pytest.mark.xdist_group("smoke")


@pytest.fixture(scope="module")
def pinned_smoke(tmp_path_factory):
  """One finished pinned_norm smoke folder and its console output, read by several tests
  (each test that changes it works on a copy)."""
  out = str(tmp_path_factory.mktemp("pinned_smoke") / "pn")
  return out, _script("pinned_norm", "--preset", "smoke", "--out", out, "--no-progress")


def _rows(out):
  with open(os.path.join(out, "runs.csv")) as f:
    return list(csv.DictReader(f))


def _finite(x):
  return x is not None and math.isfinite(x)


@SHARES_SMOKE
def test_pinned_norm_smoke(pinned_smoke):
  out, proc = pinned_smoke
  assert "run-steps/s" in proc.stdout and "at most" in proc.stdout  # plan and estimate
  rows = _rows(out)
  assert COLUMNS <= set(rows[0])
  assert {r["arm"] for r in rows} == {"free", "clamp"}
  assert {r["seed_stream"] for r in rows} == {"pinned_norm"}  # the experiment's own seeds
  fit = json.load(open(os.path.join(out, "fit.json")))
  for d in list(fit["per_modulus"].values()) + [fit["shared"]]:
    assert _finite(d["alpha"]) and all(_finite(v) for v in d["alpha_ci"]) and _finite(d["r2"])
  assert _finite(fit["per_modulus"]["23"]["wc"])
  cfg = json.load(open(os.path.join(out, "config.json")))
  assert cfg["config"]["preset"] == "smoke" and cfg["environment"]["jax"]
  assert os.path.getsize(os.path.join(out, "figures", "delay_law.png")) > 1000
  with open(os.path.join(out, "curves.npz"), "rb"):
    pass
  import numpy as np
  z = np.load(os.path.join(out, "curves.npz"))
  assert z["test_acc"].shape[0] == len(rows) and z["steps"].shape == z["norm"].shape


@SHARES_SMOKE
def test_free_training_smoke(tmp_path):
  out = str(tmp_path / "ft")
  # p = 19 and 23 (the preset's are 23 and 31): the padded-moduli test trains 19 as well
  first = _script("free_training", "--preset", "smoke", "--moduli", "19,23", "--out", out,
                  "--no-progress")
  assert "W_c at test-accuracy thresholds 0.8:" in first.stdout
  summary = json.load(open(os.path.join(out, "summary.json")))
  assert set(summary["per_modulus"]) == {"19", "23"}
  assert _finite(summary["power_law"]["beta"])
  assert all(_finite(v["wc"]) for v in summary["per_modulus"].values())
  assert os.path.exists(os.path.join(out, "figures", "wc_vs_p.png"))
  # W_c at each test-accuracy threshold: 0.90 is the reported W_c, the others bracket it
  th = summary["per_modulus"]["23"]["wc_by_threshold"]
  assert set(th["wc"]) == {"0.8", "0.9", "0.95"} and 0 <= th["spread"] < 0.2
  assert th["wc"]["0.9"] == pytest.approx(summary["per_modulus"]["23"]["wc"])
  # --wc-from reuses these W_c instead of training a free control again
  out2 = str(tmp_path / "pn")
  proc = _script("pinned_norm", "--preset", "smoke", "--out", out2, "--no-progress",
                 "--no-figures", "--wc-from", out)
  assert "from " + out in proc.stdout
  assert {r["arm"] for r in _rows(out2)} == {"clamp"}
  fit = json.load(open(os.path.join(out2, "fit.json")))
  assert fit["per_modulus"]["23"]["wc"] == pytest.approx(summary["per_modulus"]["23"]["wc"])


@SHARES_SMOKE
def test_free_training_scans_weight_decay_and_reports_the_cv_across_lr(tmp_path):
  out = str(tmp_path / "wd")
  proc = _script("free_training", "--preset", "smoke", "--moduli", "23", "--wds", "0.5,1",
                 "--lrs", "2e-2,3e-2", "--out", out, "--no-progress")
  assert "p=23 wd 0.5:" in proc.stdout and "CV across lr" in proc.stdout
  per = json.load(open(os.path.join(out, "summary.json")))["per_modulus"]["23"]
  assert set(per["per_wd"]) == {"0.5", "1"}
  rows = _rows(out)
  assert {(r["wd"], r["lr"]) for r in rows} == {(w, l) for w in ("0.5", "1.0")
                                                for l in ("0.02", "0.03")}
  for wd, cell in per["per_wd"].items():
    for lr, c in cell["per_lr"].items():
      norms = sorted(float(r["norm_at_grok"]) for r in rows if float(r["wd"]) == float(wd)
                     and float(r["lr"]) == float(lr) and r["grokked"] == "True")
      assert c["wc"] == pytest.approx(float(np.median(norms)))  # W_c from its own cell
      if c["wc_ci"]:
        assert c["wc_ci"][0] <= c["wc"] <= c["wc_ci"][1]
    wcs = [c["wc"] for c in cell["per_lr"].values()]
    assert cell["wc_cv_lrs"] == pytest.approx(np.std(wcs) / np.mean(wcs))
  assert per["wc"] == per["per_wd"]["1"]["per_lr"]["0.02"]["wc"]  # the preset's wd and lr
  assert os.path.exists(os.path.join(out, "figures", "wc_vs_wd.png"))
  bad = _script("free_training", "--preset", "smoke", "--wds", "1,1", "--out", out + "x",
                check=False)
  assert bad.returncode == 2 and "--wds" in bad.stderr and not os.path.exists(out + "x")


def test_a_temperature_scan_is_one_program_equal_to_a_folder_per_temperature(tmp_path):
  """--scan temperature=...: every value trained in one program (one phase) with the same
  seeds; each value's runs equal a --temperature folder's; W_c per value from its own runs
  and gamma the log-log slope through them, inside its seed-bootstrap CI."""
  out, one = str(tmp_path / "scan"), str(tmp_path / "t2")
  base = ["--preset", "smoke", "--moduli", "23", "--seeds", "3", "--no-progress"]
  proc = _script("free_training", *base, "--scan", "temperature=0.5,2", "--out", out)
  assert "temperature scan 0.5 / 2" in proc.stdout and "p=23 temperature 2:" in proc.stdout
  assert sorted(os.listdir(os.path.join(out, "phases"))) == ["free_p23.npz"]
  _script("free_training", *base, "--temperature", "2", "--out", one)
  rows, alone = _rows(out), _rows(one)
  assert sorted(float(r["temperature"]) for r in rows) == [0.5] * 3 + [2.0] * 3
  at2 = sorted((r for r in rows if float(r["temperature"]) == 2), key=lambda r: r["seed"])
  for a, b in zip(at2, sorted(alone, key=lambda r: r["seed"])):
    assert (a["seed"], a["t_grok"], a["t_mem"]) == (b["seed"], b["t_grok"], b["t_mem"])
    assert float(a["norm_at_grok"]) == pytest.approx(float(b["norm_at_grok"]), rel=1e-5)
  scan = json.load(open(os.path.join(out, "summary.json")))["per_modulus"]["23"]["scan"]
  assert scan["axis"] == "temperature" and set(scan["per_value"]) == {"0.5", "2"}
  wc = {}
  for t in (0.5, 2.0):
    norms = [float(r["norm_at_grok"]) for r in rows
             if float(r["temperature"]) == t and r["grokked"] == "True"]
    wc[t] = float(np.median(norms))
    assert scan["per_value"][f"{t:g}"]["per_lr"]["0.03"]["wc"] == pytest.approx(wc[t])
  law = scan["power_law"]
  assert law["gamma"] == pytest.approx(math.log(wc[2.0] / wc[0.5]) / math.log(4))
  assert law["gamma_ci"][0] <= law["gamma"] <= law["gamma_ci"][1]
  assert os.path.exists(os.path.join(out, "figures", "wc_vs_temperature.png"))


@SHARES_SMOKE
def test_norm_vs_lr_smoke(tmp_path):
  out = str(tmp_path / "nl")
  proc = _script("norm_vs_lr", "--preset", "smoke", "--out", out, "--no-progress")
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert set(fit["median_t_grok"]) == {"0.95", "1.1"}
  assert set(fit["free_control"]) == {"0.02", "0.03"}
  assert _finite(fit["fold_rho_median"]["value"]) and _finite(fit["fold_lr_median"]["value"])
  assert "fold change" in proc.stdout
  assert os.path.exists(os.path.join(out, "figures", "rho_lr_matrix.png"))


@SHARES_SMOKE
def test_a_diverged_learning_rate_is_reported_as_diverged_not_censored(tmp_path):
  out = str(tmp_path / "nl")
  proc = _script("norm_vs_lr", "--preset", "smoke", "--lrs", "3e-2,10", "--out", out,
                 "--no-progress", "--no-figures")
  rows = _rows(out)
  bad = [r for r in rows if float(r["lr"]) == 10]
  assert bad and all(r["diverged"] == "True" and r["censored"] == "False" for r in bad)
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert fit["diverged_cells"] == ["rho 0.95, lr 10", "rho 1.1, lr 10"]
  assert fit["free_diverged"] == ["10"]
  table = [l for l in proc.stdout.splitlines() if l.startswith(("  rho", "  free"))]
  assert len(table) == 3 and all("diverged" in l and "censored" not in l for l in table)
  # the fold across lr is not built from the diverged column (one lr left: no fold)
  assert all(v["value"] is None for v in fit["fold_across_lr"].values())


def test_a_free_control_whose_every_run_diverges_says_so(tmp_path):
  proc = _script("pinned_norm", "--preset", "smoke", "--lrs", "10", "--out",
                 str(tmp_path / "d"), "--no-progress", check=False)
  assert proc.returncode == 1 and "every run of the free control diverged" in proc.stderr
  assert "nan%" not in proc.stderr and "raise the learning rate" not in proc.stderr


BAD = [
    # a scan's largest size goes through the memory check (this one needs about 226 GiB)
    ("sparse_parity", ["--preset", "smoke", "--train-sizes", "200,100000000"],
     "--train-sizes: the grid needs about"),
    ("pinned_norm", ["--moduli", ""], "--moduli: empty list"),
    ("pinned_norm", ["--moduli", "41,,47"], "--moduli: empty list"),
    ("pinned_norm", ["--moduli", "41,x"], "'x' is not an integer"),
    ("pinned_norm", ["--moduli", "2"], "2 is below 3"),
    ("pinned_norm", ["--moduli", "4.5"], "'4.5' is not an integer"),
    ("pinned_norm", ["--rhos", "0,1"], "--rhos: 0 is not allowed"),
    ("pinned_norm", ["--rhos", "-0.5"], "--rhos: -0.5 is not allowed"),
    ("pinned_norm", ["--rhos", "nan"], "--rhos: nan is not allowed"),
    ("pinned_norm", ["--preset", "fast"], "unknown preset 'fast'"),
    ("pinned_norm", ["--frac", "1.5"], "--frac: 1.5 is outside (0, 1)"),
    ("pinned_norm", ["--frac", "0"], "--frac: 0 is outside (0, 1)"),
    ("pinned_norm", ["--seeds", "0"], "--seeds: 0 is below 1"),
    ("pinned_norm", ["--steps", "ten"], "--steps: 'ten' is not an integer"),
    ("pinned_norm", ["--lrs", "1e-3,2e-3"], "holds one learning rate"),
    ("pinned_norm", ["--lrs=-1e-3"], "--lrs: -1e-3 is not allowed"),
    ("pinned_norm", ["--wd", "-1"], "--wd: -1 is outside [0, inf)"),
    ("pinned_norm", ["--wc-from", "/nonexistent/folder"], "is not a folder"),
    ("pinned_norm", ["--dtype", "float16"], "invalid choice: 'float16'"),
    ("pinned_norm", ["--retire-margin", "-5"], "--retire-margin: -5 is below 0"),
    ("pinned_norm", ["--moduli", "3", "--frac", "0.99"], "non-empty"),
    ("norm_vs_lr", ["--moduli", "41,47"], "runs at one modulus"),
    ("free_training", ["--rhos", "1.0"], "unrecognized arguments: --rhos"),
    ("free_training", ["--eval-every", "0"], "--eval-every: 0 is below 1"),
    ("layernorm_ablation", ["--arch", "rnn"], "invalid choice: 'rnn'"),
    ("pinned_norm", ["--arch", "transformer", "--d", "10", "--heads", "4"], "not divisible"),
    ("pinned_norm", ["--moduli", "100000"], "--moduli: the grid needs about"),
    ("pinned_norm", ["--seeds", "1000000000"], "the largest number of seeds that fits is"),
    ("pinned_norm", ["--preset", "smoke", "--hidden", "2000000000"],
     "--hidden: the grid needs about"),
    ("free_training", ["--steps", "1000000000000"], "the largest budget that fits is"),
    ("pinned_norm", ["--moduli", "23,23"], "--moduli: 23 appears twice"),
    ("pinned_norm", ["--rhos", "1,1.0"], "--rhos: 1 appears twice"),
    ("pinned_norm", ["--wc-min-grok-fraction", "1.00005"], "is outside (0, 1]"),
    ("pinned_norm", ["--out", ""], "--out: an empty folder name"),
    ("pinned_norm", ["--preset", "smoke", "--norm-group", "attention"],
     "--norm-group: the mlp model has no group 'attention'"),
    ("pinned_norm", ["--preset", "smoke", "--t-int", "100000"], "--t-int: the clamp would start"),
    ("norm_interventions", ["--preset", "smoke", "--t-int", "600"], "--t-int: the interventions"),
    ("pinned_norm", ["--preset", "smoke", "--eval-every", "1000"], "--eval-every: 1000 is longer"),
    ("free_training", ["--preset", "smoke", "--steps", "50", "--eval-every", "60"], "--eval-every"),
    ("pinned_norm", ["--preset", "smoke", "--steps", "600", "--eval-every", "600"],
     "--eval-every: 600 is as long as the budget"),
    ("free_norm_delay", ["--preset", "smoke", "--kick-at", "100000"], "--kick-at: the weights"),
    ("precision", ["--preset", "smoke", "--arms", "float16"], "--arms: arm 'float16': starts with"),
    ("precision", ["--preset", "smoke", "--arms", "float64+hinge"], "neither a loss"),
    ("precision", ["--preset", "smoke", "--arms", "float64+noise-1"], "is not noise<k>"),
    ("precision", ["--preset", "smoke", "--dtype", "float64"], "sets them per arm"),
    ("pinned_norm", ["--preset", "smoke", "--loss", "hinge"], "invalid choice: 'hinge'"),
    ("pinned_norm", ["--preset", "smoke", "--fit-rhos", "2:3"], "--fit-rhos: 2:3 holds none"),
    ("pinned_norm", ["--preset", "smoke", "--noise", "-1"], "--noise: -1 is outside"),
    ("free_training", ["--preset", "smoke", "--scan", "temp=1,2"], "--scan: 'temp=1,2' is not"),
    ("free_training", ["--preset", "smoke", "--scan", "temperature=0,1"],
     "--scan temperature: temperatures must be finite and > 0"),
    ("free_training", ["--preset", "smoke", "--scan", "momentum=0.9,1"],
     "--scan momentum: a momentum must be in [0, 1)"),
    ("free_training", ["--preset", "smoke", "--scan", "temperature=1,1"], "1 appears twice"),
    ("free_training", ["--preset", "smoke", "--scan", "temperature=1,2", "--wds", "0.5,1"],
     "--scan: one scan at a time"),
    ("free_training", ["--preset", "smoke", "--scan", "temperature=1,2", "--temperature", "2"],
     "give the temperatures to --scan only"),
    ("free_training", ["--preset", "smoke", "--scan", "grokfast_lamb=0,2"],
     "needs --grad-transform grokfast"),
    ("norm_vs_lr", ["--preset", "smoke", "--scan", "temperature=1,2"],
     "unrecognized arguments: --scan"),
]


@pytest.mark.parametrize("name, args, message", BAD, ids=[" ".join(a) or "empty" for _, a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, name, args, message):
  out = str(tmp_path / "out")
  code = cli.main(name, argv=["--out", out, *args])
  err = capsys.readouterr().err
  assert code == 2
  assert message in err and err.count("\n") == 1 and "Traceback" not in err
  assert not os.path.exists(out)


def test_bad_input_through_the_script(tmp_path):
  out = str(tmp_path / "out")
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "pinned_norm.py"),
                         "--moduli", "a,b", "--out", out], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
  assert "--moduli" in proc.stderr and not os.path.exists(out)
  # a backend no machine has: one line naming JAX_PLATFORMS, nothing written
  env = dict(os.environ, JAX_PLATFORMS="nosuch")
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "pinned_norm.py"),
                         "--preset", "smoke", "--out", out], capture_output=True, text=True,
                        timeout=300, env=env)
  assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
  assert "JAX_PLATFORMS='nosuch'" in proc.stderr and not os.path.exists(out)


@SHARES_SMOKE
def test_resume_with_changed_rhos_is_refused_and_force_new_works(tmp_path, pinned_smoke):
  out = str(tmp_path / "pn")
  shutil.copytree(pinned_smoke[0], out)
  proc = _script("pinned_norm", "--preset", "smoke", "--rhos", "1.0,1.2", "--out", out,
                 "--no-progress", check=False)
  assert proc.returncode == 2 and "differs in: rhos" in proc.stderr
  assert {r["rho"] for r in _rows(out) if r["arm"] == "clamp"} == {"0.95", "1.1"}
  _script("pinned_norm", "--preset", "smoke", "--rhos", "1.0,1.2", "--out", out,
          "--no-progress", "--no-figures", "--force-new")
  assert {r["rho"] for r in _rows(out) if r["arm"] == "clamp"} == {"1.0", "1.2"}


@SHARES_SMOKE
def test_fit_rhos_refits_a_finished_folder_without_training(tmp_path, pinned_smoke):
  out = str(tmp_path / "pn")
  shutil.copytree(pinned_smoke[0], out)
  runs_before = open(os.path.join(out, "runs.csv")).read()
  proc = _script("pinned_norm", "--preset", "smoke", "--fit-rhos", "0.9:1.2", "--out", out,
                 "--no-progress", "--no-figures")
  assert "loaded from" in proc.stdout  # no phase trained again
  assert open(os.path.join(out, "runs.csv")).read() == runs_before
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert fit["fit_rhos"] == [0.9, 1.2] and "all_cells" in fit["per_modulus"]["23"]
  assert json.load(open(os.path.join(out, "config.json")))["config"]["fit_rhos"] == [0.9, 1.2]
  bad = _script("pinned_norm", "--preset", "smoke", "--fit-rhos", "1.2:0.9", "--out", out,
                check=False)
  assert bad.returncode == 2 and "--fit-rhos" in bad.stderr


def test_refit_headline_uses_the_range_and_keeps_every_cell_apart(tmp_path):
  from grokjax.harness import io as gio
  from grokjax.experiments import pinned_norm
  rows = []
  for s in range(6):
    rows.append(dict(p=23, seed=s, arm="free", rho=None, lr=0.03, wd=1.0, t_grok=200,
                     grokked=True, censored=False, diverged=False, fell_back=False,
                     norm_at_grok=20.0 + 0.1 * s, t_mem=50))
    for rho in (0.9, 1.0, 1.1, 1.3):
      t = round(100 * np.exp(8 * min(rho, 1.1)) * (1 + 0.01 * s))  # saturates past 1.1
      rows.append(dict(p=23, seed=s, arm="clamp", rho=rho, lr=0.03, wd=1.0, t_grok=t,
                       grokked=True, censored=False, diverged=False, fell_back=False,
                       norm_at_grok=rho * 20, t_mem=50))
  out = tmp_path / "f"
  (out / "figures").mkdir(parents=True)
  gio.write_csv(str(out / "runs.csv"), rows)
  cfg = registry.resolve("pinned_norm", "smoke", rhos=[0.9, 1.0, 1.1, 1.3], n_boot=50)
  gio.write_json(str(out / "config.json"), dict(config=cfg.to_json(), environment={}))
  res = pinned_norm.refit(str(out), [0.9, 1.1])
  d = res["per_modulus"][23]
  assert d["alpha"] == pytest.approx(8.0, abs=0.05) and d["n_cells"] == 3
  assert d["all_cells"]["n_cells"] == 4 and d["all_cells"]["alpha"] < 7.5
  assert json.load(open(out / "fit.json"))["per_modulus"]["23"]["alpha"] == pytest.approx(d["alpha"])
  assert os.path.getsize(out / "figures" / "delay_law.png") > 1000


def test_a_folder_grokjax_did_not_make_is_refused_and_left_alone(tmp_path):
  mine = tmp_path / "myproj"
  (mine / "figures").mkdir(parents=True)
  (mine / "figures" / "important_plot.png").write_text("x")
  (mine / "runs.csv").write_text("my own table")
  for extra in ([], ["--force-new"]):
    proc = _script("pinned_norm", "--preset", "smoke", "--out", str(mine), *extra, check=False)
    assert proc.returncode == 2 and "not a grokjax results folder" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
  assert sorted(os.listdir(mine)) == ["figures", "runs.csv"]
  assert (mine / "runs.csv").read_text() == "my own table"
  assert os.listdir(mine / "figures") == ["important_plot.png"]


@SHARES_SMOKE
def test_force_new_deletes_only_what_grokjax_wrote(tmp_path, pinned_smoke):
  out = tmp_path / "pn"
  shutil.copytree(pinned_smoke[0], out)
  (out / "figures" / "my_notes.png").write_text("keep")
  (out / "notes.txt").write_text("keep")
  Session(registry.resolve("pinned_norm", "smoke", rhos=[1.0, 1.2]), str(out),
                     force_new=True, progress=False)
  # the old results are gone before the new run writes any, the user's files stay (and
  # the lock of the folder, held by this process while it trains there)
  assert sorted(os.listdir(out)) == [".grokjax-lock", "config.json", "figures", "notes.txt"]
  assert os.listdir(out / "figures") == ["my_notes.png"]
  cfg = json.load(open(out / "config.json"))["config"]
  assert cfg["rhos"] == [1.0, 1.2]


def test_layernorm_ablation_smoke(tmp_path):
  out = str(tmp_path / "ab")
  proc = _script("layernorm_ablation", "--preset", "smoke", "--out", out, "--no-progress")
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert set(fit["variants"]) == {"no_layernorm", "layernorm"}
  for v in fit["variants"].values():
    assert _finite(v["shared"]["alpha"]) and _finite(v["per_modulus"]["23"]["wc"])
  rows = _rows(out)
  assert {r["layernorm"] for r in rows} == {"True", "False"}
  assert os.path.exists(os.path.join(out, "figures", "layernorm_ablation.png"))
  assert "--- layernorm" in proc.stdout


# in chunks of 20 steps: the program test_train's transformer tests compile
@pytest.mark.xdist_group("transformer")
def test_pinned_norm_runs_the_transformer(tmp_path):
  out = str(tmp_path / "tf")
  _script("pinned_norm", "--preset", "smoke", "--arch", "transformer", "--chunk-steps", "20",
          "--out", out, "--no-progress", "--no-figures")
  rows = _rows(out)
  assert {r["arch"] for r in rows} == {"transformer"}
  fit = json.load(open(os.path.join(out, "fit.json")))
  assert _finite(fit["per_modulus"]["23"]["wc"])


# Every flag that takes a value, with a valid one; "--flag value" and "--flag=value" must
# give the same configuration.
FLAG_VALUES = {"--norm-group": "output", "--seed-stream": "mine", "--fit-rhos": "0.9:1.2", "--kick-at": "500", "--overlap": "on", "--pad-moduli": "on", "--preset": "quick", "--moduli": "29", "--seeds": "3", "--lrs": "0.01",
               "--wd": "0.5", "--steps": "3000", "--frac": "0.5", "--d": "16", "--hidden": "32",
               "--eval-every": "5", "--chunk-steps": "100", "--retire-margin": "none",
               "--n-boot": "50", "--dtype": "float64", "--rhos": "0.9,1.1", "--t-int": "20",
               "--arch": "mlp", "--heads": "2", "--wc-min-grok-fraction": "0.5", "--out": "x",
               "--checkpoint-every": "5", "--grok-persist": "3",
               "--matmul-precision": "bfloat16", "--hold-rhos": "0.9,1.2", "--kick": "0.7",
               "--scales": "1,2", "--wds": "0.5,1", "--problem": "sparse_parity:k=2",
               "--train-size": "500", "--train-sizes": "300,600", "--save-params": "final",
               "--loss": "exact", "--noise": "10", "--arms": "float32,float64+noise10",
               "--temperature": "2", "--optimizer": "sgd:momentum=0.5", "--grad-transform": "grokfast",
               "--scan": "temperature=0.5,2"}
# Flags an experiment refuses with one line because it sets those values itself.
REFUSED = {"precision": {"--dtype", "--loss", "--noise", "--matmul-precision"}}


@pytest.mark.parametrize("name", registry.names())
def test_every_flag_parses_the_same_in_both_spellings(name, tmp_path):
  ap = cli.build_parser(name)
  flags = [a.option_strings[0] for a in ap._actions
           if a.option_strings and a.nargs != 0 and a.option_strings[0] not in ("-h", "--wc-from", "--clamp-from")]
  missing = [f for f in flags if f not in FLAG_VALUES]
  assert not missing, f"add a value for {missing} to FLAG_VALUES"
  for flag in flags:
    if flag in REFUSED.get(name, ()):
      with pytest.raises(cli.UsageError, match="per arm"):
        cli.parse(name, [flag, FLAG_VALUES[flag]])
      continue
    spaced = cli.parse(name, [flag, FLAG_VALUES[flag]])
    joined = cli.parse(name, [f"{flag}={FLAG_VALUES[flag]}"])
    assert spaced[0].to_json() == joined[0].to_json() and spaced[1] == joined[1], flag
  cfg, _, _ = cli.parse(name, ["--retire-margin=none"])
  assert cfg.retire_margin is None


def test_cell_summary_leaves_diverged_runs_out():
  rows = [dict(t_grok=100 * (i + 1), grokked=True, diverged=False, t_mem=50) for i in range(3)]
  rows.append(dict(t_grok=5000, grokked=False, diverged=True, t_mem=-1))
  s = cell_summary(rows)
  assert s["grok_fraction"] == 1.0 and s["n_censored"] == 0 and s["n_diverged"] == 1
  assert s["median_t_grok"] == 200.0 and s["n"] == 4


@SHARES_SMOKE
def test_free_control_that_mostly_fails_to_grok_stops_with_one_line(tmp_path, capsys):
  # 200 steps (one chunk: the smoke preset's compiled program) at a learning rate too small
  # to grok in them
  code = cli.main("pinned_norm", argv=["--preset", "smoke", "--steps", "200", "--lrs", "1e-4",
                                       "--out", str(tmp_path / "o"), "--no-progress"])
  err = capsys.readouterr().err.strip()
  assert code == 1 and len(err.splitlines()) == 1
  assert "p=23" in err and "0% of the free control grokked" in err and "--steps" in err


def test_wc_from_a_folder_with_another_model_is_refused(tmp_path, capsys):
  src = tmp_path / "src"
  cfg = registry.resolve("free_training", "smoke", d=32)
  src.mkdir()
  (src / "config.json").write_text(json.dumps(dict(config=cfg.to_json())))
  (src / "summary.json").write_text(json.dumps(dict(per_modulus={"23": dict(wc=20.0)})))
  out = tmp_path / "o"
  code = cli.main("pinned_norm",
                  argv=["--preset", "smoke", "--wc-from", str(src), "--out", str(out)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1 and "d 32 != 16" in err
  assert not out.exists()


def test_out_naming_a_file_is_refused(tmp_path, capsys):
  target = tmp_path / "a_file"
  target.write_text("keep me")
  code = cli.main("pinned_norm", argv=["--preset", "smoke", "--out", str(target)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and "is a file, not a folder" in err and len(err.splitlines()) == 1
  assert target.read_text() == "keep me"


def test_phase_files_from_before_new_run_fields_still_load(tmp_path):
  import numpy as np
  from grokjax.engine.spec import Runs, SweepResult, Task
  task = Task(p=7, d=4, hidden=8)
  runs = Runs([0, 1], 1e-2, 1.0, np.nan, NEVER, 20)
  res = SweepResult(task, runs, np.array([10, 20]), {k: np.zeros((2, 2)) for k in CURVES},
                    np.array([20, 20]), np.array([-1, -1]))
  path = str(tmp_path / "phase.npz")
  save_result(path, res)
  z = dict(np.load(path))
  for name in ("run_t_stop", "run_kick", "run_t_kick", "run_kick_group"):
    z.pop(name)
  z["task"] = np.array(repr(sorted(
      (k, v) for k, v in __import__("dataclasses").asdict(task).items() if k != "matmul_precision")))
  np.savez(path, **z)
  back = load_result(path)
  assert back.task == task and same_runs(back.runs, runs)


@SHARES_SMOKE
@pytest.mark.parametrize("scan", [[], ["--scan", "temperature=0.5,2"]], ids=["plain", "scan"])
def test_pinned_norm_padded_moduli_equal_one_by_one(tmp_path, scan):
  # Every modulus in one padded program (two compiled calls) against one program each;
  # with a --scan, every value in the same two calls.
  rows = {}
  for mode in ("on", "off"):
    out = str(tmp_path / mode)
    # One seed: a phase's runs (2 free, 4 clamped) then fill one batch of 4, so each mode
    # compiles one program a modulus (p = 23's is the smoke preset's); what is asserted is
    # the equality of the two modes
    argv = ["--preset", "smoke", "--moduli", "19,23", "--seeds", "1", "--pad-moduli", mode,
            "--out", out, "--no-progress",
            "--no-compile-cache",  # in-process: leave JAX's settings alone
            "--no-figures", *scan]  # what is compared is the tables: no figures drawn
    assert cli.main("pinned_norm", argv=argv) == 0
    rows[mode] = {(r["p"], r["arm"], r["seed"], r["rho"], r.get("temperature")): r
                  for r in _rows(out)}
  assert sorted(rows["on"]) == sorted(rows["off"]) and {k[0] for k in rows["on"]} == {"19", "23"}
  assert len(rows["on"]) == 6 * (2 if scan else 1)
  for key, off in rows["off"].items():
    on = rows["on"][key]
    for k in ("t_mem", "t_grok", "grokked", "steps_trained", "budget"):
      assert on[k] == off[k], (key, k)
    # Norms are float32 sums over differently shaped arrays: equal to rounding. A clamp
    # run's held norm is rho times its free control's W_c, a median of such norms.
    for k in ("norm_at_grok", "target_norm", "wc"):
      if on[k] or off[k]:
        assert math.isclose(float(on[k]), float(off[k]), rel_tol=1e-5), (key, k)
  phases = sorted(os.listdir(tmp_path / "on" / "phases"))
  assert phases == ["clamp_p19-23.npz", "free_p19-23.npz"]
  assert not (tmp_path / "on" / "figures").exists() and not (tmp_path / "off" / "figures").exists()


def test_dry_run_prints_the_config_and_the_plan_and_writes_nothing(tmp_path):
  """`--dry-run` (and `python -m grokjax EXPERIMENT`): the resolved configuration as JSON,
  then one line of runs, run-steps and the expected time here; no folder made."""
  from grokjax import __main__ as entry
  out = tmp_path / "never"
  buf, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
    code = entry.main(["pinned_norm", "--preset", "smoke", "--moduli", "23", "--out", str(out),
                       "--dry-run", "--no-compile-cache"])
  text = buf.getvalue() + err.getvalue()
  assert code == 0, text[-2000:]
  cfg = json.loads(text[text.index("{"):text.rindex("}") + 1])
  assert cfg["moduli"] == [23] and cfg["preset"] == "smoke" and "dry_run" not in cfg
  assert "6 runs, at most 3,600 run-steps; expected" in text and "nothing written" in text
  assert not out.exists()


def test_the_grokjax_command_lists_and_refuses(capsys):
  import tomllib
  from grokjax import __main__ as entry
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    script = tomllib.load(f)["project"]["scripts"]["grokjax"]
  assert script == "grokjax.__main__:main"  # the console script is this function
  assert entry.main(["--help"]) == 0
  listing = capsys.readouterr().out
  assert all(name in listing for name in registry.names() + ("reproduce",))
  assert entry.main(["pinned_nrom"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "unknown experiment 'pinned_nrom'" in err
  assert entry.main([]) == 2


@SHARES_SMOKE
def test_results_files_are_readable_as_the_umask_allows(pinned_smoke, tmp_path):
  """Collaborators can open the results: every file grokjax writes gets 0o666 less the
  umask, as a plain open() would (not the 0o600 of a temporary file)."""
  from grokjax.harness import io as gio
  out, _ = pinned_smoke
  umask = os.umask(0)
  os.umask(umask)
  written = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
  assert any(f.endswith("runs.csv") for f in written) and any(f.endswith(".png") for f in written)
  for path in written:
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask, path
  old = os.umask(0o027)
  try:
    gio.atomic_bytes(str(tmp_path / "x.json"), b"{}")
  finally:
    os.umask(old)
  assert os.stat(tmp_path / "x.json").st_mode & 0o777 == 0o640


@SHARES_SMOKE
def test_a_finished_folder_carries_the_manifest_of_its_runs_csv(pinned_smoke):
  from grokjax.harness import io as gio
  out, _ = pinned_smoke
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert manifest["runs"] == len(_rows(out)) > 0
  assert manifest["sha256"]["runs.csv"] == gio.sha256_file(os.path.join(out, "runs.csv"))
  assert gio.manifest_mismatch(out, len(_rows(out))) is None


@SHARES_SMOKE
def test_a_broken_folder_or_environment_is_one_line_and_nothing_changes(pinned_smoke, tmp_path,
                                                                         monkeypatch):
  """Corrupt config.json (bad JSON, no configuration), a damaged phase file, a --wc-from
  folder with nothing to read or an impossible W_c, a bad GROKJAX_CPU_DEVICES: each one
  line on stderr, no traceback, and the folder's files as they were."""
  base = ["--preset", "smoke", "--no-progress"]
  for text in ('{"config": {', "[]"):
    out = tmp_path / f"cfg{len(text)}"
    out.mkdir()
    (out / "config.json").write_text(text)
    proc = _script("pinned_norm", *base, "--out", str(out), check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "config.json" in proc.stderr and (out / "config.json").read_text() == text
  done = str(tmp_path / "done")
  shutil.copytree(pinned_smoke[0], done)
  phase = sorted(os.listdir(os.path.join(done, "phases")))[0]
  with open(os.path.join(done, "phases", phase), "r+b") as f:
    f.seek(40)
    f.write(b"\x00" * 64)
  before = open(os.path.join(done, "runs.csv")).read()
  proc = _script("pinned_norm", *base, "--out", done, check=False)
  assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
  assert phase in proc.stderr and "damaged" in proc.stderr
  assert open(os.path.join(done, "runs.csv")).read() == before
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text("{}")
  huge = str(tmp_path / "huge")
  shutil.copytree(pinned_smoke[0], huge)
  fit = json.load(open(os.path.join(huge, "fit.json")))
  fit["per_modulus"]["23"]["wc"] = 1e300
  json.dump(fit, open(os.path.join(huge, "fit.json"), "w"))
  for source, why in ((str(empty), "no summary.json or fit.json"), (huge, "is not a weight norm")):
    proc = _script("pinned_norm", *base, "--out", str(tmp_path / "x"), "--wc-from", source,
                   check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert why in proc.stderr and not (tmp_path / "x").exists()
  monkeypatch.setenv("GROKJAX_CPU_DEVICES", "abc")
  proc = _script("pinned_norm", *base, "--out", str(tmp_path / "y"), check=False)
  assert proc.returncode == 2 and "GROKJAX_CPU_DEVICES='abc'" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "y").exists()


def test_ctrl_c_is_one_line_and_says_how_to_resume(tmp_path, capsys):
  def interrupted(sess):
    raise KeyboardInterrupt
  code = cli.main("pinned_norm", interrupted, ["--preset", "smoke", "--out", str(tmp_path / "k"),
                                               "--no-progress", "--no-compile-cache"])
  err = capsys.readouterr().err.strip()
  assert code == 130 and len(err.splitlines()) == 1 and "resumes where it stopped" in err


def test_ctrl_c_while_jax_starts_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
  def importing(args):
    raise KeyboardInterrupt
  monkeypatch.setattr(cli, "start_jax", importing)
  out = tmp_path / "j"
  code = cli.main("pinned_norm", None, ["--preset", "smoke", "--out", str(out), "--no-progress"])
  err = capsys.readouterr().err.strip()
  assert code == 130 and len(err.splitlines()) == 1 and "nothing was written" in err
  assert not out.exists()


@SHARES_SMOKE
def test_load_joins_runs_and_curves_by_run_and_refuses_a_misaligned_folder(pinned_smoke, tmp_path):
  import grokjax
  out, _ = pinned_smoke
  res = grokjax.load(out)
  assert len(res.runs) == len(res.steps) == len(res.curves["test_acc"]) > 0
  assert res.config["experiment"] == "pinned_norm" and "per_modulus" in res.fit
  for i, r in enumerate(res.runs):  # each row's T_grok is read off its own curve
    if r["grokked"]:
      steps, acc = res.curve(i, "test_acc")
      assert acc[list(steps).index(r["t_grok"])] >= 0.9 and np.all(steps > 0)
  # curves.npz of another order than runs.csv: refused, never paired wrongly
  bad = str(tmp_path / "bad")
  shutil.copytree(out, bad)
  with np.load(os.path.join(bad, "curves.npz")) as z:
    arrays = {k: z[k][::-1] for k in z.files}
  np.savez(os.path.join(bad, "curves.npz"), **arrays)
  with pytest.raises(ValueError, match="run 0 has"):
    grokjax.load(bad)


@SHARES_SMOKE
def test_save_params_keeps_each_runs_weights_at_the_step_it_stopped(pinned_smoke, tmp_path):
  """--save-params final: the same runs (runs.csv unchanged), and each run's saved weights
  are those of its last evaluation: their norm is its norm curve's last value (a clamp
  run's held rho * W_c); the plan names the disk cost; a resume loads them again."""
  import grokjax
  import jax.numpy as jnp
  from grokjax.problems.models import weight_norm
  out = str(tmp_path / "sp")
  proc = _script("pinned_norm", "--preset", "smoke", "--out", out, "--no-progress",
                 "--no-figures", "--save-params", "final")
  assert "MiB of parameters in params/" in proc.stdout
  assert _rows(out) == _rows(pinned_smoke[0])
  res = grokjax.load(out)
  assert sorted(os.listdir(os.path.join(out, "params"))) == ["p23_clamp.npz", "p23_free.npz"]
  for i, row in enumerate(res.runs):
    params, step = res.params(i)
    assert step == row["steps_trained"]
    steps, norm = res.curve(i, "norm")  # to the step it stopped at
    assert steps[-1] == step and np.isfinite(norm).all()
    assert float(weight_norm({k: jnp.asarray(v) for k, v in params.items()})) == pytest.approx(
        norm[-1], rel=1e-5)
    if row["arm"] == "clamp":
      assert norm[-1] == pytest.approx(row["target_norm"], rel=1e-4)
  again = _script("pinned_norm", "--preset", "smoke", "--out", out, "--no-progress",
                  "--no-figures", "--save-params", "final")
  assert "loaded from" in again.stdout
  np.testing.assert_array_equal(res.params(3)[0]["w1"], grokjax.load(out).params(3)[0]["w1"])
  with pytest.raises(FileNotFoundError, match="--save-params final"):
    grokjax.load(pinned_smoke[0]).params(0)


@SHARES_SMOKE
def test_save_params_every_n_keeps_a_trajectory_that_loads_by_step(pinned_smoke, tmp_path):
  """--save-params every:N: runs.csv unchanged; grokjax.load(folder).params(run, step=)
  gives a run's weights at each multiple of N it trained to (a clamp run's at its held
  norm once clamped), trajectory(run) all of them, and a step not saved is one line."""
  import grokjax
  import jax.numpy as jnp
  from grokjax.problems.models import weight_norm
  out = str(tmp_path / "traj")
  proc = _script("pinned_norm", "--preset", "smoke", "--out", out, "--no-progress",
                 "--no-figures", "--save-params", "every:100")
  assert "MiB of trajectories (every 100 steps)" in proc.stdout
  assert _rows(out) == _rows(pinned_smoke[0])
  res = grokjax.load(out)
  for i, row in enumerate(res.runs):
    steps, traj = res.trajectory(i)
    assert list(steps) == list(range(100, row["steps_trained"] + 1, 100))
    for j, step in enumerate(steps):
      params, at = res.params(i, step=int(step))
      assert at == step and np.array_equal(params["w1"], traj["w1"][j])
      norm = float(weight_norm({k: jnp.asarray(v) for k, v in params.items()}))
      curve_steps, curve = res.curve(i, "norm")
      assert norm == pytest.approx(curve[curve_steps == step][0], rel=1e-5)
      if row["arm"] == "clamp" and step >= row["t_int"]:
        assert norm == pytest.approx(row["target_norm"], rel=1e-4)
  with pytest.raises(IndexError, match="no parameters saved at step 150"):
    res.params(0, step=150)
  grokked = next(i for i, r in enumerate(res.runs) if r["grokked"])
  assert res.params(grokked)[1] == res.runs[grokked]["t_grok"]  # and at T_grok, as grok keeps


@SHARES_SMOKE
def test_figures_redraws_a_finished_folder_from_its_files(pinned_smoke, tmp_path, capsys):
  """`grokjax figures FOLDER`: the experiment's figures from runs.csv and fit.json, PNG
  and vector PDF, also for a folder committed without curves.npz; a folder that is not a
  results folder is one line and exit 2."""
  from grokjax import __main__ as entry
  full, bare = str(tmp_path / "full"), str(tmp_path / "bare")
  for copy in (full, bare):
    shutil.copytree(pinned_smoke[0], copy)
    shutil.rmtree(os.path.join(copy, "figures"))
  os.remove(os.path.join(bare, "curves.npz"))
  assert entry.main(["figures", full, bare]) == 0
  out = capsys.readouterr().out.split()
  assert out == [os.path.join(full, "figures", "delay_law.png"),
                 os.path.join(full, "figures", "delay_law_clamp_clock.png"),
                 os.path.join(full, "figures", "curves.png"),
                 os.path.join(bare, "figures", "delay_law.png"),
                 os.path.join(bare, "figures", "delay_law_clamp_clock.png")]
  for name in ("delay_law.png", "delay_law.pdf", "curves.png", "curves.pdf"):
    assert os.path.getsize(os.path.join(full, "figures", name)) > 1000
  with open(os.path.join(full, "figures", "delay_law.pdf"), "rb") as f:
    assert f.read(5) == b"%PDF-"
  assert sorted(os.listdir(os.path.join(bare, "figures"))) == [
      ".grokjax-figures", "delay_law.pdf", "delay_law.png", "delay_law_clamp_clock.pdf",
      "delay_law_clamp_clock.png"]
  assert entry.main(["figures", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "config.json" in err


def test_a_full_disk_is_one_line_naming_the_file_and_the_rerun_finishes(tmp_path, monkeypatch,
                                                                          capsys):
  """ENOSPC while a phase file's bytes go to disk (its temporary file already made): exit 1
  and one line naming the error and the file, the half-written temporary removed; once
  there is room, the same command finishes the folder."""
  import errno
  from grokjax.harness import io as gio
  real_fsync = os.fsync

  def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".npz"):
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_fsync(fd)

  out = str(tmp_path / "full")
  argv = ["--preset", "smoke", "--out", out, "--no-progress", "--no-compile-cache", "--no-figures"]
  monkeypatch.setattr(gio.os, "fsync", fsync)
  assert cli.main("pinned_norm", argv=argv) == 1
  err = capsys.readouterr().err.strip()
  assert err == (f"pinned_norm: error: No space left on device: "
                 f"{os.path.join(out, 'phases', 'free_p23.npz')}")
  written = [n for _, _, names in os.walk(out) for n in names]
  assert not [n for n in written if n.startswith(gio.TEMP_PREFIX) or n.endswith(".npz")]
  monkeypatch.setattr(gio.os, "fsync", real_fsync)
  assert cli.main("pinned_norm", argv=argv) == 0
  assert len(_rows(out)) == 6


@SHARES_SMOKE
def test_a_folder_from_before_seed_streams_reads_as_the_shared_stream(pinned_smoke, tmp_path):
  """config.json without seed_stream (written before streams) reads, wherever a folder is
  compared with a configuration, as the stream all experiments then shared: "". A resume
  under today's default names both streams; the claim catalogue reads it alike."""
  from grokjax.harness.config import as_written
  from grokjax.paper import claims
  out = str(tmp_path / "old")
  shutil.copytree(pinned_smoke[0], out)
  path = os.path.join(out, "config.json")
  saved = json.load(open(path))
  del saved["config"]["seed_stream"]
  json.dump(saved, open(path, "w"))
  assert as_written(saved["config"])["seed_stream"] == ""
  assert as_written({})["save_params"] == "none"  # a later field: its default
  proc = _script("pinned_norm", "--preset", "smoke", "--out", out, "--no-progress", check=False)
  assert proc.returncode == 2 and 'seed_stream (was "", now "pinned_norm")' in proc.stderr, proc.stderr
  # the claim catalogue: a part on the shared stream is done by a folder without the field
  part = claims.Part("old", "pinned_norm", dict(moduli=[23], seed_stream=""))
  folder = tmp_path / "results" / "old"
  folder.mkdir(parents=True)
  (folder / "runs.csv").write_text("p\n")
  cfg = claims.part_config(part).to_json()
  for stream, done in ((None, True), ("", True), ("pinned_norm", False)):
    written = {k: v for k, v in cfg.items() if k != "seed_stream"}
    if stream is not None:
      written["seed_stream"] = stream
    (folder / "config.json").write_text(json.dumps(dict(config=written)))
    assert claims.is_done(part, str(tmp_path / "results"), None) is done, stream


@SHARES_SMOKE
def test_precision_arms_share_seeds_and_its_float32_arm_is_pinned_norms(pinned_smoke, tmp_path):
  """The precision experiment's float32 arm, in a process that also trains float64, gives
  pinned_norm's float32 runs bit for bit (same seed stream and held norms); its summary
  pairs every arm with it seed by seed."""
  import jax
  out = str(tmp_path / "prec")
  try:
    _script("precision", "--preset", "smoke", "--out", out, "--no-progress", "--no-figures",
            "--seed-stream", "pinned_norm", "--rhos", "0.95,1.10",
            "--arms", "float32,float64+float32_floor")
  finally:
    jax.config.update("jax_enable_x64", False)  # the command turned it on for this process
  ours = {(r["arm"], r["rho"], r["seed"]): r for r in _rows(pinned_smoke[0])}
  rows = _rows(out)
  assert {r["precision_arm"] for r in rows if r["arm"] == "clamp"} == {
      "float32", "float64+float32_floor"}
  assert {r["dtype"] for r in rows if r["precision_arm"] == "float64+float32_floor"} == {"float64"}
  for r in rows:
    if r["arm"] == "free" or r["precision_arm"] == "float32":
      mine = ours[(r["arm"], r["rho"], r["seed"])]
      for k in ("t_grok", "norm_at_grok", "gini_final", "final_test_acc", "train_loss_at_grok"):
        assert r[k] == mine[k], (k, r, mine)
  summary = json.load(open(os.path.join(out, "summary.json")))
  assert summary["reference_arm"] == "float32" and len(summary["cells"]) == 4
  other = [c for c in summary["cells"] if c["arm"] != "float32"]
  assert all(c["vs_reference"]["n_pairs"] == 2 for c in other)
  from grokjax.paper import floor  # the report's table of the folder: a row per cell and arm
  table = [line for line in floor.folder_lines(out) if line.startswith("| 23 |")]
  assert len(table) == 4 and sum("float64+float32_floor" in line for line in table) == 2


@SHARES_SMOKE
def test_a_free_scan_where_nothing_groks_finishes_and_draws_what_it_can(tmp_path):
  out = str(tmp_path / "none")
  proc = _script("free_training", "--preset", "smoke", "--lrs", "1e-9", "--out", out,
                 "--no-progress")
  assert "no power-law fit" in proc.stdout
  figures = os.listdir(os.path.join(out, "figures"))
  assert "wc_vs_p.png" not in figures and "curves.png" in figures
