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
import numpy as np
from flax import nnx


def _normal(key: jax.Array, shape: tuple[int, ...], scale: float) -> jax.Array:
  return scale * jax.random.normal(key, shape, jnp.float32)


def layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Parameter-free LayerNorm over the last axis (no gain, no bias)."""
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def maybe_layer_norm(x: jax.Array, switch) -> jax.Array:
  """`layer_norm(x)` where `switch` holds, else x. switch: a Python bool (decided when
  tracing) or a traced bool (one compiled program serves runs with and without LayerNorm;
  `grokjax.engine.spec.Task(layernorm="per_run")`)."""
  if switch is True:
    return layer_norm(x)
  if switch is False or switch is None:
    return x
  return jnp.where(switch, layer_norm(x), x)


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


def output_product(h: jax.Array, w: jax.Array, multiple: int = 16) -> jax.Array:
  """h @ w.T for an output layer stored [classes, H] (out, in; as torch.nn.Linear does).

  The same values as `h @ w.T`, computed with the rows of w padded by zeros to a multiple
  of `multiple` and the padded logits dropped: on a CPU an output width such as 59 falls
  into the matmul kernel's slow edge path, and the gradient of a [classes, H] matrix comes
  out of the fast form of the product (`python benchmarks/throughput.py`: about 1.16x
  run-steps/s at paper scale, both together). The padding is built inside the call, so
  the parameters, their norm and their updates are those of the unpadded layer.
  """
  rows = w.shape[0]
  pad = -rows % multiple
  if pad:
    w = jnp.pad(w, ((0, pad), (0, 0)))
  out = jax.lax.dot_general(h, w, (((h.ndim - 1,), (1,)), ((), ())))
  return out[..., :rows] if pad else out


class MLP(nnx.Module):
  """The paper's MLP: logits = GELU(concat(E[a], E[b]) W1 + b1) W2^T + b2.

  W2 is stored [p, H] (out, in), the layout of the authors' torch.nn.Linear; its values
  at init are those of an [H, p] draw, transposed.

  Args:
    p: modulus (vocabulary and number of classes).
    d: embedding width (paper: 128).
    hidden: hidden width H (paper: 256).
    layernorm: put a parameter-free LayerNorm on h before the output layer (a bool, or a
      traced bool set on the module before a call: `maybe_layer_norm`).
    factorised: compute the first layer as (E W1[:d])[a] + (E W1[d:])[b] + b1, which is
      the same function as the concat form with p x H instead of n x H products, and the
      output layer with `output_product`; False computes the plain forms.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  # The weight groups a run's norm, clamp or kick can name (`grokjax.engine.spec.WEIGHT_GROUPS`).
  GROUPS = {"embedding": ("embed",), "hidden": ("w1",), "output": ("w2",)}

  def __init__(self, p: int, d: int = 128, hidden: int = 256, *,
               layernorm: bool = False, factorised: bool = True, rngs: nnx.Rngs):
    self.p, self.d, self.hidden = p, d, hidden
    self.layernorm, self.factorised = layernorm, factorised
    self.embed = nnx.Param(_normal(rngs.params(), (p, d), 1 / math.sqrt(d)))
    self.w1 = nnx.Param(_normal(rngs.params(), (2 * d, hidden), 1 / math.sqrt(2 * d)))
    self.b1 = nnx.Param(jnp.zeros((hidden,), jnp.float32))
    self.w2 = nnx.Param(_normal(rngs.params(), (hidden, p), 1 / math.sqrt(hidden)).T)
    self.b2 = nnx.Param(jnp.zeros((p,), jnp.float32))

  def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
    """Logits float32[..., p] for operand index arrays a, b of equal shape."""
    E, w1 = self.embed[...], self.w1[...]
    if self.factorised:
      pre = (E @ w1[: self.d])[a] + (E @ w1[self.d:])[b]
    else:
      pre = jnp.concatenate([E[a], E[b]], axis=-1) @ w1
    h = maybe_layer_norm(gelu(pre + self.b1[...]), self.layernorm)
    w2 = self.w2[...]
    return (output_product(h, w2) if self.factorised else h @ w2.T) + self.b2[...]


