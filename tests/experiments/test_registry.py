"""The experiment registry: one record per experiment, one rule for its runs."""

import contextlib
import glob
import io as stdio
import os

import numpy as np
import pytest

from grokjax import cli
from grokjax.harness import config, grids, io
from grokjax.experiments import registry
from grokjax.harness.config import Config
from grokjax.harness.estimate import Cell, plan
from grokjax.analysis.stats import cell_summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_committed_folder_trained_the_runs_its_experiment_plans():
  """`cells(cfg)` is the one rule for how many runs an experiment trains (the plan line,
  the memory check and the reproduction's plan read it): for every results folder in
  docs/results it counts exactly the rows of the folder's runs.csv."""
  folders = sorted(glob.glob(os.path.join(ROOT, "docs", "results", "**", "config.json"),
                             recursive=True))
  assert len(folders) >= 10
  cwd = os.getcwd()
  os.chdir(ROOT)  # --wc-from paths in config.json are relative to the repository
  try:
    for path in folders:
      if not os.path.exists(os.path.join(os.path.dirname(path), "runs.csv")):
        continue  # a check stopped by hand keeps its summary only (checks/p59_rho1.25_float64)
      cfg = Config(**io.read_json(path)["config"])
      planned = sum(c.runs for c in registry.get(cfg.experiment).cells(cfg))
      rows = io.read_runs(os.path.join(os.path.dirname(path), "runs.csv"))
      assert planned == len(rows), os.path.relpath(path, ROOT)
  finally:
    os.chdir(cwd)


def test_names_and_lookups_are_one_list():
  assert registry.names()[:len(registry.BUILTIN)] == registry.BUILTIN
  for name in registry.BUILTIN:
    exp = registry.get(name)
    assert exp.name == name and set(exp.presets) == set(config.PRESET_NAMES)
    assert exp.doc and exp.output in ("fit.json", "summary.json")
  with pytest.raises(ValueError, match="unknown experiment 'nope'; choose from free_training"):
    registry.get("nope")
  with pytest.raises(ValueError, match="unknown preset 'big'"):
    registry.resolve("pinned_norm", "big")
  with pytest.raises(ValueError, match="exists already"):
    registry.register(registry.get("pinned_norm"))


def _tiny_cells(cfg):
  return [Cell(p, cfg.seeds * len(cfg.lrs), cfg.budget(None, p), f"free_p{p}")
          for p in cfg.moduli]


def _tiny(sess):
  """Free training per modulus; the median grok time per modulus in summary.json."""
  cfg = sess.cfg
  sess.estimate = plan(cfg, _tiny_cells(cfg))
  phases, result = [], {}
  for p in cfg.moduli:
    rows = grids.free_phase(sess, p, cfg.lrs, phases)
    result[str(p)] = cell_summary(rows)["median_t_grok"]
  grids.write_tables(sess, phases)
  io.write_json(sess.path("summary.json"), result)
  return result


@pytest.fixture
def tiny():
  exp = registry.register(registry.Experiment(
      name="tiny_free", run=_tiny, cells=_tiny_cells, output="summary.json",
      doc="Free training, the median grok time per modulus.",
      presets={"smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[])}))
  yield exp
  registry.unregister(exp.name)


# trains the smoke preset's p = 23 model: its program is the xdist group's
# (tests/experiments/test_experiments.py)
@pytest.mark.xdist_group("smoke")
def test_a_new_experiment_is_one_record(tiny, tmp_path):
  """An experiment of the user's own: one `Experiment` record registered, then the
  command line, its checks, --dry-run, the plan, runs.csv and resume are the harness's."""
  from grokjax import __main__ as entry
  out = str(tmp_path / "tiny")
  argv = ["--preset", "smoke", "--out", out, "--no-progress", "--no-compile-cache"]
  buf = stdio.StringIO()
  with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
    assert entry.main(["--help"]) == 0
    assert cli.main("tiny_free", argv=argv + ["--dry-run"]) == 0
    assert not os.path.exists(out)
    assert cli.main("tiny_free", argv=argv) == 0
    again = stdio.StringIO()
    with contextlib.redirect_stdout(again), contextlib.redirect_stderr(again):
      assert cli.main("tiny_free", argv=argv) == 0  # resumes: nothing trained again
  text = buf.getvalue()
  assert "tiny_free" in text and "Free training, the median grok time per modulus" in text
  assert "2 runs, at most 1,200 run-steps" in text
  rows = io.read_finished_runs(out)
  assert len(rows) == 2 and {r["seed"] for r in rows} == {0, 1}
  assert set(io.read_json(os.path.join(out, "summary.json"))) == {"23"}
  assert "loaded from" in again.getvalue()
  assert registry.resolve("tiny_free", "smoke").seed_stream == "tiny_free"
  with contextlib.redirect_stderr(stdio.StringIO()) as err:
    assert cli.main("tiny_free", argv=["--preset", "quick", "--out", out]) == 2
  assert "unknown preset 'quick'; choose from smoke" in err.getvalue()


def _fit_tool():
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "fit_grok_prior", os.path.join(ROOT, "tools", "fit_grok_prior.py"))
  tool = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tool)
  return tool


def test_the_grok_time_prior_is_refitted_from_the_committed_results():
  """grokjax/harness/grok_prior.json is what tools/fit_grok_prior.py fits to docs/results today
  (refit it after committing new paper-preset MLP results)."""
  from grokjax.harness import estimate
  fresh = _fit_tool().fit()
  law = estimate.grok_prior()
  assert law["sources"] == fresh["sources"] and law["n_runs"] == fresh["n_runs"]
  np.testing.assert_allclose(law["coef"], fresh["coef"], rtol=1e-9)
  assert law["r2"] > 0.9


def test_the_plan_expects_each_paper_claims_run_steps_within_1_5x():
  """The expected run-steps (the plan line's first estimate, before any control has run)
  of every committed paper-preset MLP folder, against what it trained (timing.json).
  In-sample: the prior was fitted to these runs. Outside its model (the attention model
  here) the plan keeps the budget rule."""
  from grokjax.harness import estimate
  tool = _fit_tool()
  cwd = os.getcwd()
  os.chdir(ROOT)
  try:
    checked = 0
    for path in sorted(glob.glob(os.path.join("docs", "results", "**", "config.json"),
                                 recursive=True)):
      saved = io.read_json(path)["config"]
      if path.startswith((os.path.join("docs", "results", "checks"),
                          os.path.join("docs", "results", "precision"))):
        continue  # cells of a claim repeated as a check or under other arithmetic
      cfg = Config(**saved)
      cells = registry.get(cfg.experiment).cells(cfg)
      if not tool.paper_mlp(saved):
        assert estimate.prior_t_grok(cfg, cells[0].p, None, cfg.lrs[0], cfg.wd) is None
        continue
      trained = sum(io.read_json(os.path.join(os.path.dirname(path), "timing.json"))
                    ["run_steps"].values())
      ratio = estimate.expected_run_steps(cfg, cells) / trained
      assert 1 / 1.5 <= ratio <= 1.5, (path, ratio)
      checked += 1
    assert checked >= 10
  finally:
    os.chdir(cwd)
