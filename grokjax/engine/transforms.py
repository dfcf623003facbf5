"""Gradient transforms from the grokking literature, as optax transforms: each a factory
returning an `optax.GradientTransformation` with a NamedTuple state named after it, usable
before any base update in anyone's optax chain, and traced hyperparameters so that one
vmapped program sweeps them per run.

- `grokfast_ema` (Lee et al., arXiv:2405.20233): amplify the slow component of the
  gradient, g + lambda * EMA_alpha(g).
- `orthogonal_grad` (Prieto et al., arXiv:2501.04697, "⊥Grad"): remove from each leaf's
  gradient its component along the weights, the direction that only grows the norm (naive
  loss minimisation: scaling the logits).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class GrokfastEmaState(NamedTuple):
  """The exponential moving average of the gradients (like the parameters)."""
  ema: Any


def grokfast_ema(alpha: float | jax.Array = 0.98, lamb: float | jax.Array = 2.0
                 ) -> optax.GradientTransformation:
  """Grokfast's EMA filter: h <- alpha h + (1 - alpha) g, then g <- g + lamb h.

  Put it first in a chain (before AdamW): the base update sees the filtered gradient.
  `alpha` and `lamb` may be traced (one value per vmapped run); lamb = 0 is the identity.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tx = grokfast_ema(alpha=0.5, lamb=2.0)
    >>> state = tx.init({"w": jnp.zeros(2)})
    >>> g, state = tx.update({"w": jnp.ones(2)}, state)   # h = 0.5: g + 2 h = 2
    >>> g["w"].tolist(), state.ema["w"].tolist()
    ([2.0, 2.0], [0.5, 0.5])
    >>> g, state = tx.update({"w": jnp.ones(2)}, state)   # h = 0.75: g + 2 h = 2.5
    >>> g["w"].tolist()
    [2.5, 2.5]
  """
  def init_fn(params):
    return GrokfastEmaState(ema=jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    del params
    a = lambda x: jnp.asarray(alpha, x.dtype)
    ema = jax.tree.map(lambda h, g: a(g) * h + (1 - a(g)) * g, state.ema, updates)
    out = jax.tree.map(lambda g, h: g + jnp.asarray(lamb, g.dtype) * h, updates, ema)
    return out, GrokfastEmaState(ema=ema)

  return optax.GradientTransformation(init_fn, update_fn)


class OrthogonalGradState(NamedTuple):
  """⊥Grad keeps no state."""


def orthogonal_grad(eps: float = 1e-30) -> optax.GradientTransformation:
  """⊥Grad: per leaf, g <- g - (<g, w> / <w, w>) w, the gradient orthogonal to the weights.

  Put it first in a chain; needs `params`. A leaf of zeros passes its gradient through.

  Example:
    >>> import jax.numpy as jnp
    >>> tx = orthogonal_grad()
    >>> w = {"w": jnp.array([1.0, 0.0])}
    >>> g, _ = tx.update({"w": jnp.array([3.0, 4.0])}, tx.init(w), w)
    >>> g["w"].tolist()   # the component along w is gone
    [0.0, 4.0]
  """
  def init_fn(params):
    del params
    return OrthogonalGradState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("orthogonal_grad needs the current parameters: call "
                       "update(updates, state, params) with params")

    def project(g, w):
      ww = jnp.sum(w * w)
      along = jnp.sum(g * w) / jnp.maximum(ww, eps)
      return jnp.where(ww > 0, g - along * w, g)
    return jax.tree.map(project, updates, params), state

  return optax.GradientTransformation(init_fn, update_fn)
