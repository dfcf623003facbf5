"""Problems behind the engine: modular operations, sparse parity, the spec strings, and the
matched counterfactual (a seed's data and initial weights never depend on rho, lr or arm)."""

import csv
import os

import jax
import numpy as np
import pytest

from grokjax import cli, problems
from grokjax.experiments.sparse_parity import sparse_parity as run_sparse_parity
from grokjax.engine.spec import Runs, Task
from grokjax.engine.program import program
from grokjax.engine.train import train

NEVER = np.iinfo(np.int32).max


@pytest.mark.parametrize("op,label", [
    ("add", lambda a, b, p: (a + b) % p),
    ("sub", lambda a, b, p: (a - b) % p),
    ("mul", lambda a, b, p: (a * b) % p),
    ("x2_xy_y2", lambda a, b, p: (a * a + a * b + b * b) % p),
])
def test_modular_labels(op, label):
  a, b, y = problems.build(op, 7, 0.5).full_set()
  assert len(y) == 49
  for i in range(49):
    assert y[i] == label(int(a[i]), int(b[i]), 7)


def test_division_leaves_out_zero_and_inverts():
  prob = problems.build("div", 11, 0.5)
  a, b, y = prob.full_set()
  assert prob.n_total == len(y) == 110 and (b != 0).all()
  assert ((y * b) % 11 == a).all()  # y = a / b means y * b = a
  with pytest.raises(ValueError, match="prime"):
    problems.build("div", 9, 0.5)


def test_spec_errors_name_the_problem():
  with pytest.raises(ValueError, match="unknown problem 'addd'"):
    problems.build("addd", 7, 0.5)
  with pytest.raises(ValueError, match="q=3"):
    problems.build("sparse_parity:q=3", 20, 0.5)
  with pytest.raises(ValueError, match="k <= n"):
    problems.build("sparse_parity:k=9", 5, 0.5)
  with pytest.raises(ValueError, match="train fraction"):
    Task(p=7, frac=1.5, problem="mul")
  with pytest.raises(ValueError, match="MLP only"):
    Task(p=30, problem="sparse_parity", arch="transformer", train_size=100)


def test_sparse_parity_data():
  prob = problems.build("sparse_parity:k=3", 20, 0.4, 500)
  data = jax.jit(prob.split)(jax.random.key(0))
  assert data.x_train.shape == (500, 20) and data.x_test.shape == (2000, 20)
  x = np.asarray(data.x_train).astype(int)
  assert set(np.unique(x)) == {-1, 1}
  (_,), y = prob.train_set(data)
  np.testing.assert_array_equal(np.asarray(y), (x[:, :3].prod(1) > 0).astype(int))
  assert 0.4 < np.mean(np.asarray(y)) < 0.6
  (x_all,), _, is_train = prob.eval_set(data)
  assert x_all.shape == (2500, 20) and int(is_train.sum()) == 500
  other = prob.split(jax.random.key(1))
  assert not np.array_equal(np.asarray(other.x_test), np.asarray(data.x_test))


@pytest.mark.parametrize("spec,p", [("mul", 13), ("sparse_parity", 12)])
def test_matched_counterfactual(spec, p):
  """Initial weights and data of a seed are the same in every cell (rho, lr, arm)."""
  task = Task(p=p, d=8, hidden=16, problem=spec, train_size=None if spec == "mul" else 100)
  runs = Runs(np.array([0, 0, 1]), np.array([1e-3, 4e-3, 1e-3]), 1.0,
              np.array([np.nan, 5.0, 7.0]), np.array([NEVER, 10, 10]), 100)
  seeds = np.array([task.init_seed(w, s) for w, s in zip(runs.wd, runs.seed)], np.uint32)
  state = program(task).init(seeds)
  for leaf in jax.tree.leaves(state):
    np.testing.assert_array_equal(np.asarray(leaf[0]), np.asarray(leaf[1]))
  matrices = [x for x in jax.tree.leaves(state.params) if x.ndim >= 3]
  assert all(not np.array_equal(np.asarray(x[0]), np.asarray(x[2])) for x in matrices)


def test_curves_are_what_evaluate_returns():
  """A modular problem records its Fourier Gini, sparse parity does not (no embedding)."""
  parity = Task(p=12, d=8, hidden=16, problem="sparse_parity:k=2", train_size=50)
  mul = Task(p=11, d=8, hidden=16, problem="mul")
  assert "gini" not in program(parity).curve_names and "gini" in program(mul).curve_names
  res = train(parity, Runs.free(np.arange(2), 1e-2, 1.0, 20), chunk_steps=10, progress=False)
  assert set(res.curves) == set(program(parity).curve_names)
  assert np.isfinite(res.curves["test_acc"]).all()


def test_modular_multiplication_groks():
  """a * b mod 23 through the same engine and model as addition: memorised and grokked."""
  task = Task(p=23, frac=0.8, d=32, hidden=64, problem="mul")
  res = train(task, Runs.free(np.arange(2), 1e-2, 1.0, 1500), chunk_steps=500, progress=False)
  out = res.reduce()
  assert out.grokked.all(), res.curves["test_acc"][:, -1]


