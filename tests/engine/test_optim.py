import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from grokjax.problems.models import weight_norm
from grokjax.engine.optim import NEVER, clamp_global_norm, paper_optimizer, scale_weights


def _toy_params(key=0):
  k1, k2, k3 = jax.random.split(jax.random.key(key), 3)
  return {"embed": jax.random.normal(k1, (6, 4)), "w": jax.random.normal(k2, (4, 5)),
          "b": jax.random.normal(k3, (5,))}


def _loss(params, x):
  return jnp.sum(jnp.tanh(params["embed"] @ params["w"] + params["b"]) * x)


def _trajectory(opt, params, steps=20):
  x = jnp.linspace(-1, 1, 30).reshape(6, 5)
  state = opt.init(params)
  out = []
  for _ in range(steps):
    grads = jax.grad(_loss)(params, x)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    out.append(params)
  return out


def test_norm_held_from_start_step_and_untouched_before():
  params = _toy_params()
  target, start = 3.0, 5
  base = _trajectory(optax.adam(0.05), params)
  held = _trajectory(optax.chain(optax.adam(0.05), clamp_global_norm(target, start)), params)
  for k, (free, clamped) in enumerate(zip(base, held), start=1):
    if k < start:
      for name in params:
        np.testing.assert_array_equal(free[name], clamped[name])
    else:
      np.testing.assert_allclose(float(weight_norm(clamped)), target, rtol=1e-5)
  # biases are outside the mask: their updates are the upstream ones at the same point
  assert not np.allclose(held[-1]["b"], params["b"])


def test_bias_update_passes_through_unchanged():
  params = _toy_params()
  grads = jax.tree.map(jnp.ones_like, params)
  opt = optax.chain(optax.sgd(0.1), clamp_global_norm(2.0))
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(updates["b"], -0.1 * jnp.ones(5))
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(float(weight_norm(new)), 2.0, rtol=1e-6)


def test_vmapped_targets_per_run():
  params = jax.vmap(_toy_params)(jnp.arange(3))
  targets = jnp.array([1.0, 2.5, 7.0])
  x = jnp.ones((6, 5))

  def run(p, target):
    opt = optax.chain(optax.adam(0.01), clamp_global_norm(target))
    state = opt.init(p)
    for _ in range(3):
      updates, state = opt.update(jax.grad(_loss)(p, x), state, p)
      p = optax.apply_updates(p, updates)
    return weight_norm(p)

  np.testing.assert_allclose(jax.jit(jax.vmap(run))(params, targets), targets, rtol=1e-5)


def test_needs_params():
  params = _toy_params()
  opt = clamp_global_norm(1.0)
  with pytest.raises(ValueError, match="needs the current parameters"):
    opt.update(params, opt.init(params))


def test_in_an_unrelated_chain_linear_regression():
  # A model that has nothing to do with grokking: least squares with a held weight norm.
  # Centred, orthogonal columns with x^T x = 64 I: the best unit-norm kernel is then the
  # true one's direction, (3, -4, 0) / 5, and the best bias 0.
  raw = jax.random.normal(jax.random.key(1), (64, 3))
  x = 8.0 * jnp.linalg.qr(raw - raw.mean(0))[0]
  y = x @ jnp.array([3.0, -4.0, 0.0])
  params = {"kernel": jnp.zeros((3, 1)) + 0.1, "bias": jnp.zeros(())}
  opt = optax.chain(optax.clip_by_global_norm(10.0), optax.sgd(0.05),
                    clamp_global_norm(1.0, mask={"kernel": True, "bias": False}))
  state = opt.init(params)
  loss = lambda p: jnp.mean((x @ p["kernel"][:, 0] + p["bias"] - y) ** 2)
  for _ in range(200):
    updates, state = opt.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(params["kernel"][:, 0], [0.6, -0.8, 0.0], atol=2e-3)
  np.testing.assert_allclose(float(jnp.linalg.norm(params["kernel"])), 1.0, rtol=1e-5)


def test_chain_matches_paper_update_order():
  """Decay, Adam step, rescale: the paper's update written out by hand over 50 steps."""
  params = _toy_params(7)
  lr, wd, b1, b2, eps, target, t_int = 1e-2, 1.0, 0.9, 0.999, 1e-8, 4.0, 20
  is_matrix = {k: v.ndim >= 2 for k, v in params.items()}
  x = jnp.linspace(-1, 1, 30).reshape(6, 5)

  ref = dict(params)
  m = jax.tree.map(jnp.zeros_like, params)
  v = jax.tree.map(jnp.zeros_like, params)
  opt = paper_optimizer(lr, wd, target, t_int)
  state, ours = opt.init(params), params
  for t in range(1, 51):
    g = jax.grad(_loss)(ref, x)
    for k in ref:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      mhat, vhat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
      decayed = ref[k] * (1 - lr * wd) if is_matrix[k] else ref[k]
      ref[k] = decayed - lr * mhat / (jnp.sqrt(vhat) + eps)
    if t >= t_int:
      scale = target / weight_norm(ref)
      ref = {k: val * scale if is_matrix[k] else val for k, val in ref.items()}
    updates, state = opt.update(jax.grad(_loss)(ours, x), state, ours)
    ours = optax.apply_updates(ours, updates)
    for k in ref:  # relative to each leaf's norm: float32 rounding, not an update-order gap
      rel = float(jnp.linalg.norm(ours[k] - ref[k]) / jnp.linalg.norm(ref[k]))
      assert rel < 1e-5, (t, k, rel)
  assert t_int < 50 and abs(float(weight_norm(ours)) - target) < 1e-4


