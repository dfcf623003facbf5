"""The two halves of a grid, and what training one returns.

A grid is a `Task` (everything static: shapes, architecture, evaluation interval; one
compiled program per distinct Task) and `Runs` (one row per run: seed index, learning rate,
weight decay, held norm, clamp start, budget, ...). `hparams` turns Runs into the arrays the
compiled step reads; `SweepResult` holds the curves a grid leaves.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, NamedTuple

import chex
import numpy as np
from flax import nnx

from grokjax import problems
from grokjax.engine.losses import LOSSES
from grokjax.engine.optim import NEVER
from grokjax.engine.reduce import GrokTimes, grok_times

ARCHS = ("mlp", "transformer")


# Weight groups of a model (its `GROUPS`, plus "all"): what a run's norm measures and its
# clamp holds (`Runs.norm_group`), and what a kick scales (`Runs.kick_group`).
WEIGHT_GROUPS = ("all", "embedding", "hidden", "output", "attention", "mlp")


KICK_GROUPS = WEIGHT_GROUPS[:4]  # the groups norm_interventions kicks (every model has them)


MATMUL_PRECISIONS = ("float32", "tensorfloat32", "bfloat16")


# The curves of a modular problem; a grid's own are whatever `Program.evaluate` returns
# (`Program.curve_names`), so a new metric needs no second list.
CURVES = ("train_acc", "test_acc", "train_loss", "test_loss", "norm", "collapse", "floor",
          "floor_f32", "floor_err", "gini")


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
      the unpadded run, up to float32 rounding (`tests/engine/test_train.py`).
    loss: the training loss, one of `grokjax.engine.losses.LOSSES`: "cross_entropy" (the
      framework's, the default), "log_softmax" (the authors' PyTorch form), "exact" (an
      exact-gradient cross-entropy that no rounding floors), "float32_floor" (float32's
      absorption applied on purpose, for float64 runs).
    noise: compile the per-run parameter noise (`Runs.noise`); off, the step has none.
    temperature: compile the per-run output temperature (`Runs.temperature`): the logits
      are divided by it in the loss and every evaluation; off, the program has none.
    momentum: compile the per-run momentum of the base update (`Runs.momentum`: SGD's
      momentum, AdamW's and Lion's b1, Muon's beta); off, the optimizer spec's alone.
    optimizer: the base update, NAME[:k=v,...] of `grokjax.engine.optim.OPTIMIZERS`
      ("adamw", the paper's and the default; "sgd", "lion", "muon"), its learning rate and
      weight decay per run; the clamp and the kick follow it as always.
    grad_transform: a gradient transform before it, NAME[:k=v,...] of
      `grokjax.engine.optim.GRAD_TRANSFORMS` ("none"; "grokfast", "orthogonal": ⊥Grad).
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
  loss: str = "cross_entropy"
  noise: bool = False
  temperature: bool = False
  momentum: bool = False
  optimizer: str = "adamw"
  grad_transform: str = "none"

  def __post_init__(self):
    from grokjax.engine.optim import GRAD_TRANSFORMS, OPTIMIZERS, parse_spec
    parse_spec(self.optimizer, OPTIMIZERS, "optimizer")
    parse_spec(self.grad_transform, GRAD_TRANSFORMS, "gradient transform")
    if self.loss not in LOSSES:
      raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
    for flag in ("noise", "temperature", "momentum"):
      if not isinstance(getattr(self, flag), bool):
        raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
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
  def grokfast(self) -> bool:
    """Whether the gradient transform is Grokfast (whose alpha and lambda a run may set)."""
    from grokjax.engine.optim import GRAD_TRANSFORMS, parse_spec
    return parse_spec(self.grad_transform, GRAD_TRANSFORMS, "gradient transform")[0] == "grokfast"

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
    noise: k, the amplitude of Gaussian noise added to every parameter after every update,
      k * 2^-24 * abs(theta) (float32's relative rounding scale) per parameter and step, drawn
      from a key stream of its own (never the seed's init or split); 0: none. Needs
      `Task(noise=True)`.
    temperature: T > 0, the output temperature: the run's logits are z / T (1: none).
      Needs `Task(temperature=True)` unless 1.
    momentum: the run's own momentum of the base update in [0, 1) (SGD's momentum, AdamW's
      and Lion's b1, Muon's beta) under `Task(momentum=True)`; NaN (the default): the
      optimizer spec's. Traced, so a sweep over it is one program.
    grokfast_alpha, grokfast_lamb: the run's own Grokfast EMA coefficient (0 <= alpha < 1)
      and amplification (lambda >= 0) under `Task(grad_transform="grokfast...")`; NaN (the
      default): the Task's. Traced, so a sweep over them is one program.
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
  noise: np.ndarray | float = 0.0
  temperature: np.ndarray | float = 1.0
  grokfast_alpha: np.ndarray | float = np.nan
  grokfast_lamb: np.ndarray | float = np.nan
  momentum: np.ndarray | float = np.nan

  def __post_init__(self):
    n = len(np.atleast_1d(self.seed))
    for f in dataclasses.fields(self):
      arr = np.broadcast_to(np.asarray(getattr(self, f.name)), (n,)).copy()
      setattr(self, f.name, arr)
    for f in ("seed", "t_int", "budget", "t_stop", "t_kick", "kick_group", "norm_group", "size"):
      setattr(self, f, getattr(self, f).astype(np.int64))
    for f in ("lr", "wd", "target_norm", "kick", "noise", "temperature", "grokfast_alpha",
              "grokfast_lamb", "momentum"):
      setattr(self, f, getattr(self, f).astype(np.float64))
    self.layernorm = self.layernorm.astype(bool)
    if n == 0:
      raise ValueError("a grid needs at least one run")
    if np.any(self.lr <= 0) or not np.all(np.isfinite(self.lr)):
      raise ValueError(f"learning rates must be finite and > 0, got {self.lr}")
    if np.any(self.wd < 0):
      raise ValueError(f"weight decay must be >= 0, got {self.wd}")
    if np.any(~(self.noise >= 0)) or not np.all(np.isfinite(self.noise)):
      raise ValueError(f"noise amplitudes must be finite and >= 0, got {self.noise}")
    if np.any(~(self.temperature > 0)) or not np.all(np.isfinite(self.temperature)):
      raise ValueError(f"temperatures must be finite and > 0, got {self.temperature}")
    m = self.momentum
    if np.any(~np.isnan(m) & ~((m >= 0) & (m < 1))):
      raise ValueError(f"a momentum must be in [0, 1) (NaN: the optimizer's), got {m}")
    a, lam = self.grokfast_alpha, self.grokfast_lamb
    if np.any(~np.isnan(a) & ~((a >= 0) & (a < 1))):
      raise ValueError(f"Grokfast's alpha must be in [0, 1) (NaN: the Task's), got {a}")
    if np.any(~np.isnan(lam) & ~((lam >= 0) & np.isfinite(lam))):
      raise ValueError(f"Grokfast's lambda must be finite and >= 0 (NaN: the Task's), got {lam}")
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


class HParams(NamedTuple):
  """The per-run hyperparameters as the compiled step reads them (a pytree: one array per
  field, [runs] on the host, a scalar inside the vmapped step). The fields are `Runs'`, under
  the same names, in the program's dtypes: target_norm (a free run's NaN read as 1.0, the
  clamp being off), t_int and t_stop (NEVER capped to int32);
  active is False on a padding lane; noise is `Runs.noise` (read under Task(noise=True));
  grokfast_alpha, grokfast_lamb and momentum -1 where the Task's apply (Runs' NaN)."""
  lr: Any
  wd: Any
  target_norm: Any
  t_int: Any
  t_stop: Any
  kick: Any
  t_kick: Any
  kick_group: Any
  norm_group: Any
  budget: Any
  layernorm: Any
  active: Any
  noise: Any
  temperature: Any
  grokfast_alpha: Any
  grokfast_lamb: Any
  momentum: Any


def hparams(runs: Runs, dtype, active=None) -> HParams:
  """The `HParams` of a grid's runs; active: which lanes are real (default all)."""
  return HParams(lr=runs.lr.astype(dtype), wd=runs.wd.astype(dtype),
                 target_norm=np.nan_to_num(runs.target_norm, nan=1.0).astype(dtype),
                 t_int=np.minimum(runs.t_int, NEVER).astype(np.int32),
                 t_stop=np.minimum(runs.t_stop, NEVER).astype(np.int32),
                 kick=runs.kick.astype(dtype), t_kick=np.minimum(runs.t_kick, NEVER).astype(np.int32),
                 kick_group=runs.kick_group.astype(np.int32),
                 norm_group=runs.norm_group.astype(np.int32),
                 budget=runs.budget.astype(np.int32), layernorm=runs.layernorm.astype(bool),
                 active=np.ones(len(runs), bool) if active is None else np.asarray(active, bool),
                 noise=runs.noise.astype(dtype), temperature=runs.temperature.astype(dtype),
                 # -1, not NaN, for the Task's own: NaN is unequal to itself, and a grid
                 # put on the devices of several processes must be equal on each
                 grokfast_alpha=np.nan_to_num(runs.grokfast_alpha, nan=-1.0).astype(dtype),
                 grokfast_lamb=np.nan_to_num(runs.grokfast_lamb, nan=-1.0).astype(dtype),
                 momentum=np.nan_to_num(runs.momentum, nan=-1.0).astype(dtype))


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
    params: leaf name -> float[runs, ...], the parameters `train` kept of each run: at its
      last_step (keep_params="final") or at its T_grok (keep_params="grok"; NaN for a run
      that never grokked); else None. A padded Task's are zero-padded to its largest size.
    trajectory: leaf name -> float[runs, saves, ...], with keep_params="every:N" each
      run's parameters at trajectory_steps (N, 2N, ...; NaN past the step it stopped at);
      else None.
    trajectory_steps: int[saves], or None.
  """
  task: Task
  runs: Runs
  steps: np.ndarray
  curves: dict[str, np.ndarray]
  last_step: np.ndarray
  diverged_step: np.ndarray
  wall_s: float = 0.0
  lane_steps: int = 0
  params: dict[str, np.ndarray] | None = None
  trajectory: dict[str, np.ndarray] | None = None
  trajectory_steps: np.ndarray | None = None

  def __post_init__(self):
    """The engine's output contract: one row per run, one column per evaluation."""
    n = len(self.runs)
    chex.assert_shape([self.last_step, self.diverged_step], (n,))
    chex.assert_shape(list(self.curves.values()), (n, len(self.steps)))
    if self.params is not None:
      chex.assert_tree_shape_prefix(self.params, (n,))
    if self.trajectory is not None:
      chex.assert_tree_shape_prefix(self.trajectory, (n, len(self.trajectory_steps)))

  def reduce(self, mem_threshold: float = 0.99, grok_threshold: float = 0.90,
             grok_persist: int = 1) -> GrokTimes:
    """`grokjax.engine.reduce.grok_times` over this grid, its diverged runs included."""
    c = self.curves
    return grok_times(self.steps, c["train_acc"], c["test_acc"], c["norm"], self.runs.budget,
                      mem_threshold=mem_threshold, grok_threshold=grok_threshold,
                      grok_persist=grok_persist, diverged=self.diverged_step >= 0)

