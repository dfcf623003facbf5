"""The documentation's generated pages hold every experiment, every flag and every runs.csv
column, from the code that owns them (docs/_ext/grokjax_pages.py; no Sphinx needed)."""

import glob
import importlib.util
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pages():
  spec = importlib.util.spec_from_file_location(
      "grokjax_pages", os.path.join(ROOT, "docs", "_ext", "grokjax_pages.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_the_experiments_page_holds_every_experiment_and_its_flags():
  from grokjax import cli
  from grokjax.experiments import registry
  page = _pages().experiments_page()
  for name in registry.names():
    assert f"## {name}\n" in page and f"python experiments/{name}.py" in page
    for action in cli.build_parser(name)._actions:
      if action.help is not None:
        for flag in action.option_strings:
          assert f"`{flag}`" in page, (name, flag)


def test_every_runs_csv_column_is_in_the_schema_and_on_its_page():
  from grokjax.engine.optim import NEVER
  from grokjax.engine.spec import Runs, SweepResult, Task
  from grokjax.harness.grids import run_table
  from grokjax.harness.io import RUNS_COLUMNS
  from grokjax.experiments.registry import resolve
  page = _pages().runs_columns_page()
  assert all(f"| `{c}` |" in page for c in RUNS_COLUMNS)
  # the columns the engine writes for every run, and those of every committed folder
  task = Task(p=5, d=4, hidden=4)
  runs = Runs(seed=[0, 1], lr=1e-2, wd=1.0, target_norm=[np.nan, 3.0], t_int=[NEVER, 10],
              budget=20)
  steps = np.array([10, 20])
  curves = {k: np.zeros((2, 2)) for k in ("train_acc", "test_acc", "norm", "collapse", "floor",
                                         "floor_f32", "train_loss", "gini")}
  res = SweepResult(task, runs, steps, curves, np.array([20, 20]), np.array([-1, -1]))
  written = set(run_table(res, resolve("pinned_norm", "smoke"), ["free", "clamp"], [None, 1.0])[0])
  for path in glob.glob(os.path.join(ROOT, "docs", "results", "**", "runs.csv"), recursive=True):
    with open(path) as f:
      written |= set(f.readline().strip().split(","))
  assert written <= set(RUNS_COLUMNS), sorted(written - set(RUNS_COLUMNS))


def test_every_code_fence_in_the_pages_closes_on_a_line_of_its_own():
  """A fence with text after it does not close (CommonMark), and the rest of the page
  would render as code."""
  import re
  pages = [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md")),
           *glob.glob(os.path.join(ROOT, "docs", "results", "**", "*.md"), recursive=True)]
  for path in pages:
    open_fence = None
    for n, line in enumerate(open(path, encoding="utf-8").read().splitlines(), 1):
      m = re.match(r"^\s{0,3}(`{3,}|~{3,})(.*)$", line)
      if not m:
        continue
      if open_fence is None:
        open_fence = (m.group(1), n)
      elif m.group(1).startswith(open_fence[0][0] * len(open_fence[0])):
        assert not m.group(2).strip(), f"{path}:{n}: text after a closing fence"
        open_fence = None
    assert open_fence is None, f"{path}:{open_fence[1]}: a fence that never closes"
