"""The training engine: one compiled, vmapped program trains a whole grid of runs.

A grid is a `Task` (everything static: shapes, architecture, evaluation interval) and
`Runs` (one row per run: seed index, learning rate, weight decay, held norm, clamp start
and budget). `train` initialises every run, then loops on the host over jitted chunks of
`lax.scan` steps; between chunks it records curves, retires finished runs and packs the
rest into a smaller batch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grokjax import problems
from grokjax.models import weight_norm
from grokjax.optim import NEVER, paper_optimizer
from grokjax.reduce import grok_times

ARCHS = ("mlp", "transformer")
# Weight groups of a model (its `GROUPS`, plus "all"): what a run's norm measures and its
# clamp holds (`Runs.norm_group`), and what a kick scales (`Runs.kick_group`).
WEIGHT_GROUPS = ("all", "embedding", "hidden", "output", "attention", "mlp")
KICK_GROUPS = WEIGHT_GROUPS[:4]  # the groups norm_interventions kicks (every model has them)
MATMUL_PRECISIONS = ("float32", "tensorfloat32", "bfloat16")
# The curves of a modular problem; a grid's own are whatever `Program.evaluate` returns
# (`Program.curve_names`), so a new metric needs no second list.
CURVES = ("train_acc", "test_acc", "train_loss", "test_loss", "norm", "collapse", "gini")


@dataclasses.dataclass(frozen=True)
class Task:
  """The static half of a grid: one compiled program per distinct Task.

  Attributes:
    p: the problem's size: the modulus of a modular problem, the input bits n of sparse
      parity.
    frac: fraction of the full set (the p^2 pairs of a + b) used for training.
    d: embedding width.
    hidden: MLP hidden width (H of the paper's MLP; the transformer's MLP width).
    arch: "mlp" (the paper's MLP) or "transformer" (the one-layer attention model).
    layernorm: the architecture's LayerNorm option: False, True, or "per_run" (each run's
      `Runs.layernorm` switches it, so runs with and without LayerNorm share one program).
    eval_every: steps between evaluations; the resolution of T_mem and T_grok.
    dtype: "float32" (the paper) or "float64" (needs jax x64).
    heads: attention heads (transformer).
    matmul_precision: "float32" (full precision, the paper's; JAX would otherwise use
      TF32 on recent NVIDIA GPUs and one bfloat16 pass on TPUs), or the opt-in speed modes
      "tensorfloat32" and "bfloat16". No effect on a CPU.
    problem: what is learnt, a `grokjax.problems` spec: "add" (the paper's a + b mod p),
      "sub", "mul", "div", "x2_xy_y2", "sparse_parity" (options: "sparse_parity:k=4").
    train_size: training examples per seed, instead of frac (sparse parity's m; default
      1000 there).
    sizes: several moduli sharing this one program (MLP, modular problems): p is their
      largest; each run's `Runs.size` picks its own. Its embedding rows, output classes and
      examples beyond its own size are padding: masked out of the loss and the metrics,
      their weights exactly zero at init and so forever (zero gradient, zero Adam moments,
      zero decay, a clamp or kick scales zero), so the norm and every update are those of
      the unpadded run, up to float32 rounding (`tests/test_train.py`).
  """
  p: int
  frac: float = 0.40
  d: int = 128
  hidden: int = 256
  arch: str = "mlp"
  layernorm: bool | str = False
  eval_every: int = 10
  dtype: str = "float32"
  heads: int = 4
  matmul_precision: str = "float32"
  problem: str = "add"
  train_size: int | None = None
  sizes: tuple[int, ...] | None = None

  def __post_init__(self):
    if self.sizes is not None:
      object.__setattr__(self, "sizes", tuple(sorted({int(q) for q in self.sizes})))
      if self.p != max(self.sizes):
        raise ValueError(f"a padded Task's p is the largest of its sizes {self.sizes}, got {self.p}")
      if self.arch != "mlp" or not isinstance(self.problem_def, problems.Modular):
        raise ValueError("several moduli in one program need the MLP on a modular problem")
      for q in self.sizes:
        self.of_size(q)  # each size valid on its own
    self.problem_def.check(self)  # validates p, frac, train_size, options, architecture
    if self.layernorm not in (False, True, "per_run"):
      raise ValueError(f"layernorm must be False, True or 'per_run', got {self.layernorm!r}")
    if self.arch not in ARCHS:
      raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
    for name in ("d", "hidden", "eval_every"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
    if self.dtype not in ("float32", "float64"):
      raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
    if self.matmul_precision not in MATMUL_PRECISIONS:
      raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, "
                       f"got {self.matmul_precision!r}")

  @property
  def problem_def(self) -> problems.Problem:
    """The `grokjax.problems.Problem` this Task trains on."""
    return problems.build(self.problem, self.p, self.frac, self.train_size)

  @property
  def n_train(self) -> int:
    return self.problem_def.n_train

  def of_size(self, q: int) -> "Task":
    """The unpadded Task of one size (a run of size q trains as if under it)."""
    return dataclasses.replace(self, p=int(q), sizes=None)

  def make_model(self, rngs: nnx.Rngs) -> nnx.Module:
    return self.problem_def.make_model(self, rngs)

  def init_seed(self, wd: float, seed: int, stream: str = "") -> int:
    """The 31-bit seed of a run's init and split: (p, split size, d, H, arch, wd, seed,
    stream).

    Deliberately blind to rho, learning rate, arm and the LayerNorm switch, so every
    cell of a seed starts from the same weights and data (the matched counterfactual).
    `stream` names the sample a seed index belongs to (an experiment's own by default,
    see `Runs.stream`): seed 3 of two streams are independent draws. The empty stream is
    the one every experiment shared before streams existed.
    """
    key = f"{self.p}|{self.n_train}|{self.d}|{self.hidden}|{self.arch}|{float(wd)!r}|{int(seed)}"
    if self.arch == "transformer":
      key += f"|{self.heads}"
    key += self.problem_def.seed_tag()
    if stream:
      key += f"|stream={stream}"
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclasses.dataclass
class Runs:
  """The dynamic half of a grid: one row per run, all arrays of length N.

  Attributes:
    seed: seed index (with the Task and wd, fixes init and split).
    lr: learning rate.
    wd: decoupled weight decay on the matrices.
    target_norm: held norm rho * W_c of a clamp run; NaN for a free run.
    t_int: first step held at target_norm (`NEVER` for a free run).
    budget: steps this run may take; rounded up to the evaluation interval.
    t_stop: last step held (`NEVER`: held to the end). t_stop == t_int is a one-shot
      rescale of the norm to target_norm at t_int, then free training.
    kick: a one-shot factor on the weight matrices of `kick_group` after step t_kick
      (t_kick = 0: on the initial weights; `NEVER`: no kick).
    kick_group: index into `WEIGHT_GROUPS` ("all", "embedding", "hidden", "output", ...).
    norm_group: index into `WEIGHT_GROUPS`: the weight matrices whose norm the run
      measures (the `norm` curve, norm_at_grok) and a clamp holds; 0 ("all"): every one.
    layernorm: whether the run uses the architecture's LayerNorm; read only under
      `Task(layernorm="per_run")`.
    size: the run's own modulus under a padded Task (`Task.sizes`); 0: the Task's p.
    stream: the seed stream of the run (`Task.init_seed`): a results folder sets its
      experiment's, so seed indices of two experiments are independent samples.
  """
  seed: np.ndarray
  lr: np.ndarray
  wd: np.ndarray
  target_norm: np.ndarray
  t_int: np.ndarray
  budget: np.ndarray
  t_stop: np.ndarray | int = NEVER
  kick: np.ndarray | float = 1.0
  t_kick: np.ndarray | int = NEVER
  kick_group: np.ndarray | int = 0
  norm_group: np.ndarray | int = 0
  layernorm: np.ndarray | bool = False
  size: np.ndarray | int = 0
  stream: np.ndarray | str = ""

  def __post_init__(self):
    n = len(np.atleast_1d(self.seed))
    for f in dataclasses.fields(self):
      arr = np.broadcast_to(np.asarray(getattr(self, f.name)), (n,)).copy()
      setattr(self, f.name, arr)
    for f in ("seed", "t_int", "budget", "t_stop", "t_kick", "kick_group", "norm_group", "size"):
      setattr(self, f, getattr(self, f).astype(np.int64))
    for f in ("lr", "wd", "target_norm", "kick"):
      setattr(self, f, getattr(self, f).astype(np.float64))
    self.layernorm = self.layernorm.astype(bool)
    if n == 0:
      raise ValueError("a grid needs at least one run")
    if np.any(self.lr <= 0) or not np.all(np.isfinite(self.lr)):
      raise ValueError(f"learning rates must be finite and > 0, got {self.lr}")
    if np.any(self.wd < 0):
      raise ValueError(f"weight decay must be >= 0, got {self.wd}")
    if np.any(self.budget < 1):
      raise ValueError(f"budgets must be >= 1 step, got {self.budget}")
    clamp = self.t_int < NEVER
    if np.any(clamp & ~(self.target_norm > 0)):
      raise ValueError("a clamp run needs a held norm target_norm > 0")
    if np.any(clamp & (self.t_stop < self.t_int)):
      raise ValueError("a clamp's stop step t_stop must be >= its start t_int")
    if np.any((self.t_kick < NEVER) & ~(self.kick > 0)) or np.any(self.t_kick < 0):
      raise ValueError("a kick needs a factor > 0 and a step t_kick >= 0")
    for f in ("kick_group", "norm_group"):
      g = getattr(self, f)
      if np.any((g < 0) | (g >= len(WEIGHT_GROUPS))):
        raise ValueError(f"{f} must index {WEIGHT_GROUPS}, got {g}")

  def __len__(self) -> int:
    return len(self.seed)

  @property
  def is_clamp(self) -> np.ndarray:
    return self.t_int < NEVER

  @classmethod
  def free(cls, seeds, lr, wd, budget, norm_group=0) -> "Runs":
    """Free runs (no clamp), one per seed, measuring the norm of `norm_group`."""
    seeds = np.asarray(seeds)
    return cls(seeds, lr, wd, np.nan, NEVER, budget, norm_group=norm_group)

  @classmethod
  def concat(cls, *parts: "Runs") -> "Runs":
    return cls(**{f.name: np.concatenate([getattr(r, f.name) for r in parts])
                  for f in dataclasses.fields(cls)})

  def take(self, idx) -> "Runs":
    return Runs(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})


# ---------------------------------------------------------------- the per-run program


def _hparams(runs: Runs, dtype) -> dict[str, np.ndarray]:
  return dict(lr=runs.lr.astype(dtype), wd=runs.wd.astype(dtype),
              target=np.nan_to_num(runs.target_norm, nan=1.0).astype(dtype),
              start=np.minimum(runs.t_int, NEVER).astype(np.int32),
              stop=np.minimum(runs.t_stop, NEVER).astype(np.int32),
              kick=runs.kick.astype(dtype), t_kick=np.minimum(runs.t_kick, NEVER).astype(np.int32),
              kick_group=runs.kick_group.astype(np.int32),
              norm_group=runs.norm_group.astype(np.int32),
              budget=runs.budget.astype(np.int32), layernorm=runs.layernorm.astype(bool))


fourier_gini = problems.fourier_gini  # where it used to live

# ln(2^126): beyond this logit margin every other class's softmax probability lies below
# float32's smallest normal number, where backends differ (denormals kept or flushed).
COLLAPSE_MARGIN = 126 * 0.6931471805599453


def softmax_collapsed(logits: jax.Array) -> jax.Array:
  """Per sample, whether its softmax has collapsed to one-hot in float32: the top logit
  exceeds every other by more than `COLLAPSE_MARGIN`, so no other class keeps a normal
  float32 probability. Computed from the logit margin, it reads the same on every backend.

  (Before, a sample counted as collapsed when every other probability was exactly 0.0:
  a margin of about 103.3 where a backend keeps denormals and 87.3 where it flushes them,
  so the same weights could read differently on two backends. Results written before
  2026-11-23 use that meaning.)
  """
  top = jnp.argmax(logits, axis=-1)
  others = jnp.where(jax.nn.one_hot(top, logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return jnp.max(logits, axis=-1) - jnp.max(others, axis=-1) > COLLAPSE_MARGIN


class Program:
  """The jitted functions of one Task: init a batch of runs, train it for a chunk."""

  def __init__(self, task: Task):
    self.task = task
    abstract = nnx.eval_shape(lambda: task.make_model(nnx.Rngs(0)))
    self.graphdef, abstract_state = nnx.split(abstract)
    self.shapes = {k: v.shape for k, v in nnx.to_pure_dict(abstract_state).items()}
    self.groups = type(abstract).GROUPS  # the model's weight groups (WEIGHT_GROUPS)
    self.problem = task.problem_def
    self._init_batch = self._precise(jax.vmap(self._init_one))
    self.init = jax.jit(self._init_batch)
    self._inits: dict[Any, Callable] = {}
    self._chunks: dict[tuple, Callable] = {}
    self.seen: set[tuple] = set()  # (chunk fn, batch size) pairs already run: compiled
    one = jax.eval_shape(self._init_one, jnp.zeros([], jnp.uint32))
    self.curve_names = tuple(jax.eval_shape(self.evaluate, one))

  def init_on(self, sharding) -> Callable:
    """`init` whose state is born split over `sharding`'s devices: no eager slicing of a
    one-device state into shards afterwards (a small compiled program per leaf shape)."""
    if sharding not in self._inits:
      self._inits[sharding] = jax.jit(self._init_batch, out_shardings=sharding)
    return self._inits[sharding]

  def model(self, params, layernorm=None):
    """The module with these parameters; under Task(layernorm="per_run") `layernorm` is the
    run's traced switch (None: on)."""
    model = nnx.merge(self.graphdef, params)
    if self.task.layernorm == "per_run":
      model.layernorm = True if layernorm is None else layernorm
    return model

  def _init_one(self, seed: jax.Array, which: jax.Array | int = 0) -> dict[str, Any]:
    """One run's state from its seed; under a padded Task `which` indexes its size."""
    t = self.task
    if t.sizes is None:
      params, data = self._params_and_split(t, seed)
    else:
      params, data = jax.lax.switch(
          which, [functools.partial(self._padded, q) for q in t.sizes], seed)
    params = jax.tree.map(lambda x: x.astype(t.dtype), params)
    opt = paper_optimizer(1.0, 1.0)  # the state's structure only; hparams arrive per step
    return dict(params=params, opt=opt.init(params), step=jnp.zeros([], jnp.int32),
                diverged=jnp.full([], -1, jnp.int32), data=data)

  @staticmethod
  def _params_and_split(task: Task, seed):
    k_split, k_params = jax.random.split(jax.random.key(seed))
    _, state = nnx.split(task.make_model(nnx.Rngs(params=k_params)))
    return nnx.to_pure_dict(state), task.problem_def.split(k_split)

  def _padded(self, q: int, seed) -> tuple[dict, dict]:
    """The parameters and data of a size-q run, zero-padded to the Task's largest size:
    the train set as index arrays with a weight per example, the full set with train and
    test masks, the mask of the run's classes, and `which` (its index in Task.sizes)."""
    t, tq = self.task, self.task.of_size(q)
    params, split = self._params_and_split(tq, seed)
    params = {k: jnp.pad(v, [(0, n - m) for n, m in zip(self.shapes[k], v.shape)])
              for k, v in params.items()}
    big = [t.of_size(r).problem_def for r in t.sizes]
    n_tr, n_all = max(b.n_train for b in big), max(b.n_total for b in big)
    prob = tq.problem_def
    pad = lambda x, n: jnp.pad(x, (0, n - x.shape[0]))
    (a, b), y = prob.train_set(split)
    (ea, eb), ey, is_train = prob.eval_set(split)
    real = jnp.arange(n_all) < prob.n_total
    return params, dict(
        train=(pad(a, n_tr), pad(b, n_tr)), train_y=pad(y, n_tr),
        train_w=(jnp.arange(n_tr) < prob.n_train).astype(t.dtype),
        eval=(pad(ea, n_all), pad(eb, n_all)), eval_y=pad(ey, n_all),
        eval_train=pad(is_train, n_all) & real, eval_test=~pad(is_train, n_all) & real,
        classes=jnp.arange(t.p) < q, which=jnp.asarray(t.sizes.index(q), jnp.int32))

  def _logits(self, model, inputs, data):
    logits = model(*inputs)
    if self.task.sizes is not None:  # classes beyond the run's own modulus do not exist
      logits = jnp.where(data["classes"], logits, -jnp.inf)
    return logits

  def loss(self, params, inputs, y, layernorm=None, data=None):
    """Mean cross-entropy; under a padded Task (`data` given) over the run's own examples
    and classes."""
    if data is None or self.task.sizes is None:
      logits = self.model(params, layernorm)(*inputs)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    logits = self._logits(self.model(params, layernorm), inputs, data)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(ce * data["train_w"]) / jnp.sum(data["train_w"])

  def train_set(self, data):
    if self.task.sizes is not None:
      return data["train"], data["train_y"]
    return self.problem.train_set(data)

  def group_mask(self, params, group: jax.Array):
    """Per leaf, a traced bool: a weight matrix in WEIGHT_GROUPS[group] ("all": every one);
    False (a Python bool) on the vectors."""
    def member(name):
      hits = [group == WEIGHT_GROUPS.index(g) for g, names in self.groups.items() if name in names]
      return functools.reduce(jnp.logical_or, hits, group == 0)
    return {name: member(name) if jnp.ndim(leaf) >= 2 else False for name, leaf in params.items()}

  def check_groups(self, runs: Runs) -> None:
    """Raise ValueError if a run measures, holds or kicks a group this model lacks."""
    used = set(runs.norm_group.tolist()) | set(runs.kick_group[runs.t_kick < NEVER].tolist())
    for g in sorted(used - {0}):
      if not self.groups.get(WEIGHT_GROUPS[g]):
        raise ValueError(f"the {self.task.arch} model has no weight group "
                         f"{WEIGHT_GROUPS[g]!r} (its groups: {', '.join(self.groups)})")

  def _step(self, state, hp):
    inputs, y = self.train_set(state["data"])
    kick_mask = self.group_mask(state["params"], hp["kick_group"])
    norm_mask = self.group_mask(state["params"], hp["norm_group"])
    at_init = (state["step"] == 0) & (hp["t_kick"] == 0)  # a kick at step 0: initial weights
    params = jax.tree.map(lambda p, m: p if m is False else
                          jnp.where(at_init & m, p * hp["kick"].astype(p.dtype), p),
                          state["params"], kick_mask)
    loss, grads = jax.value_and_grad(self.loss)(params, inputs, y, hp["layernorm"], state["data"])
    opt = paper_optimizer(hp["lr"], hp["wd"], hp["target"], hp["start"], hp["stop"],
                          hp["kick"], hp["t_kick"], kick_mask, norm_mask)
    updates, opt_state = opt.update(grads, state["opt"], params)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(weight_norm(new_params, jax.tree.map(lambda _: True, new_params)))
    live = (state["step"] < hp["budget"]) & (state["diverged"] < 0)
    keep = live & finite
    pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)
    return dict(state, params=pick(new_params, params), opt=pick(opt_state, state["opt"]),
                step=state["step"] + keep.astype(jnp.int32),
                diverged=jnp.where(live & ~finite, state["step"], state["diverged"]))

  def evaluate(self, state, hp=None) -> dict[str, jax.Array]:
    """Accuracy, loss, ||W|| and softmax collapse of one run on its whole train and test
    set, and the problem's own metrics (a modular problem's Fourier Gini)."""
    prob, data = self.problem, state["data"]
    model = self.model(state["params"], None if hp is None else hp["layernorm"])
    if self.task.sizes is None:
      inputs, y, is_train = prob.eval_set(data)
      is_test = ~is_train
      n_tr, n_te = prob.n_train, prob.n_test
      metrics = prob.metrics(model)
    else:
      inputs, y, is_train, is_test = data["eval"], data["eval_y"], data["eval_train"], data["eval_test"]
      n_tr, n_te = jnp.sum(is_train), jnp.sum(is_test)
      metrics = jax.lax.switch(data["which"], [
          lambda params, q=q: self.task.of_size(q).problem_def.metrics(self.model(params))
          for q in self.task.sizes], state["params"])
    logits = self._logits(model, inputs, data)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    correct = (jnp.argmax(logits, -1) == y).astype(logits.dtype)
    is_train, is_test = is_train.astype(logits.dtype), is_test.astype(logits.dtype)
    one_hot = softmax_collapsed(logits).astype(logits.dtype)
    return dict(
        train_acc=jnp.sum(correct * is_train) / n_tr,
        test_acc=jnp.sum(correct * is_test) / n_te,
        train_loss=jnp.sum(ce * is_train) / n_tr,
        test_loss=jnp.sum(ce * is_test) / n_te,
        norm=weight_norm(state["params"], None if hp is None else
                         self.group_mask(state["params"], hp["norm_group"])),
        collapse=jnp.sum(one_hot * is_train) / n_tr,
        **metrics,
    )

  def _chunk_one(self, state, hp, n_evals: int):
    def block(state, _):
      state = jax.lax.fori_loop(0, self.task.eval_every, lambda _, s: self._step(s, hp), state)
      return state, self.evaluate(state, hp)
    return jax.lax.scan(block, state, None, length=n_evals)

  def chunk(self, n_evals: int, vmap_width: int | None = None, mesh: Mesh | None = None
            ) -> Callable:
    """Jitted fn(state, hp) -> (state, records[runs, n_evals], (step, diverged)) for a
    batch of runs; the state argument is donated.

    Args:
      n_evals: evaluations per chunk (eval_every steps each).
      vmap_width: runs vectorised together; the program maps over groups of this many
        in sequence (`lax.map`), still one compiled call. None vectorises all runs.
      mesh: a Mesh with a "runs" axis; each device trains its own slice of the run axis
        (`jax.shard_map`: no device ever touches another's runs). None: one device.
    """
    key = (n_evals, vmap_width, mesh)
    if key not in self._chunks:
      per_run = functools.partial(self._chunk_one, n_evals=n_evals)
      if vmap_width is None:
        fn = jax.vmap(per_run)
      elif vmap_width == 1:
        fn = lambda s, h: jax.lax.map(lambda sh: self._skip_idle(per_run, *sh), (s, h))
      else:
        fn = lambda s, h: jax.lax.map(lambda sh: per_run(*sh), (s, h), batch_size=vmap_width)
      if mesh is not None and mesh.size > 1:
        spec = PartitionSpec("runs")
        fn = jax.shard_map(fn, mesh=mesh, in_specs=(spec, spec), out_specs=(spec, spec),
                           check_vma=False)  # runs never talk to each other
      with_status = lambda s, h, fn=fn: self._with_status(*fn(s, h))
      self._chunks[key] = jax.jit(self._precise(with_status), donate_argnums=0)
    return self._chunks[key]

  @staticmethod
  def _with_status(state, records):
    # Step and divergence as outputs of their own: the state is donated to the next chunk,
    # which may be queued before the host reads these.
    return state, records, (state["step"] + 0, state["diverged"] + 0)

  @staticmethod
  def _skip_idle(per_run: Callable, state, hp):
    """per_run for a run with steps left; a padding lane or a run already at its budget
    is returned as it is, without computing (one run at a time, `lax.cond` really skips).
    The records of a skipped lane are zeros and never read."""
    live = (state["step"] < hp["budget"]) & (state["diverged"] < 0) & hp.get("active", True)
    idle = lambda: (state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype),
                                        jax.eval_shape(per_run, state, hp)[1]))
    return jax.lax.cond(live, lambda: per_run(state, hp), idle)

  def _precise(self, fn: Callable) -> Callable:
    """fn traced under the Task's matmul precision."""
    def wrapped(*args):
      with jax.default_matmul_precision(self.task.matmul_precision):
        return fn(*args)
    return wrapped


