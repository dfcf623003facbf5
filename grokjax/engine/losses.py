"""The training losses a Task can name, per example, and where the arithmetic floors them.

In float32 a cross-entropy of an example whose off-class softmax mass
m = sum_{j != y} exp(z_j - z_y) is small enough rounds to exactly 0, and so does its
correct-class gradient, while its wrong-class terms (about exp(z_j - z_y), normal floats)
survive: the gradient no longer sums to zero over the classes, and Adam normalises what is
left. That example is *at the floor*. Where the floor starts depends on how the loss is
written:

- "cross_entropy": the framework's (optax) cross-entropy, grokjax's default. Its value is
  logsumexp(z) - z_y, which rounds at the scale of the largest logit (at a logit of 16-32
  it reads 0 from m ~ 2^-20 on), but its gradient is computed from the shifted sum
  1 + sum_j exp(z_j - z_y) and floors where that sum rounds to 1.
- "log_softmax": -log_softmax(z)_y, the shifted form PyTorch's cross-entropy computes (the
  authors' runner): value and gradient 0 where the shifted sum rounds to 1.
- "exact": log1p(m) with m taken relative to the correct logit, so its correct-class
  gradient is minus the off-class probabilities, never rounded away: the gradient sums to
  zero in any dtype. It is 0 only where m underflows to 0 (margins past ~87 in float32).
- "float32_floor": in any dtype, float32's absorption applied on purpose: where
  m < 2^-24 the loss and the correct-class gradient are 0 and the off-class gradient is
  exp(z_j - z_y), as float32 computes them; elsewhere the exact loss. Run in float64 it
  separates the floor from float32's other roundings.

Where a float32 shifted sum rounds to 1 depends on the order the backend adds the classes:
added to the 1 at once, the off-class mass must be below 2^-24 (the threshold
"float32_floor" applies); in partial sums, only each part that meets the 1 must be, so
the floor comes earlier. XLA on a CPU floored train examples of the paper's MLP at p = 41
whose mass was 2^-23.9 to 2^-22.2 (`benchmarks/floor_probe.py`). So the fraction of
examples `below_float32_floor` (mass below 2^-24) is at most the fraction a float32 run has
at the floor. And the floor comes gradually: while m is a few ulps of 2^-23, 1 + m is
rounded to a multiple of 2^-23 and the correct-class gradient is off by tens of percent
before it is 0.

`at_floor` marks the examples whose correct-class gradient is exactly 0 under a loss,
`correct_class_error` how far it is from the exact one; `Program.evaluate` records both
over the train examples (`floor`, `floor_err`).

>>> import jax.numpy as jnp
>>> z = jnp.array([[20.0, 0.0, 0.0]], jnp.float32)  # margin 20: m = 2 e^-20 ~ 4e-9 < 2^-24
>>> float(per_example("cross_entropy", z, jnp.array([0]))[0]), float(per_example("exact", z, jnp.array([0]))[0]) > 0
(0.0, True)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

LOSSES = ("cross_entropy", "log_softmax", "exact", "float32_floor", "stablemax", "mse")
# The losses whose gradient is the softmax cross-entropy's (the floor's story is theirs).
SOFTMAX_LOSSES = ("cross_entropy", "log_softmax", "exact", "float32_floor")

# float32's absorption threshold: 1 + m rounds to 1 for m below half an ulp of 1
FLOAT32_HALF_ULP = 2.0 ** -24


def off_class_log_mass(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per example, s = ln sum_{j != y} exp(z_j - z_y), computed without forming 1 + m
  (classes at -inf, such as a padded Task's missing ones, add nothing)."""
  correct = jnp.take_along_axis(logits, labels[..., None], axis=-1)
  is_y = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  return jax.nn.logsumexp(jnp.where(is_y, -jnp.inf, logits - correct), axis=-1)


