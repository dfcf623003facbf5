"""The sweep axes' pieces against their definitions: Grokfast's EMA filter, ⊥Grad, the
StableMax and MSE losses, and the output temperature."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.engine import losses
from grokjax.engine.optim import NEVER, base_update
from grokjax.engine.spec import Runs, Task
from grokjax.engine.transforms import grokfast_ema, orthogonal_grad


def test_grokfast_is_the_hand_computed_ema_and_vmaps_over_its_hyperparameters():
  grads = [np.array([1.0, -2.0]), np.array([0.5, 0.0]), np.array([-1.0, 3.0])]

  def by_hand(alpha, lamb):
    h, out = np.zeros(2), []
    for g in grads:
      h = alpha * h + (1 - alpha) * g
      out.append(g + lamb * h)
    return np.array(out)

  def run(alpha, lamb):
    tx = grokfast_ema(alpha, lamb)
    state = tx.init({"w": jnp.zeros(2)})
    out = []
    for g in grads:
      u, state = tx.update({"w": jnp.asarray(g)}, state)
      out.append(u["w"])
    return jnp.stack(out)

  alphas, lambs = jnp.array([0.9, 0.5, 0.98]), jnp.array([2.0, 0.0, 5.0])
  got = jax.jit(jax.vmap(run))(alphas, lambs)
  for i in range(3):
    np.testing.assert_allclose(got[i], by_hand(float(alphas[i]), float(lambs[i])), rtol=1e-6)
  np.testing.assert_array_equal(got[1], np.stack(grads))  # lambda 0: the identity


def test_orthogonal_grad_leaves_no_component_along_each_leaf():
  rng = np.random.default_rng(0)
  params = {"a": jnp.asarray(rng.normal(size=(4, 3))), "b": jnp.asarray(rng.normal(size=5)),
            "z": jnp.zeros(3)}
  grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
  tx = orthogonal_grad()
  out, _ = tx.update(grads, tx.init(params), params)
  for k in ("a", "b"):
    assert abs(float(jnp.sum(out[k] * params[k]))) < 1e-5 * float(jnp.linalg.norm(grads[k]))
    # what was removed is along the weights
    removed = grads[k] - out[k]
    cos = jnp.sum(removed * params[k]) / (jnp.linalg.norm(removed) * jnp.linalg.norm(params[k]))
    assert abs(abs(float(cos)) - 1) < 1e-5
  np.testing.assert_array_equal(out["z"], grads["z"])  # no direction to remove
  with pytest.raises(ValueError, match="needs the current parameters"):
    tx.update(grads, tx.init(params))


def test_stablemax_and_mse_are_their_formulas():
  z = jnp.array([[2.0, -1.0, 0.0, -3.0], [0.5, 4.0, -0.5, 1.0]])
  y = jnp.array([0, 1])
  s = np.where(np.asarray(z) >= 0, np.asarray(z) + 1, 1 / (1 - np.minimum(np.asarray(z), 0)))
  want = -np.log(s[np.arange(2), [0, 1]] / s.sum(1))
  np.testing.assert_allclose(losses.per_example("stablemax", z, y), want, rtol=1e-6)
  one_hot = np.eye(4)[[0, 1]]
  np.testing.assert_allclose(losses.per_example("mse", z, y),
                             ((np.asarray(z) - one_hot) ** 2).mean(1), rtol=1e-6)
  # a padded Task's missing class (-inf) is left out of both
  zp = z.at[:, 3].set(-jnp.inf)
  sp = s[:, :3]
  np.testing.assert_allclose(losses.per_example("stablemax", zp, y),
                             -np.log(sp[np.arange(2), [0, 1]] / sp.sum(1)), rtol=1e-6)
  np.testing.assert_allclose(losses.per_example("mse", zp, y),
                             ((np.asarray(z)[:, :3] - one_hot[:, :3]) ** 2).mean(1), rtol=1e-6)
  assert np.isfinite(jax.grad(lambda q: losses.per_example("stablemax", q, y).sum())(zp)).all()


def test_a_temperature_is_the_output_layer_scaled_by_its_inverse():
  """logits / T from the MLP equal the logits of the same weights with the output layer
  (w2, b2) scaled by 1 / T: the evaluation of a run at temperature T is that of the scaled
  weights at temperature 1 (loss curves; accuracy is unchanged)."""
  from grokjax.engine.optim import NEVER
  from grokjax.engine.program import program
  from grokjax.engine.spec import Runs, Task, hparams
  task = Task(p=13, d=8, hidden=16, eval_every=5, temperature=True)
  prog = program(task)
  state = jax.tree.map(lambda x: x[0], prog.init(np.array([3], np.uint32)))
  hp = lambda t: jax.tree.map(lambda x: x[0], hparams(
      Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, temperature=t), np.float32))
  hot = prog.evaluate(state, hp(2.5))
  scaled = state._replace(params=dict(state.params, w2=state.params["w2"] / 2.5,
                                      b2=state.params["b2"] / 2.5))
  plain = prog.evaluate(scaled, hp(1.0))
  for k in ("train_loss", "test_loss", "train_acc", "test_acc"):
    np.testing.assert_allclose(hot[k], plain[k], rtol=1e-5, err_msg=k)
  cold = prog.evaluate(state, hp(1.0))
  assert abs(float(cold["train_loss"]) - float(hot["train_loss"])) > 1e-3
  with pytest.raises(ValueError, match="temperatures must be finite and > 0"):
    Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, temperature=0.0)
  from grokjax.engine.train import train
  with pytest.raises(ValueError, match="need Task\\(temperature=True\\)"):
    train(dataclasses.replace(task, temperature=False),
          Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, temperature=2.0), progress=False)


def test_each_base_update_is_its_definition():
  import optax
  from grokjax.engine.optim import base_update
  rng = np.random.default_rng(1)
  params = {"w": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=4), jnp.float32)}
  g1 = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
  g2 = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
  # SGD with momentum 0.5 and weight decay 0.1 on the matrix only, added to the gradient
  tx = base_update("sgd:momentum=0.5", 0.1, 0.1)
  state = tx.init(params)
  u1, state = tx.update(g1, state, params)
  u2, state = tx.update(g2, state, params)
  d = lambda g, k: np.asarray(g[k]) + (0.1 * np.asarray(params[k]) if k == "w" else 0)
  for k in params:
    m1 = d(g1, k)
    np.testing.assert_allclose(u1[k], -0.1 * m1, rtol=1e-5)
    np.testing.assert_allclose(u2[k], -0.1 * (0.5 * m1 + d(g2, k)), rtol=1e-5)
  # Lion: every coordinate moves by lr (no decay)
  tx = base_update("lion", 0.01, 0.0)
  u, _ = tx.update(g1, tx.init(params), params)
  for k in params:
    np.testing.assert_allclose(np.abs(u[k]), 0.01, rtol=1e-6)
  # Muon: a matrix's first update is its gradient orthogonalised (singular values near 1,
  # Newton-Schulz's five steps leave them within about 0.7-1.2), scaled by lr
  tx = base_update("muon", 1.0, 0.0)
  u, _ = tx.update(g1, tx.init(params), params)
  sv = np.linalg.svd(np.asarray(u["w"]), compute_uv=False)
  assert sv.min() > 0.5 * sv.max() and np.ptp(np.log(np.linalg.svd(np.asarray(g1["w"]),
                                                                   compute_uv=False))) > 0.5
  assert isinstance(tx, optax.GradientTransformation)


def test_muon_split_gives_the_embedding_output_and_vectors_adamw_and_the_rest_muon():
  """muon:split=1: the leaves named adamw_leaves and every vector take exactly the paper's
  AdamW update, the other matrices exactly Muon's update of that matrix alone."""
  rng = np.random.default_rng(0)
  params = {"embed": jnp.asarray(rng.normal(size=(7, 4)), jnp.float32),
            "w1": jnp.asarray(rng.normal(size=(8, 6)), jnp.float32),
            "b1": jnp.zeros(6, jnp.float32), "w2": jnp.asarray(rng.normal(size=(6, 7)), jnp.float32)}
  grads = [{k: jnp.asarray(rng.normal(size=v.shape), jnp.float32) for k, v in params.items()}
           for _ in range(2)]

  def two_steps(tx, ps):
    state, out = tx.init(ps), []
    for g in grads:
      u, state = tx.update({k: g[k] for k in ps}, state, ps)
      out.append(u)
    return out

  split = two_steps(base_update("muon:split=1", 0.1, 0.5, adamw_leaves={"embed", "w2"}), params)
  adamw = two_steps(base_update("adamw", 0.1, 0.5), params)
  muon_w1 = two_steps(base_update("muon", 0.1, 0.5), {"w1": params["w1"]})
  plain = two_steps(base_update("muon", 0.1, 0.5), params)
  for i in range(2):
    for k in ("embed", "w2", "b1"):
      np.testing.assert_array_equal(split[i][k], adamw[i][k])
    np.testing.assert_array_equal(split[i]["w1"], muon_w1[i]["w1"])
  assert not np.allclose(plain[1]["embed"], split[1]["embed"])  # plain Muon is not the split
  with pytest.raises(ValueError, match="neither 0 nor 1"):
    base_update("muon:split=2", 0.1, 0.5, adamw_leaves={"w2"})
  with pytest.raises(ValueError, match="needs the leaves"):
    base_update("muon:split=1", 0.1, 0.5)


