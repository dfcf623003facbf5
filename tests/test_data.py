import jax
import numpy as np
import pytest

from grokjax import data


def test_all_pairs_labels():
  a, b, y = map(np.asarray, data.all_pairs(7))
  assert len(a) == 49
  np.testing.assert_array_equal(y, (a + b) % 7)
  assert len(set(zip(a.tolist(), b.tolist()))) == 49


def test_split_size_disjoint_and_per_seed():
  n = data.n_train_pairs(59, 0.4)
  assert n == round(0.4 * 59 * 59)
  idx0, mask0 = map(np.asarray, data.split(jax.random.key(0), 59, n))
  idx1, _ = map(np.asarray, data.split(jax.random.key(1), 59, n))
  assert len(np.unique(idx0)) == n and mask0.sum() == n
  assert mask0[idx0].all()
  assert not np.array_equal(np.sort(idx0), np.sort(idx1))


def test_split_under_vmap_matches_single():
  keys = jax.random.split(jax.random.key(3), 4)
  idx, _ = jax.vmap(lambda k: data.split(k, 11, 40))(keys)
  np.testing.assert_array_equal(idx[2], data.split(keys[2], 11, 40)[0])


@pytest.mark.parametrize("p, frac, match", [
    (1, 0.4, "p must be an integer >= 2"),
    (59, 0.0, r"\(0, 1\)"),
    (59, 1.0, r"\(0, 1\)"),
    (3, 0.99, "non-empty"),
])
def test_bad_input(p, frac, match):
  with pytest.raises(ValueError, match=match):
    data.n_train_pairs(p, frac)