def test_sparse_parity_experiment_smoke(tmp_path):
  """The experiment end to end: its rows, each cell's summary, the figure; the table has
  the problem column and one m per phase."""
  cfg, out, args = cli.parse("sparse_parity", ["--preset", "smoke", "--out", str(tmp_path / "sp")])
  from grokjax.harness.session import Session
  result = run_sparse_parity(Session(cfg, out, progress=False))
  assert set(result["by_m"]) == {"200", "300"} and set(result["by_wd"]) == {"1", "3"}
  assert set(result["by_lr"]) == {"0.01", "0.02"} and set(result["by_rho"]) == {"1.3"}
  assert result["free"]["grok_fraction"] == 1.0 and 0 < result["wc"] < 50
  with open(os.path.join(out, "runs.csv")) as f:
    rows = list(csv.DictReader(f))
  assert {r["problem"] for r in rows} == {"sparse_parity:k=2"}
  assert sorted({r["m"] for r in rows}) == ["200", "300"]
  assert len(rows) == 2 * (3 + 1 + 1)  # seeds x (free variants + other m + one rho)
  assert os.path.exists(os.path.join(out, "figures", "sparse_parity.png"))


def test_problem_flag_is_checked_before_work(tmp_path, capsys):
  for argv, msg in ((["--problem", "addd"], "unknown problem"),
                    (["--problem", "div", "--moduli", "9"], "prime")):
    code = cli.main("free_training", lambda s: {}, argv + ["--preset", "smoke",
                                                         "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and msg in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "x")


def test_register_a_new_operation_as_the_readme_shows():
  problems.OPS["a2_b"] = (lambda a, b, p: (a * a + b) % p, False)
  problems.register("a2_b")(lambda size, frac, train_size:
                            problems.Modular(size, frac, train_size, "a2_b"))
  try:
    task = Task(p=7, d=8, hidden=16, problem="a2_b")
    a, b, y = task.problem_def.full_set()
    assert (y == (a * a + b) % 7).all() and task.n_train == round(0.4 * 49)
    res = train(task, Runs.free(np.arange(1), 1e-2, 1.0, 20), chunk_steps=10, progress=False)
    assert np.isfinite(res.curves["norm"]).all()
  finally:
    problems.OPS.pop("a2_b")
    problems._REGISTRY.pop("a2_b")


def test_package_exports_keep_the_engine_module():
  import inspect

  import grokjax
  assert inspect.ismodule(grokjax.engine.train) and grokjax.train_grid is grokjax.engine.train.train
  assert grokjax.Task is grokjax.engine.train.Task


def test_softmax_collapse_reads_the_logit_margin():
  """Collapse is a margin beyond float32's normal range, not a probability that happens
  to underflow (whether margin 95 leaves a denormal probability or 0.0 depends on the
  backend's denormal handling): margin 95 counts as collapsed, 80 does not, ties never."""
  import jax.numpy as jnp

  from grokjax.engine.program import COLLAPSE_MARGIN, softmax_collapsed
  logits = jnp.array([[95.0, 0.0, -3.0], [80.0, 0.0, 1.0], [5.0, 5.0, -200.0],
                      [0.0, COLLAPSE_MARGIN + 0.5, 0.0]], jnp.float32)
  np.testing.assert_array_equal(np.asarray(softmax_collapsed(logits)), [True, False, False, True])


@pytest.mark.parametrize("spec,p,m", [("add", 13, None), ("div", 13, None),
                                      ("sparse_parity", 12, 100)])
def test_data_bytes_match_the_split(spec, p, m):
  """The memory check's per-seed data size (read without tracing) is the split's."""
  prob = problems.build(spec, p, 0.4, m)
  data = jax.eval_shape(prob.split, jax.random.key(0))
  assert prob.data_bytes() == sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(data))


def test_wc_from_another_problem_is_refused(tmp_path):
  """W_c belongs to one problem: --wc-from a folder of a + b is refused for a * b."""
  import json

  from grokjax.harness import grids
  from grokjax.experiments import registry
  add = registry.resolve("pinned_norm", "smoke")
  (tmp_path / "config.json").write_text(json.dumps({"config": add.to_json()}))
  mul = registry.resolve("pinned_norm", "smoke", problem="mul")
  assert grids.wc_source_mismatch(add, str(tmp_path)) is None
  assert "problem" in grids.wc_source_mismatch(mul, str(tmp_path))


def test_wc_from_another_precision_is_reused(tmp_path):
  """A float32 control's W_c may be held in float64 (the precision check), but not by a
  wider model: precision is arithmetic, the hidden width is the model."""
  import json

  from grokjax.harness import grids
  from grokjax.experiments import registry
  f32 = registry.resolve("pinned_norm", "smoke")
  (tmp_path / "config.json").write_text(json.dumps({"config": f32.to_json()}))
  assert grids.wc_source_mismatch(registry.resolve("pinned_norm", "smoke", dtype="float64"),
                                  str(tmp_path)) is None
  wide = registry.resolve("pinned_norm", "smoke", hidden=2 * f32.hidden)
  assert "hidden" in grids.wc_source_mismatch(wide, str(tmp_path))