def test_never_means_free():
  params = _toy_params()
  free = _trajectory(optax.adamw(1e-2, weight_decay=1.0), params, 5)[-1]
  off = _trajectory(paper_optimizer(1e-2, 1.0, 3.0, NEVER), params, 5)[-1]
  # adamw without a mask also decays the bias, so compare only the matrices' norms' order
  assert abs(float(weight_norm(off)) - float(weight_norm(free))) < 0.05
  assert abs(float(weight_norm(off)) - 3.0) > 0.1


def test_float64_parameters_keep_their_precision():
  # the clamp's scale must be computed in the parameters' dtype, not float32
  with jax.enable_x64(True):
    params = {"w": jnp.full((40, 50), 0.3, jnp.float64)}
    opt = clamp_global_norm(jnp.float64(1.0) / 3.0)
    updates, _ = opt.update({"w": jnp.zeros((40, 50), jnp.float64)}, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    assert new["w"].dtype == jnp.float64
    assert abs(float(jnp.linalg.norm(new["w"])) - 1 / 3) < 1e-13


def test_stop_step_holds_then_releases():
  params = {"w": jnp.ones((3, 4))}
  opt = optax.chain(optax.sgd(0.1), clamp_global_norm(2.0, start_step=2, stop_step=3))
  state = opt.init(params)
  norms = []
  for _ in range(5):
    grads = {"w": -jnp.ones((3, 4))}  # grows the weights by 0.1 per step
    u, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, u)
    norms.append(float(jnp.linalg.norm(params["w"])))
  ref = np.sqrt(12) * 1.1
  np.testing.assert_allclose(norms[0], ref, rtol=1e-6)            # update 1: free
  np.testing.assert_allclose(norms[1:3], [2.0, 2.0], rtol=1e-6)   # updates 2, 3: held
  np.testing.assert_allclose(norms[3], 2.0 + 0.1 * np.sqrt(12), rtol=1e-6)  # free again


def test_one_shot_group_kick_against_a_hand_written_reference():
  params = {"embed": jnp.full((4, 3), 0.5), "w1": jnp.full((3, 5), 0.2), "b1": jnp.ones(5)}
  grads = jax.tree.map(jnp.ones_like, params)
  mask = {"embed": True, "w1": False, "b1": False}
  opt = optax.chain(optax.sgd(0.1), scale_weights(0.8, start_step=2, mask=mask))
  state = opt.init(params)
  ref = dict(params)
  for k in range(1, 4):
    u, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, u)
    ref = {n: v - 0.1 for n, v in ref.items()}
    if k == 2:
      ref["embed"] = ref["embed"] * 0.8
    for n in ref:
      np.testing.assert_allclose(params[n], ref[n], rtol=1e-6, err_msg=f"{n} after update {k}")


def test_kicks_vmapped_with_per_run_factor_step_and_group():
  params = {"a": jnp.ones((2, 2)), "b": jnp.ones((2, 2))}

  def one(factor, step, group):
    mask = {"a": group == 0, "b": group == 1}  # traced bools: each run kicks its own group
    opt = optax.chain(optax.sgd(0.0), scale_weights(factor, step, mask=mask))
    state, p = opt.init(params), params
    for _ in range(3):
      u, state = opt.update(jax.tree.map(jnp.zeros_like, p), state, p)
      p = optax.apply_updates(p, u)
    return p

  out = jax.jit(jax.vmap(one))(jnp.array([0.5, 2.0, 3.0]), jnp.array([1, 3, 9]),
                               jnp.array([0, 1, 0]))
  np.testing.assert_allclose(out["a"][:, 0, 0], [0.5, 1.0, 1.0])  # run 3 kicks after step 9
  np.testing.assert_allclose(out["b"][:, 0, 0], [1.0, 2.0, 1.0])


def test_clamp_with_a_traced_group_mask_holds_that_group_only():
  params = {"a": jnp.full((2, 2), 3.0), "b": jnp.full((2, 2), 5.0)}
  def one(group):
    mask = {"a": group == 0, "b": group == 1}
    opt = clamp_global_norm(1.0, mask=mask)
    u, _ = opt.update(jax.tree.map(jnp.zeros_like, params), opt.init(params), params)
    return optax.apply_updates(params, u)
  out = jax.vmap(one)(jnp.array([0, 1]))
  np.testing.assert_allclose([jnp.linalg.norm(out["a"][0]), out["b"][0, 0, 0]], [1.0, 5.0], rtol=1e-6)
  np.testing.assert_allclose([out["a"][1, 0, 0], jnp.linalg.norm(out["b"][1])], [3.0, 1.0], rtol=1e-6)


def test_the_clamp_and_the_rescale_are_siblings_with_one_argument_order():
  """value, start_step, stop_step, mask in both; each state named after its transform."""
  import inspect
  from grokjax.engine.optim import ClampGlobalNormState, ScaleWeightsState
  order = lambda f: list(inspect.signature(f).parameters)[1:]
  assert order(clamp_global_norm) == order(scale_weights) == ["start_step", "stop_step", "mask"]
  params = {"w": jnp.ones((2, 2))}
  assert isinstance(clamp_global_norm(1.0).init(params), ClampGlobalNormState)
  assert isinstance(scale_weights(0.5).init(params), ScaleWeightsState)
