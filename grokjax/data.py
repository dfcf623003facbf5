"""Modular-addition task: all p^2 ordered pairs, one random train split per seed.

Every function here is pure and shape-static in (p, n_train), so a split can be drawn
inside a jitted, vmapped program from a per-run PRNG key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def n_train_pairs(p: int, frac: float) -> int:
  """Number of training pairs, round(frac * p^2), after validating (p, frac).

  Raises:
    ValueError: p < 2, frac outside (0, 1), or a split with no train or no test pair.
  """
  if not isinstance(p, int) or isinstance(p, bool) or p < 2:
    raise ValueError(f"modulus p must be an integer >= 2, got {p!r}")
  if not 0.0 < float(frac) < 1.0:
    raise ValueError(f"train fraction must lie in (0, 1), got {frac!r}")
  n = int(round(float(frac) * p * p))
  if n < 1 or n >= p * p:
    raise ValueError(
        f"train fraction {frac} at p={p} gives {n} of {p * p} pairs for training; "
        "both the train and the test set must be non-empty")
  return n


def all_pairs(p: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Operands a, b and labels (a + b) mod p for all p^2 pairs, index i = a * p + b."""
  idx = jnp.arange(p * p, dtype=jnp.int32)
  a, b = idx // p, idx % p
  return a, b, (a + b) % p


def split(key: jax.Array, p: int, n_train: int) -> tuple[jax.Array, jax.Array]:
  """One seed's split.

  Args:
    key: PRNG key of this seed.
    p: modulus (static).
    n_train: number of training pairs (static), see `n_train_pairs`.

  Returns:
    train_idx: int32[n_train], pair indices (a * p + b) used for training.
    is_train: bool[p * p], True where a pair belongs to the train set.
  """
  perm = jax.random.permutation(key, p * p).astype(jnp.int32)
  train_idx = perm[:n_train]
  is_train = jnp.zeros((p * p,), bool).at[train_idx].set(True)
  return train_idx, is_train