def per_example(loss: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """The per-example loss named `loss` (one of LOSSES) of integer labels, in the logits'
  dtype; differentiable. See the module docstring for what each computes."""
  if loss == "cross_entropy":
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  if loss == "log_softmax":
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], axis=-1)[..., 0]
  if loss == "stablemax":
    return stablemax_cross_entropy(logits, labels)
  if loss == "mse":
    return mse_one_hot(logits, labels)
  if loss not in LOSSES:
    raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
  s = off_class_log_mass(logits, labels)
  exact = jax.nn.softplus(s)  # log1p(e^s): the log1p of the off-class mass, stable both ways
  if loss == "exact":
    return exact
  # float32_floor: the absorbed examples contribute gradient exp(z_j - z_y) to each wrong
  # class j, 0 to the correct one, and a loss of 0 (value minus itself, gradient kept).
  absorbed = below_float32_floor(logits, labels)
  correct = jnp.take_along_axis(logits, labels[..., None], axis=-1)
  off = ~jax.nn.one_hot(labels, logits.shape[-1], dtype=bool) & absorbed[..., None]
  weights = jax.lax.stop_gradient(jnp.where(off, jnp.exp(logits - correct), 0.0))
  surrogate = jnp.sum(jnp.where(weights > 0, weights * logits, 0.0), axis=-1)
  return jnp.where(absorbed, surrogate - jax.lax.stop_gradient(surrogate), exact)


def stablemax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per example, -log StableMax(z)_y (Prieto et al., arXiv:2501.04697): StableMax replaces
  exp by s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, which grows linearly, so the
  probabilities saturate far later than softmax's (no softmax collapse). Classes at -inf
  (a padded Task's missing ones) get s = 0.

  >>> import jax.numpy as jnp
  >>> z = jnp.array([[1.0, 0.0, -1.0]])  # s = 2, 1, 0.5: p_0 = 2 / 3.5
  >>> abs(float(stablemax_cross_entropy(z, jnp.array([0]))[0]) + float(jnp.log(2 / 3.5))) < 1e-6
  True
  """
  s = jnp.where(logits >= 0, logits + 1, 1 / (1 - jnp.where(logits >= 0, 0.0, logits)))
  correct = jnp.take_along_axis(s, labels[..., None], axis=-1)[..., 0]
  return jnp.log(jnp.sum(s, axis=-1)) - jnp.log(correct)


def mse_one_hot(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per example, the mean over classes of (z_j - onehot(y)_j)^2 (Omnigrok's loss); a
  padded Task's missing classes (-inf) are left out of the mean.

  >>> import jax.numpy as jnp
  >>> float(mse_one_hot(jnp.array([[1.0, 0.5, 0.0, 0.5]]), jnp.array([0]))[0])
  0.125
  """
  real = jnp.isfinite(logits)
  target = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  sq = jnp.where(real, (jnp.where(real, logits, 0.0) - target) ** 2, 0.0)
  return jnp.sum(sq, axis=-1) / jnp.sum(real, axis=-1)


def correct_class_error(loss: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per example, the relative error of the correct-class gradient under `loss` against
  the exact one, -m / (1 + m) (m the off-class mass, computed without forming 1 + m): 0
  where the loss keeps it, 1 at the floor, and between the two while 1 + m is rounded to a
  multiple of float32's 2^-23 (m of a few ulps: the floor comes gradually). 0 for a loss
  that is not a softmax cross-entropy (stablemax, mse), whose gradient is another."""
  if loss not in SOFTMAX_LOSSES:
    return jnp.zeros(logits.shape[:-1], logits.dtype)
  grads = jax.grad(lambda z: per_example(loss, z, labels).sum())(logits)
  got = jnp.take_along_axis(grads, labels[..., None], axis=-1)[..., 0]
  exact = -jax.nn.sigmoid(off_class_log_mass(logits, labels))
  return jnp.where(exact != 0, jnp.abs(got - exact) / jnp.where(exact != 0, -exact, 1), 0.0)


def at_floor(loss: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per example, whether its correct-class gradient under `loss` is exactly 0 in the
  logits' dtype: the example is at the floor. (Not "its loss is 0": the framework
  cross-entropy's value rounds to 0 earlier than its gradient does.)"""
  grads = jax.grad(lambda z: per_example(loss, z, labels).sum())(logits)
  return jnp.take_along_axis(grads, labels[..., None], axis=-1)[..., 0] == 0


def below_float32_floor(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per example, whether its off-class mass is below 2^-24: where float32's log-softmax
  cross-entropy (the authors' PyTorch one) is exactly 0, read in any dtype."""
  s = off_class_log_mass(logits, labels)
  return s < jnp.log(jnp.asarray(FLOAT32_HALF_ULP, s.dtype))
