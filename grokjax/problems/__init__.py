"""Problems: what a grid learns, behind one small interface.

A `Problem` is a frozen (hashable, static) description of a classification task with a
per-seed train/test split. The engine touches a problem only through it:

  split(key)        -> data: the per-seed arrays (train split, sampled examples), drawn
                       inside the jitted, vmapped program from the run's split key;
  train_set(data)   -> (inputs, labels) of one full-batch training step;
  eval_set(data)    -> (inputs, labels, is_train) of one evaluation;
  make_model(task, rngs), metrics(model) (extra curves), n_classes, n_train, n_test.

A model is called as `model(*inputs)`. Problems are named by a spec string, the `problem`
field of a `Task` and the `--problem` flag of every script: "add" (the paper's task),
"sub", "mul", "div", "x2_xy_y2", or "sparse_parity" with options after a colon
("sparse_parity:k=4"). A new problem is a `Problem` subclass and one `@register`-ed
factory; a new modular operation is one line of `OPS`.

>>> build("mul", 7, 0.5).n_train  # half of the 49 pairs
24
>>> build("div", 7, 0.5).n_total  # b = 0 left out
42
>>> build("sparse_parity:k=4", 20, 0.4).n_classes
2
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# ---------------------------------------------------------------- the interface


class ModularSplit(NamedTuple):
  """A modular problem's split of its p^2 pairs: the train pairs' indices, and a mask."""
  train_idx: jax.Array
  is_train: jax.Array


class ParitySplit(NamedTuple):
  """Sparse parity's split: its train and test inputs (+-1 bits)."""
  x_train: jax.Array
  x_test: jax.Array


@dataclasses.dataclass(frozen=True)
class Problem:
  """Base class: a task of `n_classes` classes with `n_train` training examples per seed.

  Attributes:
    size: the problem's size: the modulus p of a modular problem, the number of input
      bits n of sparse parity (the `p` of a Task and the `--moduli` of a script).
  """
  size: int

  @property
  def n_classes(self) -> int:
    raise NotImplementedError

  @property
  def n_train(self) -> int:
    raise NotImplementedError

  @property
  def n_test(self) -> int:
    raise NotImplementedError

  def seed_tag(self) -> str:
    """Appended to a run's init-seed key: two problems never share init and split."""
    raise NotImplementedError

  def split(self, key: jax.Array) -> Any:
    """A run's train/test split from its key: a NamedTuple of arrays (a pytree the
    program carries in its state, `RunState.data`)."""
    raise NotImplementedError

  def train_set(self, data) -> tuple[tuple[jax.Array, ...], jax.Array]:
    raise NotImplementedError

  def eval_set(self, data) -> tuple[tuple[jax.Array, ...], jax.Array, jax.Array]:
    raise NotImplementedError

  def make_model(self, task, rngs):
    raise NotImplementedError

  def metrics(self, model) -> dict[str, jax.Array]:
    """Extra curves of one run, recorded at every evaluation (default: none)."""
    return {}

  def data_bytes(self) -> int:
    """Bytes of one seed's `split` (the memory check reads it without tracing)."""
    raise NotImplementedError

  def check(self, task) -> None:
    """Raise ValueError when `task` (architecture, widths) cannot train this problem."""

  def cost(self) -> float:
    """Relative arithmetic of one training step (time estimates compare sizes with it)."""
    return float(self.n_train * self.n_classes)


_REGISTRY: dict[str, Callable[..., Problem]] = {}


def register(name: str) -> Callable:
  """Decorator: `factory(size, frac, train_size, **options) -> Problem` under `name`."""
  def add(factory):
    _REGISTRY[name] = factory
    return factory
  return add


def names() -> list[str]:
  return list(_REGISTRY)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
  """"sparse_parity:k=4,n_test=500" -> ("sparse_parity", {"k": 4, "n_test": 500})."""
  name, _, rest = str(spec).partition(":")
  if name not in _REGISTRY:
    raise ValueError(f"unknown problem {name!r}; choose from {', '.join(_REGISTRY)}")
  options = {}
  for item in filter(None, (s.strip() for s in rest.split(","))):
    key, eq, value = item.partition("=")
    if not eq:
      raise ValueError(f"problem option {item!r} of {spec!r} is not key=value")
    if key.strip() in options:
      raise ValueError(f"problem option {key.strip()!r} of {spec!r} is given twice")
    try:
      options[key.strip()] = int(value)
    except ValueError:
      raise ValueError(f"problem option {item!r} of {spec!r}: {value!r} is not an integer")
  return name, options


