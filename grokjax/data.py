"""Modular addition as plain functions: all p^2 ordered pairs, one random split per seed.

Thin helpers over `grokjax.problems.Modular` (the engine's own path) for code that wants
the arrays without a Problem; every function is pure and shape-static in (p, n_train).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from grokjax.problems import Modular


def n_train_pairs(p: int, frac: float) -> int:
  """Number of training pairs, round(frac * p^2), after validating (p, frac).

  Raises:
    ValueError: p < 2, frac outside (0, 1), or a split with no train or no test pair.
  """
  return Modular(p, frac).n_train


def all_pairs(p: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Operands a, b and labels (a + b) mod p for all p^2 pairs, index i = a * p + b."""
  return tuple(map(jnp.asarray, Modular(p, 0.5).full_set()))


def split(key: jax.Array, p: int, n_train: int) -> tuple[jax.Array, jax.Array]:
  """One seed's split: train_idx int32[n_train] (pair indices a * p + b) and is_train
  bool[p * p]; the same split the engine draws for this key."""
  data = Modular(p, train_size=n_train).split(key)
  return data["train_idx"], data["is_train"]
