"""The paper's networks as Flax NNX modules, and the helpers that define their norm.

A model's *weight matrices* are its `nnx.Param` leaves with two or more dimensions
(embeddings, kernels, attention projections); vectors (biases) are not. They are the
leaves that count in ||W|| and receive weight decay. `weight_mask` derives them from
any model, so the engine never names a layer.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def _normal(key: jax.Array, shape: tuple[int, ...], scale: float) -> jax.Array:
  return scale * jax.random.normal(key, shape, jnp.float32)


def layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Parameter-free LayerNorm over the last axis (no gain, no bias)."""
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


@jax.custom_jvp
def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, x * Phi(x), with a hand-written derivative Phi(x) + x * phi(x).

  The same function as `jax.nn.gelu(x, approximate=False)`; on CPU its forward and
  backward cost about half as much (one erf and one exp per element).
  """
  return 0.5 * x * (1 + jax.lax.erf(x * 0.7071067811865476))


@gelu.defjvp
def _gelu_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  cdf = 0.5 * (1 + jax.lax.erf(x * 0.7071067811865476))
  pdf = jnp.exp(-0.5 * x * x) * 0.3989422804014327
  return x * cdf, (cdf + x * pdf) * dx


class MLP(nnx.Module):
  """The paper's MLP: logits = GELU(concat(E[a], E[b]) W1 + b1) W2 + b2.

  Args:
    p: modulus (vocabulary and number of classes).
    d: embedding width (paper: 128).
    hidden: hidden width H (paper: 256).
    layernorm: put a parameter-free LayerNorm on h before the output layer.
    factorised: compute the first layer as (E W1[:d])[a] + (E W1[d:])[b] + b1, which is
      the same function as the concat form with p x H instead of n x H products.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  def __init__(self, p: int, d: int = 128, hidden: int = 256, *,
               layernorm: bool = False, factorised: bool = True, rngs: nnx.Rngs):
    self.p, self.d, self.hidden = p, d, hidden
    self.layernorm, self.factorised = layernorm, factorised
    self.embed = nnx.Param(_normal(rngs.params(), (p, d), 1 / math.sqrt(d)))
    self.w1 = nnx.Param(_normal(rngs.params(), (2 * d, hidden), 1 / math.sqrt(2 * d)))
    self.b1 = nnx.Param(jnp.zeros((hidden,), jnp.float32))
    self.w2 = nnx.Param(_normal(rngs.params(), (hidden, p), 1 / math.sqrt(hidden)))
    self.b2 = nnx.Param(jnp.zeros((p,), jnp.float32))

  def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
    """Logits float32[..., p] for operand index arrays a, b of equal shape."""
    E, w1 = self.embed[...], self.w1[...]
    if self.factorised:
      pre = (E @ w1[: self.d])[a] + (E @ w1[self.d:])[b]
    else:
      pre = jnp.concatenate([E[a], E[b]], axis=-1) @ w1
    h = gelu(pre + self.b1[...])
    if self.layernorm:
      h = layer_norm(h)
    return h @ self.w2[...] + self.b2[...]


def weight_mask(params: Any) -> Any:
  """Pytree of bools over `params`: True on weight matrices (ndim >= 2)."""
  return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def weight_norm(params: Any, mask: Any | None = None) -> jax.Array:
  """Total Frobenius norm sqrt(sum ||M||_F^2) over the masked leaves (default: matrices)."""
  mask = weight_mask(params) if mask is None else mask
  sq = [jnp.sum(jnp.square(x)) for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m]
  return jnp.sqrt(sum(sq))