@functools.lru_cache(maxsize=None)
def build(spec: str, size: int, frac: float, train_size: int | None = None) -> Problem:
  """The Problem named by `spec` at `size`, validated (ValueError naming what is wrong)."""
  name, options = parse_spec(spec)
  try:
    return _REGISTRY[name](size, frac, train_size, **options)
  except TypeError as e:
    raise ValueError(f"problem {spec!r}: {e}")


# ---------------------------------------------------------------- modular arithmetic

# label of (a, b) mod p, and whether b = 0 is left out of the full set
OPS: dict[str, tuple[Callable[[np.ndarray, np.ndarray, int], np.ndarray], bool]] = {
    "add": (lambda a, b, p: (a + b) % p, False),
    "sub": (lambda a, b, p: (a - b) % p, False),
    "mul": (lambda a, b, p: (a * b) % p, False),
    "div": (lambda a, b, p: (a * _inverse(b, p)) % p, True),
    "x2_xy_y2": (lambda a, b, p: (a * a + a * b + b * b) % p, False),
}


def _inverse(b: np.ndarray, p: int) -> np.ndarray:
  return np.array([pow(int(x), p - 2, p) for x in b], np.int64)


def _is_prime(p: int) -> bool:
  return p >= 2 and all(p % q for q in range(2, math.isqrt(p) + 1))


