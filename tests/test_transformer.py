import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from grokjax.models import Transformer, weight_mask

P, D, HEADS, WIDTH = 11, 16, 4, 32
NAMES = {"embed", "pos", "wq", "wk", "wv", "wo", "w_in", "w_out", "unembed"}


def _model(layernorm, factorised=True, seed=0):
  return Transformer(P, D, HEADS, WIDTH, layernorm=layernorm, factorised=factorised,
                     rngs=nnx.Rngs(seed))


def _pairs():
  a, b = jnp.meshgrid(jnp.arange(P), jnp.arange(P))
  return a.ravel(), b.ravel()


def test_shapes_and_matrices():
  model = _model(False)
  a, b = _pairs()
  assert model(a, b).shape == (P * P, P)
  assert model(a.reshape(P, P), b.reshape(P, P)).shape == (P, P, P)
  params = nnx.to_pure_dict(nnx.split(model)[1])
  assert set(params) == NAMES
  assert all(jax.tree.leaves(weight_mask(params)))  # no biases: every leaf counts
  assert params["embed"].shape == (P + 1, D) and params["pos"].shape == (3, D)
  assert params["w_in"].shape == (D, WIDTH) and params["unembed"].shape == (D, P)


@pytest.mark.parametrize("layernorm", [False, True])
def test_factorised_attention_equals_plain(layernorm):
  a, b = _pairs()
  fast, plain = _model(layernorm, True), _model(layernorm, False)
  np.testing.assert_allclose(fast(a, b), plain(a, b), rtol=1e-4, atol=1e-5)


def _scaled(model, c, names):
  for name in names:
    getattr(model, name)[...] = c * getattr(model, name)[...]
  return model


@pytest.mark.parametrize("c", [2.0, 3.0])
def test_layernorm_scale_invariance(c):
  """With LayerNorm, scaling embed, pos, wo and w_out by c > 0 scales every residual-stream
  vector by exactly c (each LN sees its input times c and returns the same output, so the
  attention pattern, the values and the MLP's input are unchanged and the two residual
  writes scale through wo and w_out), hence the final LN output and the logits do not
  change. Without LayerNorm the same rescaling changes the logits. (Exact up to the
  LayerNorm's eps = 1e-5 in the variance, which c > 1 only shrinks.)"""
  a, b = _pairs()
  resid = ("embed", "pos", "wo", "w_out")
  base = _model(True)(a, b)
  np.testing.assert_allclose(_scaled(_model(True), c, resid)(a, b), base, rtol=1e-4, atol=1e-4)
  plain = _model(False)(a, b)
  assert not np.allclose(_scaled(_model(False), c, resid)(a, b), plain, rtol=1e-2, atol=1e-2)
  # the unembedding alone sets the logits' scale
  np.testing.assert_allclose(_scaled(_model(True), c, ["unembed"])(a, b), c * base, rtol=1e-5,
                             atol=1e-5)


def test_trains():
  model = _model(False)
  graphdef, state = nnx.split(model)
  params = nnx.to_pure_dict(state)
  a, b = _pairs()
  y = (a + b) % P

  def loss(params):
    logits = nnx.merge(graphdef, params)(a, b)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  opt = optax.adamw(1e-2)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state):
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  first = float(loss(params))
  for _ in range(100):
    params, opt_state, _ = step(params, opt_state)
  assert float(loss(params)) < first / 2