@pytest.mark.parametrize("optimizer,grad", [("sgd", "none"), ("lion:b1=0.9,b2=0.99", "none"),
                                             ("muon", "none"), ("muon:split=1", "none"),
                                             ("adamw", "grokfast:lamb=1"),
                                             ("adamw", "orthogonal")])
def test_every_optimizer_trains_a_grid_and_the_clamp_still_holds(optimizer, grad):
  from grokjax.engine.optim import NEVER
  from grokjax.engine.spec import Runs, Task
  from grokjax.engine.train import train
  task = Task(p=13, d=8, hidden=16, eval_every=5, optimizer=optimizer, grad_transform=grad)
  runs = Runs(seed=[0, 1], lr=[1e-2, 3e-3], wd=1.0, target_norm=[np.nan, 6.0],
              t_int=[NEVER, 10], budget=40)
  res = train(task, runs, chunk_steps=20, retire_margin=None, progress=False)
  assert np.isfinite(res.curves["train_loss"]).all() and (res.diverged_step < 0).all()
  np.testing.assert_allclose(res.curves["norm"][1, res.steps >= 10], 6.0, rtol=1e-5)
  assert res.curves["norm"][0, -1] != res.curves["norm"][0, 0]  # the free run moved


def test_grokfast_alpha_and_lambda_per_run_are_one_program_equal_to_one_task_each():
  """Runs(grokfast_alpha=, grokfast_lamb=) under one Grokfast Task train as the same seeds
  under a Task per value (NaN: the Task's own); lambda 0 is AdamW itself."""
  from grokjax.engine.train import train
  base = dict(p=13, d=8, hidden=16, eval_every=5)
  runs = Runs([0, 0, 0], 2e-2, 1.0, np.nan, NEVER, 40, grokfast_lamb=[0.0, np.nan, 5.0],
              grokfast_alpha=[np.nan, 0.9, np.nan])
  grid = train(Task(**base, grad_transform="grokfast"), runs, progress=False)
  one = Runs([0], 2e-2, 1.0, np.nan, NEVER, 40)
  alone = [train(Task(**base, grad_transform=spec), one, progress=False)
           for spec in ("grokfast:lamb=0", "grokfast:alpha=0.9", "grokfast:lamb=5")]
  plain = train(Task(**base), one, progress=False)
  for i, res in enumerate(alone):
    for k in ("train_loss", "norm", "test_acc"):
      np.testing.assert_allclose(grid.curves[k][i], res.curves[k][0], rtol=1e-5, atol=1e-6,
                                 err_msg=f"run {i} {k}")
  np.testing.assert_allclose(grid.curves["train_loss"][0], plain.curves["train_loss"][0],
                             rtol=1e-5, atol=1e-6)
  assert not np.allclose(grid.curves["train_loss"][1], grid.curves["train_loss"][2])
  with pytest.raises(ValueError, match="Grokfast's alpha"):
    Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, grokfast_alpha=1.0)
  with pytest.raises(ValueError, match="need Task\\(grad_transform='grokfast'\\)"):
    train(Task(**base), Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, grokfast_lamb=1.0),
          progress=False)
  with pytest.raises(ValueError, match="need Task\\(grad_transform='grokfast'\\)"):
    train(Task(**base, grad_transform="orthogonal"),
          Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, grokfast_alpha=0.9), progress=False)
  assert Task(**base, grad_transform="grokfast:lamb=1").grokfast
  assert not Task(**base, grad_transform="orthogonal").grokfast