@dataclasses.dataclass(frozen=True)
class Modular(Problem):
  """a OP b mod p over every ordered pair (a, b) (b != 0 for division); one random
  train split per seed of round(frac * N) of the N pairs, the rest the test set.

  The inputs are the operand indices (a, b); the label the result, p classes.
  """
  frac: float = 0.40
  train_size: int | None = None
  op: str = "add"

  def __post_init__(self):
    p = self.size
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 2:
      raise ValueError(f"modulus p must be an integer >= 2, got {p!r}")
    if self.op not in OPS:
      raise ValueError(f"unknown modular operation {self.op!r}; choose from {', '.join(OPS)}")
    if OPS[self.op][1] and not _is_prime(p):
      raise ValueError(f"{self.op} mod p needs a prime p (every b != 0 invertible), got {p}")
    if self.train_size is None and not 0.0 < float(self.frac) < 1.0:
      raise ValueError(f"train fraction must lie in (0, 1), got {self.frac!r}")
    n, total = self.n_train, self.n_total
    if n < 1 or n >= total:
      raise ValueError(
          f"train fraction {self.frac} at p={p} gives {n} of {total} pairs for training; "
          "both the train and the test set must be non-empty")

  @property
  def n_total(self) -> int:
    p = self.size
    return p * (p - 1) if OPS[self.op][1] else p * p

  @property
  def n_train(self) -> int:
    if self.train_size is not None:
      return int(self.train_size)
    return int(round(float(self.frac) * self.n_total))

  @property
  def n_test(self) -> int:
    return self.n_total - self.n_train

  @property
  def n_classes(self) -> int:
    return self.size

  def seed_tag(self) -> str:
    return "" if self.op == "add" else f"|{self.op}"  # "add": the seeds of every result so far

  def full_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operands a, b and labels of all N pairs, in the order a * p + b."""
    return _modular_table(self.op, self.size)

  def split(self, key):
    perm = jax.random.permutation(key, self.n_total).astype(jnp.int32)
    train_idx = perm[: self.n_train]
    return ModularSplit(train_idx=train_idx,
                        is_train=jnp.zeros((self.n_total,), bool).at[train_idx].set(True))

  def train_set(self, data):
    a, b, y = map(jnp.asarray, self.full_set())
    idx = data.train_idx
    return (a[idx], b[idx]), y[idx]

  def eval_set(self, data):
    a, b, y = map(jnp.asarray, self.full_set())
    return (a, b), y, data.is_train

  def make_model(self, task, rngs):
    from grokjax.problems.models import MLP, Transformer
    if task.arch == "transformer":
      return Transformer(self.size, task.d, task.heads, task.hidden, layernorm=task.layernorm is not False,
                         rngs=rngs)
    return MLP(self.size, task.d, task.hidden, layernorm=task.layernorm is not False, rngs=rngs)

  def data_bytes(self) -> int:
    return 4 * self.n_train + self.n_total  # int32 train indices, bool mask

  def metrics(self, model):
    return dict(gini=fourier_gini(model.embed[...][: self.size]))

  def cost(self) -> float:
    return float(self.n_train * self.size)


@functools.lru_cache(maxsize=None)
def _modular_table(op: str, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  idx = np.arange(p * p)
  a, b = idx // p, idx % p
  if OPS[op][1]:
    a, b = a[b != 0], b[b != 0]
  y = OPS[op][0](a, b, p)
  return a.astype(np.int32), b.astype(np.int32), y.astype(np.int32)


def fourier_gini(embed: jax.Array) -> jax.Array:
  """Gini coefficient of the token-frequency power spectrum of E (DC removed).

  Near 0 when the power is spread over all frequencies, towards 1 when a few dominate.
  """
  power = jnp.sum(jnp.abs(jnp.fft.rfft(embed, axis=0)) ** 2, axis=-1)[1:]
  power = jnp.sort(power)
  n = power.shape[0]
  i = jnp.arange(1, n + 1, dtype=power.dtype)
  return 2 * jnp.sum(i * power) / (n * jnp.sum(power)) - (n + 1) / n


def _modular(op: str) -> Callable[..., Problem]:
  def factory(size, frac, train_size):
    return Modular(size, frac, train_size, op)
  return factory


for _op in OPS:
  register(_op)(_modular(_op))


# ---------------------------------------------------------------- sparse parity


@dataclasses.dataclass(frozen=True)
class SparseParity(Problem):
  """(n, k) sparse parity: x uniform in {-1, +1}^n, label 1 when the product of its first
  k bits is positive. Per seed, m training examples drawn with replacement and n_test
  fresh test examples. Default model: MLP n -> H GELU -> 2.

  Attributes:
    size: n, the number of input bits.
    m: training examples per seed.
    k: relevant bits.
    n_test: test examples per seed.
  """
  m: int = 1000
  k: int = 3
  test_examples: int = 2000

  def __post_init__(self):
    n = self.size
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
      raise ValueError(f"sparse parity needs n >= 1 input bits, got {n!r}")
    if not 1 <= self.k <= n:
      raise ValueError(f"sparse parity needs 1 <= k <= n, got k={self.k}, n={n}")
    if self.m < 1 or self.test_examples < 1:
      raise ValueError(f"sparse parity needs m >= 1 and n_test >= 1 examples, got "
                       f"m={self.m}, n_test={self.test_examples}")

  @property
  def n_classes(self) -> int:
    return 2

  @property
  def n_train(self) -> int:
    return self.m

  @property
  def n_test(self) -> int:
    return self.test_examples

  def seed_tag(self) -> str:
    return f"|sparse_parity|k={self.k}|n_test={self.test_examples}"

  def split(self, key):
    k_train, k_test = jax.random.split(key)
    draw = lambda k, m: jax.random.rademacher(k, (m, self.size), jnp.int8)
    return ParitySplit(x_train=draw(k_train, self.m), x_test=draw(k_test, self.test_examples))

  def label(self, x: jax.Array) -> jax.Array:
    return (jnp.prod(x[:, : self.k].astype(jnp.int32), axis=-1) > 0).astype(jnp.int32)

  def train_set(self, data):
    x = data.x_train
    return (x,), self.label(x)

  def eval_set(self, data):
    x = jnp.concatenate([data.x_train, data.x_test])
    is_train = jnp.arange(self.m + self.test_examples) < self.m
    return (x,), self.label(x), is_train

  def check(self, task) -> None:
    if task.arch != "mlp":
      raise ValueError(f"sparse parity has an MLP only, got arch={task.arch!r}")

  def make_model(self, task, rngs):
    from grokjax.problems.models import ParityMLP
    return ParityMLP(self.size, task.hidden, layernorm=task.layernorm is not False, rngs=rngs)

  def data_bytes(self) -> int:
    return (self.m + self.test_examples) * self.size  # int8 bits

  def cost(self) -> float:
    return float(self.m * self.size)


@register("sparse_parity")
def sparse_parity(size, frac, train_size, k: int = 3, n_test: int = 2000) -> Problem:
  """train_size is m (default 1000); frac is not used."""
  return SparseParity(size, 1000 if train_size is None else train_size, k, n_test)