@functools.lru_cache(maxsize=None)
def program(task: Task) -> Program:
  """The (cached) compiled program of a Task."""
  return Program(task)


# ---------------------------------------------------------------- host loop


@dataclasses.dataclass
class SweepResult:
  """Curves and per-run outcome of a trained grid.

  Attributes:
    task, runs: what was trained.
    steps: int[evals], the step of each evaluation column.
    curves: name -> float[runs, evals]; NaN after a run stopped (budget, retirement).
    last_step: int[runs], steps each run actually trained.
    diverged_step: int[runs], step at which the run became non-finite, -1 if never.
    wall_s: wall-clock seconds of `train`, compilation included.
    lane_steps: steps the compiled program executed summed over batch lanes (lanes frozen
      at their budget included; padding lanes too when runs are vectorised, not when they
      are mapped one at a time, which skips them): the work actually paid for.
  """
  task: Task
  runs: Runs
  steps: np.ndarray
  curves: dict[str, np.ndarray]
  last_step: np.ndarray
  diverged_step: np.ndarray
  wall_s: float = 0.0
  lane_steps: int = 0

  def reduce(self, mem_threshold: float = 0.99, grok_threshold: float = 0.90,
             grok_persist: int = 1):
    """`grokjax.reduce.grok_times` over this grid; adds diverged and final accuracies."""
    c = self.curves
    out = grok_times(self.steps, c["train_acc"], c["test_acc"], c["norm"], self.runs.budget,
                     mem_threshold=mem_threshold, grok_threshold=grok_threshold,
                     grok_persist=grok_persist)
    out["diverged"] = self.diverged_step >= 0
    # a diverged run is neither a grok time nor a censoring time
    out["censored"] = out["censored"] & ~out["diverged"]
    for name in ("train_acc", "test_acc"):
      out[f"final_{name}"] = last_finite(c[name])
    return out


