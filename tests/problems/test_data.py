"""Modular addition's data (`problems.Modular`): all p^2 pairs, one random split per seed."""

import jax
import numpy as np
import pytest

from grokjax.problems import Modular


def test_all_pairs_labels():
  a, b, y = map(np.asarray, Modular(7, 0.5).full_set())
  assert len(a) == 49
  np.testing.assert_array_equal(y, (a + b) % 7)
  assert len(set(zip(a.tolist(), b.tolist()))) == 49


def test_split_size_disjoint_and_per_seed():
  prob = Modular(59, 0.4)
  n = prob.n_train
  assert n == round(0.4 * 59 * 59)
  s0, s1 = prob.split(jax.random.key(0)), prob.split(jax.random.key(1))
  idx0, mask0 = np.asarray(s0.train_idx), np.asarray(s0.is_train)
  idx1 = np.asarray(s1.train_idx)
  assert len(np.unique(idx0)) == n and mask0.sum() == n
  assert mask0[idx0].all()
  assert not np.array_equal(np.sort(idx0), np.sort(idx1))


def test_split_under_vmap_matches_single():
  prob = Modular(11, train_size=40)
  keys = jax.random.split(jax.random.key(3), 4)
  idx = jax.vmap(lambda k: prob.split(k).train_idx)(keys)
  np.testing.assert_array_equal(idx[2], prob.split(keys[2]).train_idx)


@pytest.mark.parametrize("p, frac, match", [
    (1, 0.4, "p must be an integer >= 2"),
    (59, 0.0, r"\(0, 1\)"),
    (59, 1.0, r"\(0, 1\)"),
    (3, 0.99, "non-empty"),
])
def test_bad_input(p, frac, match):
  with pytest.raises(ValueError, match=match):
    Modular(p, frac).n_train