@pytest.mark.parametrize("optimizer,own", [("sgd:momentum=0", 0.5), ("adamw", 0.8)])
def test_a_runs_own_momentum_is_one_program_equal_to_one_task_each(optimizer, own):
  """Runs(momentum=) under Task(momentum=True): SGD's momentum (from a spec without any)
  and AdamW's b1, each run equal to a Task whose spec names its value; NaN: the spec's."""
  from grokjax.engine.optim import MOMENTUM_OPTION
  from grokjax.engine.train import train
  base = dict(p=13, d=8, hidden=16, eval_every=5)
  name = optimizer.partition(":")[0]
  grid = train(Task(**base, optimizer=optimizer, momentum=True),
               Runs([0, 0], 2e-2, 1.0, np.nan, NEVER, 30, momentum=[np.nan, own]), progress=False)
  one = Runs([0], 2e-2, 1.0, np.nan, NEVER, 30)
  specs = (optimizer, f"{name}:{MOMENTUM_OPTION[name]}={own}")
  for i, spec in enumerate(specs):
    alone = train(Task(**base, optimizer=spec), one, progress=False)
    for k in ("train_loss", "norm"):
      np.testing.assert_allclose(grid.curves[k][i], alone.curves[k][0], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{spec} {k}")
  assert not np.allclose(grid.curves["train_loss"][0], grid.curves["train_loss"][1])
  with pytest.raises(ValueError, match="need Task\\(momentum=True\\)"):
    train(Task(**base), Runs([0], 1e-2, 1.0, np.nan, NEVER, 10, momentum=0.5), progress=False)