def last_finite(curve: np.ndarray) -> np.ndarray:
  """Per row, the last non-NaN value (NaN for an empty row)."""
  ok = np.isfinite(curve)
  last = curve.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
  return np.where(ok.any(1), curve[np.arange(len(curve)), last], np.nan)


def _bucket(live: int, ndev: int, cap: int, floor: int = 1) -> int:
  """Batch size for `live` runs: ndev times the next power of two (at least `floor` per
  device), never above cap. Powers of two keep the distinct batch sizes, and so the
  compiled programs, of a phase to about log2(runs); padding stays under 50 %."""
  per = max(floor, 1 << max(0, -(-live // ndev) - 1).bit_length())
  return min(ndev * per, cap)


def _spread(sources: np.ndarray, size: int, ndev: int) -> tuple[np.ndarray, np.ndarray]:
  """Lane layout of a batch: `size` lanes, in ndev contiguous blocks (one per device).

  The live entries `sources` are dealt round-robin over the blocks, so every device trains
  the same number of runs (+-1) and none waits for another; the remaining lanes are
  padding (repeating sources[0]). Returns (source of each lane, padding mask).
  """
  per = size // ndev
  take = np.full(size, sources[0])
  pad = np.ones(size, bool)
  j = np.arange(len(sources))
  pos = (j % ndev) * per + j // ndev
  take[pos], pad[pos] = sources, False
  return take, pad


def batch_floor(devices) -> int:
  """Smallest batch per device worth its own program: 1 on a CPU (runs go one by one),
  8 on an accelerator (a vmapped step costs about the same for 1 or 8 runs there, and
  every new size is a compile and an autotune)."""
  return 1 if _all_cpu(devices) else 8


def train(task: Task, runs: Runs, *, chunk_steps: int = 500, retire_margin: int | None = 500,
          grok_threshold: float = 0.90, mem_threshold: float = 0.99, grok_persist: int = 1,
          progress: bool = True,
          devices=None, desc: str | None = None, checkpoint: str | None = None,
          checkpoint_every_s: float = 60.0, vmap_width: int | None | str = "auto",
          overlap: bool | str = "auto", on_rate: Callable[[float], None] | None = None
          ) -> SweepResult:
  """Train every run of a grid; return its curves.

  Args:
    task: the static configuration.
    runs: one row per run.
    chunk_steps: steps per compiled chunk (rounded to a multiple of eval_every); the
      granularity of progress, retirement, checkpoints and batch compaction.
    retire_margin: a run that has memorised and grokked is retired once it is this many
      steps past T_grok; None trains every run to its own budget.
    grok_threshold, mem_threshold, grok_persist: what retirement calls grokked
      (`grokjax.reduce.grok_times`).
    progress: show a progress bar with run-steps/s and ETA on stderr.
    devices: devices to shard the run axis over (default: every device of every process;
      the run axis is padded to a multiple of their number).
    desc: progress-bar label.
    checkpoint: a directory for orbax checkpoints of the whole loop state. When it holds
      one for this same (task, runs), training resumes from it; one for another grid is
      refused with ValueError.
    checkpoint_every_s: seconds between checkpoints (0: after every chunk).
    vmap_width: runs vectorised together inside the compiled chunk of each device; the
      rest are mapped in sequence within the same program. None: all runs vmapped.
      "auto": 1 on CPU devices, where a wide vmap spills the caches (measured: 1.26x more
      run-steps/s at paper scale on 2 cores), else None.
    overlap: queue chunk k + 1 before reading chunk k, so the device never waits for the
      host. A run that chunk k retires has then trained one chunk more, which is dropped:
      the result equals the one without overlap. "auto": on for accelerators, off for CPU
      devices (where the host's share is small and the extra chunk is not free).
    on_rate: called once with (run-steps/s, True) of this training's first chunk that did
      not compile, or, when every chunk compiled, (run-steps/s of the whole call, False):
      time estimates reuse the training's own program instead of timing another.

  Returns:
    A `SweepResult`.
  """
  if task.layernorm != "per_run" and runs.layernorm.any():
    raise ValueError("runs with their own LayerNorm switch need Task(layernorm='per_run')")
  sizes = np.where(runs.size == 0, task.p, runs.size)
  allowed = task.sizes or (task.p,)
  if not np.isin(sizes, allowed).all():
    raise ValueError(f"run sizes {sorted(set(sizes.tolist()) - set(allowed))} are not among the "
                     f"Task's {allowed} (several moduli in one program: Task(sizes=...))")
  which = np.searchsorted(np.array(allowed), sizes).astype(np.int32)
  t0 = time.perf_counter()
  ev = task.eval_every
  chunk_evals = max(1, int(chunk_steps) // ev)
  n = len(runs)
  n_evals = -(-runs.budget // ev)
  budgets = n_evals * ev
  chunk_evals = min(chunk_evals, int(n_evals.max()))  # never longer than the longest budget
  steps = ev * np.arange(1, n_evals.max() + 1)

  devices = list(devices or jax.devices())
  ndev = len(devices)
  mesh = Mesh(np.array(devices), ("runs",))
  sharding = NamedSharding(mesh, PartitionSpec("runs"))
  prog = program(task)
  prog.check_groups(runs)
  width = default_vmap_width(devices) if vmap_width == "auto" else vmap_width
  hp_all = _hparams(dataclasses.replace(runs, budget=budgets), np.dtype(task.dtype))
  fingerprint = _fingerprint(task, runs)
  ckpt = _Checkpoints(checkpoint, fingerprint, ndev) if checkpoint else None

  saved = ckpt.restore() if ckpt else None
  if saved is None:
    seeds = np.array([task.of_size(q).init_seed(w, s, str(st)) for q, w, s, st in
                      zip(sizes, runs.wd, runs.seed, runs.stream)], np.uint32)
    size = _bucket(n, ndev, 1 << 62, batch_floor(devices))
    # lanes[i] is the run trained in batch lane i; padding lanes repeat a live run.
    lanes, pad = _spread(np.arange(n), size, ndev)
    state = prog.init_on(sharding)(seeds[lanes], which[lanes])
    loop = dict(lanes=lanes, pad=pad, live=np.ones(n, bool),
                last_step=np.zeros(n, np.int64), diverged=np.full(n, -1, np.int64),
                curves={k: np.full((n, len(steps)), np.nan, task.dtype) for k in prog.curve_names},
                elapsed=np.float64(0.0), lane_steps=np.int64(0))
  else:
    loop, leaves = saved
    size = len(loop["lanes"])
    treedef = jax.tree.structure(jax.eval_shape(prog.init, jnp.zeros(size, jnp.uint32),
                                                jnp.zeros(size, jnp.int32)))
    state = jax.device_put(jax.tree.unflatten(treedef, leaves), sharding)
  lanes, pad, live = loop["lanes"], loop["pad"], loop["live"]
  last_step, diverged, curves = loop["last_step"], loop["diverged"], loop["curves"]
  elapsed0 = float(loop["elapsed"])

  bar = _progress(int(budgets.sum()), desc) if progress else None
  if bar is not None:
    bar.total -= int(np.sum((budgets - last_step)[~live]))
    bar.update(int(last_step.sum()))
  overlap = (not _all_cpu(devices)) if overlap == "auto" else bool(overlap)
  fn = prog.chunk(chunk_evals, width, mesh)
  chunk_len = chunk_evals * ev
  put_hp = lambda lanes, pad: jax.device_put(
      dict({k: v[lanes] for k, v in hp_all.items()}, active=~pad), sharding)

  def launch(state, hp, lanes, pad):
    """Queue one chunk on the device; return the state it will leave and its ticket."""
    compiles = (fn, len(lanes)) not in prog.seen
    prog.seen.add((fn, len(lanes)))
    state, rec, status = fn(state, hp)
    # the lanes paid for: all of them when vectorised; one at a time, padding is skipped
    paid = len(lanes) if width != 1 else int(np.sum(~pad))
    loop["lane_steps"] = np.int64(loop["lane_steps"] + paid * chunk_len)
    return state, dict(rec=rec, status=status, lanes=lanes, pad=pad, compiles=compiles,
                       t=time.perf_counter())

  # The per-run hyperparameters stay on the device until the lane layout changes.
  hp = put_hp(lanes, pad)
  last_save, t_read, rate_told = time.perf_counter(), None, on_rate is None
  done0 = int(last_step.sum())
  state, flight = launch(state, hp, lanes, pad)
  while flight is not None:
    # Before reading the chunk in flight: a copy of the state it leaves, when a checkpoint
    # is due (saved while the device trains on), and, with overlap, the next chunk queued
    # on the same layout unless every run in it will be at its budget.
    snapshot = None
    if ckpt and time.perf_counter() - last_save >= checkpoint_every_s:
      snapshot = _copy(state), lanes, pad  # in the layout of `state`, perhaps compacted
    ahead = None
    if overlap:
      rl = lanes[~pad]
      if np.any(live[rl] & (last_step[rl] + chunk_len < budgets[rl])):
        state, ahead = launch(state, hp, lanes, pad)
    rec, (step_now, div_now) = to_host((flight["rec"], flight["status"]))
    t_prev, t_read = t_read, time.perf_counter()
    # Only runs still live when this chunk was read take its records: with overlap, a run
    # retired by the chunk before was trained once more and that chunk is dropped, so the
    # result is the same as without.
    real = np.flatnonzero(~flight["pad"] & live[flight["lanes"]])
    run = flight["lanes"][real]
    for lane, r in zip(real, run):
      start = last_step[r] // ev
      stop = min(start + chunk_evals, n_evals[r])
      for k in curves:
        curves[k][r, start:stop] = rec[k][lane, : stop - start]
    trained = int(np.sum(step_now[real] - last_step[run]))
    last_step[run] = step_now[real]
    diverged[run] = div_now[real]
    if not rate_told and not flight["compiles"] and t_prev is not None and trained:
      # Run-steps/s of the training's own program, read to read (the host's share in), from
      # the first chunk that did not compile.
      on_rate(trained / max(t_read - t_prev, 1e-9), True)
      rate_told = True

    finished = (last_step >= budgets) | (diverged >= 0)
    if retire_margin is not None:
      res = grok_times(steps, curves["train_acc"], curves["test_acc"], curves["norm"], budgets,
                       mem_threshold=mem_threshold, grok_threshold=grok_threshold,
                       grok_persist=grok_persist)
      finished |= res["grokked"] & res["memorised"] & (last_step >= res["t_grok"] + retire_margin)
    if bar is not None:
      bar.total -= int(np.sum((budgets - last_step)[finished & live]))
      bar.update(trained)
      bar.set_postfix(live=int((~finished).sum()))
    live[:] = ~finished
    if snapshot is not None:
      saved_state, saved_lanes, saved_pad = snapshot
      loop.update(lanes=saved_lanes, pad=saved_pad,
                  elapsed=np.float64(elapsed0 + time.perf_counter() - t0))
      ckpt.save(int(last_step.sum()), loop, saved_state)
      last_save = time.perf_counter()
    if not live.any():
      flight = None
      continue
    # Retired runs leave the batch; `state` is the one after the last queued chunk, whose
    # layout is `lanes` (the chunk just read, or the one queued ahead of it).
    keep = np.flatnonzero(live[lanes] & ~pad)
    _, first = np.unique(lanes[keep], return_index=True)
    keep = keep[np.sort(first)]
    # Runs mapped one at a time skip a finished lane for free (`Program._skip_idle`): the
    # batch keeps its size, so no new program is compiled; the live runs are still dealt
    # evenly over the devices. Vectorised lanes cost compute: those batches shrink.
    new_size = size if width == 1 else _bucket(len(keep), ndev, size, batch_floor(devices))
    if new_size < size or len(keep) < np.sum(~pad):
      take, pad = _spread(keep, new_size, ndev)
      lanes, size = lanes[take], new_size
      state = _compact(state, jax.device_put(take, sharding), sharding)
      hp = put_hp(lanes, pad)
    if ahead is None:
      state, ahead = launch(state, hp, lanes, pad)
    flight = ahead
  if bar is not None:
    bar.close()
  if ckpt:
    ckpt.close()
  if not rate_told and last_step.sum() > done0:  # every chunk compiled: the whole, compiles in
    on_rate((last_step.sum() - done0) / (time.perf_counter() - t0), False)
  wall = elapsed0 + time.perf_counter() - t0
  return SweepResult(task, runs, steps, curves, last_step, diverged, wall,
                     int(loop["lane_steps"]))


@jax.jit
def _copy(state):
  """A copy in new buffers (the original is about to be donated to the next chunk)."""
  return jax.tree.map(jnp.copy, state)


@functools.partial(jax.jit, static_argnums=2)
def _compact(state, take, sharding):
  """The rows `take` of every leaf of a batch: one compiled gather per pair of sizes."""
  return jax.lax.with_sharding_constraint(jax.tree.map(lambda x: x[take], state), sharding)


def _all_cpu(devices) -> bool:
  return all(d.platform == "cpu" for d in devices)


def default_vmap_width(devices) -> int | None:
  """1 on CPU devices (runs one by one within each), None (vectorise) elsewhere; see `train`."""
  return 1 if _all_cpu(devices) else None


def chunk_rate(task: Task, n_runs: int, n_evals: int, *, reps: int = 1, clamp: bool = False,
               vmap_width: int | None | str = "auto", devices=None) -> float:
  """Run-steps per second of one compiled chunk of n_evals evaluations, timed `reps` times
  after compiling, for n_runs runs (rounded up to the device count) split over `devices`
  as `train` splits them. clamp: every run holds ||W|| = 50 from its first step."""
  devices = list(devices or jax.devices())
  n_runs = -(-n_runs // len(devices)) * len(devices)
  mesh = Mesh(np.array(devices), ("runs",))
  sharding = NamedSharding(mesh, PartitionSpec("runs"))
  prog = program(task)
  runs = Runs(np.arange(n_runs), 1e-3, 1.0, 50.0 if clamp else np.nan, 0 if clamp else NEVER,
              10 ** 7)
  hp = jax.device_put(_hparams(runs, np.dtype(task.dtype)), sharding)
  state = prog.init_on(sharding)(np.arange(n_runs, dtype=np.uint32))
  width = default_vmap_width(devices) if vmap_width == "auto" else vmap_width
  fn = prog.chunk(n_evals, width, mesh)
  state, *_ = fn(state, hp)
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for _ in range(reps):
    state, *_ = fn(state, hp)
  jax.block_until_ready(state)
  return n_runs * n_evals * task.eval_every * reps / (time.perf_counter() - t0)


def use_cpu_cores(n: int | None = None) -> bool:
  """Split the host CPU into `n` JAX devices (default: $GROKJAX_CPU_DEVICES, else one
  per available core).

  On a CPU one run's full-batch step is too small to keep several cores busy, so the
  engine runs best with one device per core, each training its own runs
  (`python benchmarks/throughput.py`: 1.4x at paper scale on 2 cores). Must be called
  before JAX first computes anything; returns False, changing nothing, when that is too
  late or when the user already chose a device count (XLA_FLAGS or jax config).
  """
  if n is None and os.environ.get("GROKJAX_CPU_DEVICES"):
    text = os.environ["GROKJAX_CPU_DEVICES"]
    if not text.strip().isdigit() or int(text) < 1:
      raise ValueError(f"GROKJAX_CPU_DEVICES={text!r}: need a whole number of devices >= 1")
    n = int(text)
  if n is None:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return False
  try:
    if int(jax.config.jax_num_cpu_devices) > 0:
      return False
    jax.config.update("jax_num_cpu_devices", int(n))
  except (RuntimeError, AttributeError):
    return False
  return True


def request_determinism() -> None:
  """Ask XLA for deterministic GPU kernels (before JAX starts): scatter-adds without
  atomics and fixed GEMM algorithms, so reruns and resumes agree bit for bit on a GPU.
  On a CPU grokjax is deterministic without it."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_gpu_deterministic_ops" not in flags:
    os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()


def enable_compilation_cache(path: str | None = None) -> str:
  """Keep compiled programs on disk, so a second identical invocation skips compiling.

  Default folder: $GROKJAX_CACHE, else $XDG_CACHE_HOME/grokjax/xla (~/.cache/grokjax/xla).
  Returns the folder used.
  """
  if path is None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.environ.get("GROKJAX_CACHE") or os.path.join(base, "grokjax", "xla")
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def to_host(tree):
  """Numpy copies of a (possibly sharded) pytree; across hosts, every process gets it all."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def maybe_initialize_distributed() -> bool:
  """`jax.distributed.initialize()` when the environment asks for several processes.

  It asks by setting JAX_COORDINATOR_ADDRESS (with JAX_NUM_PROCESSES and JAX_PROCESS_ID),
  or GROKJAX_DISTRIBUTED=1 on a cluster JAX detects by itself (SLURM, Cloud TPU).
  """
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    # JAX reads the address from the environment itself, but not the other two.
    number = lambda k: int(env[k]) if env.get(k) else None
    jax.distributed.initialize(env["JAX_COORDINATOR_ADDRESS"], number("JAX_NUM_PROCESSES"),
                               number("JAX_PROCESS_ID"))
    return True
  if env.get("GROKJAX_DISTRIBUTED") == "1":
    jax.distributed.initialize()
    return True
  return False


# Bumped whenever the per-run state's layout changes, so that a checkpoint of an older
# grokjax is refused with a message instead of restored into the wrong shapes.
# 2: the training data in the state (problems); 3: the MLP's W2 stored [p, H].
STATE_LAYOUT = 3


def _fingerprint(task: Task, runs: Runs) -> str:
  h = hashlib.sha256(f"layout {STATE_LAYOUT}|".encode())
  h.update(repr(dataclasses.asdict(task)).encode())
  for f in dataclasses.fields(runs):
    h.update(np.ascontiguousarray(getattr(runs, f.name)).tobytes())
  return h.hexdigest()


class _Checkpoints:
  """The loop state of `train` in an orbax CheckpointManager, tagged with its grid, the
  device count its batch layout was made for, and a SHA-256 of its content, so that a
  damaged checkpoint or one of another layout is refused instead of resumed."""

  def __init__(self, directory: str, fingerprint: str, n_devices: int = 1):
    import orbax.checkpoint as ocp
    self._ocp = ocp
    self.fingerprint = np.frombuffer(bytes.fromhex(fingerprint), np.uint8)
    self.n_devices = int(n_devices)
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False))

  @staticmethod
  def digest(tree) -> np.ndarray:
    """SHA-256 over every array of the tree (keys sorted; dtype, shape and bytes)."""
    h = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(tree)[0],
                             key=lambda kv: jax.tree_util.keystr(kv[0])):
      a = np.ascontiguousarray(np.asarray(leaf))
      h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
      h.update(a.tobytes())
    return np.frombuffer(h.digest(), np.uint8)

  def restore(self):
    step = self.manager.latest_step()
    if step is None:
      return None
    where = f"checkpoint in {self.manager.directory}"
    try:
      tree = self.manager.restore(step)
    except Exception as e:  # orbax and tensorstore raise many kinds for a damaged file
      raise ValueError(f"{where} cannot be read ({type(e).__name__}); delete it (the phase "
                       "restarts) or use --force-new") from None
    if not np.array_equal(np.asarray(tree["fingerprint"]), self.fingerprint):
      raise ValueError(f"{where} belongs to another grid, or "
                       "to a grokjax whose state layout differs (train.STATE_LAYOUT)")
    saved_devices = int(tree.get("n_devices", self.n_devices))
    if saved_devices != self.n_devices:
      raise ValueError(f"{where} was made on {saved_devices} devices and this process has "
                       f"{self.n_devices}: resume with the same count (on a CPU, "
                       f"GROKJAX_CPU_DEVICES={saved_devices}) or use --force-new")
    body = {k: v for k, v in tree.items() if k != "digest"}
    if "digest" in tree and not np.array_equal(np.asarray(tree["digest"]), self.digest(body)):
      raise ValueError(f"{where} is damaged (its content does not match the SHA-256 saved "
                       "with it); delete it (the phase restarts) or use --force-new")
    loop = {k: v for k, v in tree.items()
            if k not in ("fingerprint", "state", "n_devices", "digest")}
    return loop, list(tree["state"])

  def save(self, step: int, loop: dict, state) -> None:
    if step in self.manager.all_steps():
      return  # nothing trained since that save (a resume of a finished state): it stands
    tree = dict(loop, fingerprint=self.fingerprint, n_devices=np.int64(self.n_devices),
                state=to_host(jax.tree.leaves(state)))
    tree["digest"] = self.digest(tree)
    self.manager.save(step, args=self._ocp.args.StandardSave(tree), force=True)
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def _progress(total: int, desc: str | None):
  from tqdm.auto import tqdm
  return tqdm(total=total, desc=desc or "training", unit="run-step", unit_scale=True,
              dynamic_ncols=True, smoothing=0.1)
