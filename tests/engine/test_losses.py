"""The training losses and the float32 floor, on constructed logits whose off-class mass
lies just below or just above float32's absorption threshold 2^-24."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax.engine import losses

P = 7
HALF_ULP = 2.0 ** -24


def _logits(mass: float, dtype) -> jnp.ndarray:
  """One example of label 0 whose off-class softmax mass is `mass`, all of it on class 1:
  the correct logit at 20 (a float32 log-sum-exp rounds at that scale), the other classes
  200 below it (nothing in float32, 1e-87 in float64). One class carries the mass because
  a backend that adds several terms each below 2^-24 onto 1 absorbs them one by one."""
  z = np.full((1, P), -180.0)
  z[0, 0] = 20.0
  z[0, 1] = 20.0 + math.log(mass)
  return jnp.asarray(z, dtype)


def _value_and_grad(loss, z):
  y = jnp.array([0])
  v, g = jax.value_and_grad(lambda z: losses.per_example(loss, z, y).sum())(z)
  return float(v), np.asarray(g[0], np.float64)


def _exact_grad(mass: float) -> np.ndarray:
  """softmax - onehot of _logits(mass) in exact arithmetic."""
  g = np.zeros(P)
  g[0], g[1] = -mass / (1 + mass), mass / (1 + mass)
  return g


BELOW, ABOVE = 0.5 * HALF_ULP, 2.0 * HALF_ULP


def test_log_softmax_floors_exactly_below_two_to_the_minus_24_in_float32():
  v, g = _value_and_grad("log_softmax", _logits(BELOW, jnp.float32))
  assert v == 0.0 and g[0] == 0.0  # the correct-class gradient rounded away ...
  assert g[1] > 0  # ... while the wrong-class term survives: no zero sum
  assert g.sum() == pytest.approx(BELOW, rel=1e-3)
  v, g = _value_and_grad("log_softmax", _logits(ABOVE, jnp.float32))
  assert v > 0 and g[0] < 0


def test_the_framework_loss_reads_zero_before_its_gradient_floors_in_float32():
  # optax's value logsumexp(z) - z_y rounds at the magnitude of z_y = 20: 0 at 2^-23 ...
  v, g = _value_and_grad("cross_entropy", _logits(ABOVE, jnp.float32))
  assert v == 0.0 and g[0] < 0  # ... while its gradient still has the correct class
  v, g = _value_and_grad("cross_entropy", _logits(BELOW, jnp.float32))
  assert v == 0.0 and g[0] == 0.0 and g[1] > 0
  v, g = _value_and_grad("cross_entropy", _logits(1e-4, jnp.float32))
  assert v > 0 and g[0] < 0


@pytest.mark.parametrize("loss", ["cross_entropy", "log_softmax"])
def test_at_floor_marks_the_examples_whose_correct_class_gradient_is_zero(loss):
  y = jnp.array([0, 0, 0])
  z32 = jnp.concatenate([_logits(m, jnp.float32) for m in (BELOW, ABOVE, 1e-3)])
  assert losses.at_floor(loss, z32, y).tolist() == [True, False, False]
  assert losses.at_floor("exact", z32, y).tolist() == [False, False, False]
  with jax.enable_x64(True):
    z64 = jnp.concatenate([_logits(m, jnp.float64) for m in (BELOW, ABOVE, 1e-3)])
    assert losses.at_floor(loss, z64, y).tolist() == [False, False, False]
    assert losses.at_floor("float32_floor", z64, y).tolist() == [True, False, False]


@pytest.mark.parametrize("mass", [BELOW, ABOVE])
def test_nothing_floors_in_float64(mass):
  with jax.enable_x64(True):
    for loss in ("cross_entropy", "log_softmax", "exact"):
      v, g = _value_and_grad(loss, _logits(mass, jnp.float64))
      assert v == pytest.approx(math.log1p(mass), rel=1e-6)
      np.testing.assert_allclose(g, _exact_grad(mass), rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("mass", [BELOW, ABOVE, 1e-12])
def test_the_exact_loss_keeps_the_correct_class_gradient_in_float32(mass):
  v, g = _value_and_grad("exact", _logits(mass, jnp.float32))
  assert v == pytest.approx(math.log1p(mass), rel=1e-5)
  np.testing.assert_allclose(g, _exact_grad(mass), rtol=1e-5, atol=1e-30)  # y: -the others
  assert abs(g.sum()) < 1e-6 * mass  # sums to zero, to rounding


def test_the_exact_loss_is_stable_for_a_misclassified_example():
  z = jnp.asarray([[0.0, 90.0, -5.0]], jnp.float32)  # margin -90: exp(90) overflows float32
  v, g = jax.value_and_grad(lambda z: losses.per_example("exact", z, jnp.array([0])).sum())(z)
  assert float(v) == pytest.approx(90.0, rel=1e-6)
  np.testing.assert_allclose(np.asarray(g[0]), [-1.0, 1.0, 0.0], atol=1e-6)


def test_the_emulated_floor_in_float64_is_float32s_log_softmax():
  with jax.enable_x64(True):
    for mass in (BELOW, 0.9 * HALF_ULP):  # absorbed: loss 0, float32's gradient
      v, g = _value_and_grad("float32_floor", _logits(mass, jnp.float64))
      v32, g32 = _value_and_grad("log_softmax", _logits(mass, jnp.float32))
      assert v == 0.0 == v32 and g[0] == 0.0 == g32[0]
      np.testing.assert_allclose(g[1:], g32[1:], rtol=1e-5, atol=1e-30)
    for mass in (ABOVE, 1e-3):  # not absorbed: the exact loss, in float64
      v, g = _value_and_grad("float32_floor", _logits(mass, jnp.float64))
      assert v == pytest.approx(math.log1p(mass), rel=1e-9)
      np.testing.assert_allclose(g, _exact_grad(mass), rtol=1e-9, atol=1e-30)


def test_below_float32_floor_reads_the_same_in_either_dtype():
  y = jnp.array([0])
  for dtype, x64 in ((jnp.float32, False), (jnp.float64, True)):
    with jax.enable_x64(x64):
      assert bool(losses.below_float32_floor(_logits(BELOW, dtype), y)[0])
      assert not bool(losses.below_float32_floor(_logits(ABOVE, dtype), y)[0])


def test_an_unknown_loss_is_refused():
  with pytest.raises(ValueError, match="unknown loss"):
    losses.per_example("hinge", jnp.zeros((1, 3)), jnp.array([0]))


def test_the_correct_class_error_grows_as_one_plus_m_is_rounded():
  y = jnp.array([0, 0, 0, 0])
  z = jnp.concatenate([_logits(m, jnp.float32) for m in (1e-3, 4 * 2.0 ** -23, 1.5 * 2.0 ** -23, BELOW)])
  err = np.asarray(losses.correct_class_error("log_softmax", z, y))
  assert err[0] < 1e-3 and 0 < err[1] < 0.2 and 0.2 < err[2] < 0.5 and err[3] == 1.0
  assert np.all(np.asarray(losses.correct_class_error("exact", z, y)) < 1e-5)
