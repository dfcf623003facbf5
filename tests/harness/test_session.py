"""What a results folder's `Session` applies to every phase of every experiment."""

import numpy as np
import pytest

from grokjax.engine.optim import NEVER
from grokjax.engine.spec import Runs, Task
from grokjax.experiments import registry
from grokjax.harness.session import Session


def test_noise_and_temperature_reach_every_phase_whatever_built_its_runs(tmp_path):
  """--noise and --temperature are the session's, not a grid builder's: a phase whose runs
  an experiment made by hand (as free_norm_delay and norm_interventions do) trains with
  them, and without them a phase is left as it was built."""
  runs = Runs(np.array([0, 1]), 1e-2, 1.0, np.nan, NEVER, 10)
  task = Task(p=13, d=8, hidden=16, eval_every=5, noise=True, temperature=True)
  cfg = registry.resolve("free_norm_delay", "smoke", noise=10.0, temperature=2.0)
  res = Session(cfg, str(tmp_path / "on"), progress=False).phase("hand_made", task, runs)
  assert res.runs.noise.tolist() == [10.0, 10.0]
  assert res.runs.temperature.tolist() == [2.0, 2.0]
  plain = registry.resolve("free_norm_delay", "smoke")
  res = Session(plain, str(tmp_path / "off"), progress=False).phase(
      "hand_made", Task(p=13, d=8, hidden=16, eval_every=5), runs)
  assert res.runs.noise.tolist() == [0.0, 0.0] and res.runs.temperature.tolist() == [1.0, 1.0]


def test_the_plan_prices_a_float64_arm_above_a_float32_one():
  """precision's float64 arms cost DTYPE_COST x a float32 run-step in the plan (the
  plan line of a float64 arm was priced at the float32 rate, 5x short on this CPU)."""
  from grokjax.experiments import precision
  from grokjax.harness import estimate
  cfg = registry.resolve("precision", "smoke", arms=["float32", "float64"], retire_margin=None)
  cells = [c for c in precision.cells(cfg) if c.rho is not None]
  f32 = [c for c in cells if c.dtype == "float32"]
  f64 = [c for c in cells if c.dtype == "float64"]
  assert f32 and f64 and sum(c.runs * c.budget for c in f32) == sum(c.runs * c.budget for c in f64)
  one = lambda cs, ref: estimate.training_seconds(cfg, cs, 1000.0, 23, dtype_ref=ref)[1]
  assert one(f64, "float32") == pytest.approx(estimate.DTYPE_COST["float64"] * one(f32, "float32"))
  assert one(f64, "float64") == pytest.approx(one(f32, "float32"))  # a rate timed in float64 prices float64
  assert f64[0].task(cfg).dtype == "float64" and f32[0].task(cfg).dtype == "float32"


def test_the_plan_line_names_the_training_choices_that_are_not_the_papers(capsys):
  from grokjax.experiments import pinned_norm
  from grokjax.harness import estimate
  cfg = registry.resolve("pinned_norm", "smoke", temperature=2.0, optimizer="sgd:momentum=0.5",
                         loss="stablemax")
  estimate.plan(cfg, pinned_norm.cells(cfg))
  line = capsys.readouterr().out
  assert "optimizer sgd:momentum=0.5, loss stablemax, temperature 2" in line, line
  paper = registry.resolve("pinned_norm", "smoke")
  assert paper.choices() == {}
  estimate.plan(paper, pinned_norm.cells(paper))
  assert "optimizer" not in capsys.readouterr().out


def test_runs_csv_names_a_runs_own_grokfast_values_only_where_a_grid_sets_them():
  from grokjax.engine.train import train
  from grokjax.harness.grids import run_table
  cfg = registry.resolve("free_training", "smoke")
  task = Task(p=13, d=8, hidden=16, eval_every=5, grad_transform="grokfast")
  runs = Runs([0, 1], 2e-2, 1.0, np.nan, NEVER, 10, grokfast_lamb=[0.0, np.nan])
  rows = run_table(train(task, runs, progress=False), cfg, ["free"] * 2, [None] * 2)
  assert [(r["grokfast_alpha"], r["grokfast_lamb"]) for r in rows] == [(None, 0.0), (None, None)]
  plain = run_table(train(task, Runs([0], 2e-2, 1.0, np.nan, NEVER, 10), progress=False), cfg,
                    ["free"], [None])
  assert "grokfast_lamb" not in plain[0] and plain[0]["grad_transform"] == "grokfast"