class ParityMLP(nnx.Module):
  """The sparse-parity MLP: logits = GELU(x W1 + b1) W2 + b2 for x in {-1, +1}^n.

  Args:
    n: input bits.
    hidden: hidden width H (authors': 512).
    n_classes: output classes (2).
    layernorm: a parameter-free LayerNorm on h before the output layer.
    rngs: `nnx.Rngs` with a `params` stream. W1 ~ N(0, 1/n), W2 ~ N(0, 1/H), zero biases.
  """

  GROUPS = {"embedding": (), "hidden": ("w1",), "output": ("w2",)}

  def __init__(self, n: int, hidden: int = 512, n_classes: int = 2, *,
               layernorm: bool = False, rngs: nnx.Rngs):
    self.layernorm = layernorm
    self.w1 = nnx.Param(_normal(rngs.params(), (n, hidden), 1 / math.sqrt(n)))
    self.b1 = nnx.Param(jnp.zeros((hidden,), jnp.float32))
    self.w2 = nnx.Param(_normal(rngs.params(), (hidden, n_classes), 1 / math.sqrt(hidden)))
    self.b2 = nnx.Param(jnp.zeros((n_classes,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits float32[..., n_classes] for inputs x[..., n] (any numeric dtype, +-1)."""
    w1 = self.w1[...]
    h = maybe_layer_norm(gelu(x.astype(w1.dtype) @ w1 + self.b1[...]), self.layernorm)
    return h @ self.w2[...] + self.b2[...]


def weight_mask(params: Any) -> Any:
  """Pytree of bools over `params`: True on weight matrices (ndim >= 2)."""
  return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def weight_norm(params: Any, mask: Any | None = None) -> jax.Array:
  """Total Frobenius norm sqrt(sum ||M||_F^2) over the masked leaves (default: matrices).
  A mask leaf is a Python bool or a traced one (a run's weight group under vmap)."""
  mask = weight_mask(params) if mask is None else mask
  sq = []
  for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)):
    if isinstance(m, (bool, np.bool_)):
      if m:
        sq.append(jnp.sum(jnp.square(x)))
    else:
      sq.append(jnp.sum(jnp.square(x)) * jnp.asarray(m, x.dtype))
  return jnp.sqrt(sum(sq))


class Transformer(nnx.Module):
  """The authors' one-layer attention model on tokens [a, b, =] (vocabulary p + 1).

  x_t = embed[token_t] + pos_t; the query is the "=" position's, keys and values every
  position's: x = x_= + Attn(LN(x)); x = x + MLP(LN(x)); logits = LN(x) @ unembed, over
  p + 1 classes (the "=" token is a class of the softmax, never a label). Multi-head
  softmax attention, an exact-GELU MLP, no biases; LN is the parameter-free `layer_norm`
  (eps 1e-5) when `layernorm`, else the identity. Init: every matrix N(0, 1/fan_in)
  except the positional embedding, N(0, 1) x 0.1 / sqrt(d). Every leaf is a matrix, so
  weight decay, ||W|| and the clamp cover them all (the positional embedding included).

  Args:
    p: modulus; token p is "=".
    d: residual width (paper: 128).
    heads: attention heads (paper: 4); d must divide by it.
    mlp_width: MLP width (paper: 512).
    layernorm: LayerNorm before attention, before the MLP and before the unembedding.
    factorised: use that only the last position is read: every token's keys and values
      come from its vocabulary row, so they are computed once per row (p x d x d) instead
      of once per sample; the same function as the plain form.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  GROUPS = {"embedding": ("embed", "pos"), "hidden": ("wq", "wk", "wv", "wo", "w_in", "w_out"),
            "output": ("unembed",), "attention": ("wq", "wk", "wv", "wo"),
            "mlp": ("w_in", "w_out")}

  def __init__(self, p: int, d: int = 128, heads: int = 4, mlp_width: int = 512, *,
               layernorm: bool = False, factorised: bool = True, rngs: nnx.Rngs):
    if d % heads:
      raise ValueError(f"d={d} is not divisible by heads={heads}")
    self.p, self.d, self.heads, self.mlp_width = p, d, heads, mlp_width
    self.layernorm, self.factorised = layernorm, factorised
    s = 1 / math.sqrt(d)
    self.embed = nnx.Param(_normal(rngs.params(), (p + 1, d), s))
    self.pos = nnx.Param(_normal(rngs.params(), (3, d), 0.1 * s))
    self.wq = nnx.Param(_normal(rngs.params(), (d, d), s))
    self.wk = nnx.Param(_normal(rngs.params(), (d, d), s))
    self.wv = nnx.Param(_normal(rngs.params(), (d, d), s))
    self.wo = nnx.Param(_normal(rngs.params(), (d, d), s))
    self.w_in = nnx.Param(_normal(rngs.params(), (d, mlp_width), s))
    self.w_out = nnx.Param(_normal(rngs.params(), (mlp_width, d), 1 / math.sqrt(mlp_width)))
    self.unembed = nnx.Param(_normal(rngs.params(), (d, p + 1), s))

  def _ln(self, x):
    return maybe_layer_norm(x, self.layernorm)

  def _heads(self, x):
    return x.reshape(*x.shape[:-1], self.heads, self.d // self.heads)

  def _mlp_and_out(self, x_last):
    x_last = x_last + gelu(self._ln(x_last) @ self.w_in[...]) @ self.w_out[...]
    return self._ln(x_last) @ self.unembed[...]

  def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
    """Logits float32[..., p + 1] for operand index arrays a, b of equal shape."""
    E, pos = self.embed[...], self.pos[...]
    wq, wk, wv, wo = self.wq[...], self.wk[...], self.wv[...], self.wo[...]
    scale = 1 / math.sqrt(self.d // self.heads)
    if not self.factorised:
      tokens = jnp.stack([a, b, jnp.full_like(a, self.p)], axis=-1)
      x = E[tokens] + pos
      h = self._ln(x)
      q, k, v = (self._heads(h @ w) for w in (wq, wk, wv))
      scores = jnp.einsum("...qhe,...khe->...hqk", q, k) * scale
      causal = jnp.tril(jnp.ones((3, 3), bool))
      att = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
      o = jnp.einsum("...hqk,...khe->...qhe", att, v).reshape(x.shape)
      x = x + o @ wo
      return self._mlp_and_out(x[..., 2, :])
    # Rows of (vocabulary x position): keys and values depend on one token each, and the
    # only query is the "=" token's at position 2, a single vector.
    x_last = E[self.p] + pos[2]
    h_tok = self._ln(E[None, :, :] + pos[:, None, :])  # [3 positions, p + 1, d]
    q = self._heads(self._ln(x_last) @ wq)  # [heads, e]
    k = self._heads(h_tok @ wk)  # [3, p + 1, heads, e]
    v = self._heads(h_tok @ wv)
    s = jnp.einsum("he,tvhe->tvh", q, k) * scale  # score of each (position, token)
    idx = (jnp.zeros_like(a), a), (jnp.ones_like(a), b), (jnp.full_like(a, 2), jnp.full_like(a, self.p))
    scores = jnp.stack([s[t, tok] for t, tok in idx], axis=-2)  # [..., 3, heads]
    att = jax.nn.softmax(scores, axis=-2)
    o = sum(att[..., j, :, None] * v[t, tok] for j, (t, tok) in enumerate(idx))  # [..., heads, e]
    x_last = x_last + o.reshape(*a.shape, self.d) @ wo
    return self._mlp_and_out(x_last)
