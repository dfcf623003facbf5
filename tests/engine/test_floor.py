"""The float32 floor as a run records it (the floor curves, t_floor in runs.csv) and the
parameter noise that stands in for rounding."""

import dataclasses

import jax
import numpy as np
import pytest

from grokjax.engine import losses
from grokjax.engine.optim import NEVER
from grokjax.engine.program import program
from grokjax.engine.spec import CURVES, Runs, SweepResult, Task, hparams
from grokjax.engine.train import train
from grokjax.experiments import registry
from grokjax.harness.grids import run_table

TINY = Task(p=13, d=8, hidden=16, eval_every=5)  # tests/engine/test_train.py's
SHARES_TINY = pytest.mark.xdist_group("tiny")


def _scaled_state(task, factor):
  """Seed 7's initial state with every weight scaled by `factor`: large margins, so some
  train examples sit at the floor and others not."""
  prog = program(task)
  state = jax.tree.map(lambda x: x[0], prog.init(np.array([7], np.uint32)))
  return prog, state._replace(params={k: v * factor for k, v in state.params.items()})


@SHARES_TINY
@pytest.mark.parametrize("loss", ["cross_entropy", "exact"])
def test_the_floor_curves_count_the_train_examples_the_losses_call_floored(loss):
  task = dataclasses.replace(TINY, loss=loss)
  prog, state = _scaled_state(task, 6.0)
  record = jax.jit(prog.evaluate)(state)
  inputs, y, is_train = task.problem_def.eval_set(state.data)
  logits = jax.jit(lambda p: prog.model(p)(*inputs))(state.params)
  train = np.asarray(is_train)
  floored = np.asarray(losses.at_floor(loss, logits, y))[train]
  under = np.asarray(losses.below_float32_floor(logits, y))[train]
  assert float(record["floor"]) == pytest.approx(floored.mean(), abs=1e-6)
  assert float(record["floor_f32"]) == pytest.approx(under.mean(), abs=1e-6)
  assert 0 < under.mean() < 1  # the constructed state straddles the threshold
  if loss == "cross_entropy":
    assert floored.mean() > 0
  else:
    assert floored.mean() == 0  # the exact loss keeps every correct-class gradient


def test_t_floor_and_the_values_at_t_grok_reach_runs_csv():
  steps = np.array([10, 20, 30, 40])
  runs = Runs.free(np.arange(2), 1e-2, 1.0, 40)
  curves = {k: np.zeros((2, 4)) for k in CURVES}
  curves["train_acc"][:] = 1.0
  curves["test_acc"][:] = [[0.1, 0.5, 0.95, 0.97], [0.1, 0.1, 0.2, 0.3]]
  curves["floor"][:] = [[0.0, 0.2, 0.6, 0.9], [0.0, 0.0, 0.1, 0.4]]
  curves["floor_f32"][:] = [[0.0, 0.6, 0.8, 0.9], [0.0, 0.0, 0.0, 0.0]]
  curves["train_loss"][:] = [[1.0, 1e-3, 2e-7, 1e-7], [1.0, 1.0, 1.0, 1.0]]
  res = SweepResult(TINY, runs, steps, curves, np.array([40, 40]), np.array([-1, -1]))
  cfg = registry.resolve("pinned_norm", "smoke")
  a, b = run_table(res, cfg, ["free", "free"], [None, None])
  assert (a["t_grok"], a["t_floor"], a["t_floor_f32"]) == (30, 30, 20)
  assert a["floor_at_grok"] == pytest.approx(0.6) and a["train_loss_at_grok"] == pytest.approx(2e-7)
  assert b["t_floor"] is None and b["t_floor_f32"] is None  # never half the train set
  assert b["floor_at_grok"] is None and b["train_loss_at_grok"] is None  # never grokked


def test_a_phase_from_before_the_floor_curves_still_tabulates():
  steps = np.array([10, 20])
  runs = Runs.free(np.arange(1), 1e-2, 1.0, 20)
  curves = {k: np.ones((1, 2)) for k in CURVES if k not in ("floor", "floor_f32")}
  res = SweepResult(TINY, runs, steps, curves, np.array([20]), np.array([-1]))
  (row,) = run_table(res, registry.resolve("pinned_norm", "smoke"), ["free"], [None])
  assert row["t_floor"] is None and row["floor_at_grok"] is None and row["grokked"]


def _one_step(task, k):
  """Seed 7's state after one step of a clamp run with noise amplitude k."""
  prog = program(task)
  state = jax.tree.map(lambda x: x[0], prog.init(np.array([7], np.uint32)))
  runs = Runs(np.array([0]), 1e-2, 1.0, 3.0, 0, 100, noise=k)
  hp = jax.tree.map(lambda x: x[0], hparams(runs, np.float32))
  return state, jax.jit(prog.step)(state, hp)


@SHARES_TINY
def test_noise_is_k_ulps_of_each_parameter_and_leaves_the_init_alone():
  noisy = dataclasses.replace(TINY, noise=True)
  start0, plain = _one_step(TINY, 0.0)
  start1, quiet = _one_step(noisy, 0.0)
  for name in plain.params:  # the noise key is a stream apart: same init, same split
    np.testing.assert_array_equal(start0.params[name], start1.params[name])
    np.testing.assert_array_equal(plain.params[name], quiet.params[name])  # k = 0
  np.testing.assert_array_equal(start0.data.train_idx, start1.data.train_idx)
  k = 1000.0
  _, loud = _one_step(noisy, k)
  z = np.concatenate([
      ((np.asarray(loud.params[n], np.float64) - np.asarray(plain.params[n], np.float64))
       / (k * 2.0 ** -24 * np.abs(np.asarray(plain.params[n], np.float64)))).ravel()
      for n in plain.params if np.all(np.abs(plain.params[n]) > 0)])
  assert len(z) > 500
  assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1  # N(0, 1) per parameter


def test_noisy_runs_need_a_task_that_compiles_the_noise():
  runs = Runs(np.array([0]), 1e-2, 1.0, np.nan, NEVER, 10, noise=1.0)
  with pytest.raises(ValueError, match="Task\\(noise=True\\)"):
    train(TINY, runs, progress=False)
  with pytest.raises(ValueError, match="noise"):
    Runs(np.array([0]), 1e-2, 1.0, np.nan, NEVER, 10, noise=-1.0)
  with pytest.raises(ValueError, match="loss must be one of"):
    Task(p=13, loss="hinge")
