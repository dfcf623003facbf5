"""Experiment configurations: the resolved `Config` a results folder records, and the
shared bases and overlays of every experiment's presets.

`registry.resolve(experiment, preset, **overrides)` is the one way to a Config: the
experiment's preset (built on `PAPER`, `QUICK` or `SMOKE`), the architecture's
(`TRANSFORMER`) and the problem family's (`PROBLEM_PRESETS`) overlays, then every flag given.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from grokjax.engine.spec import Task
from grokjax.harness import io


# The shared bases of every experiment's presets (each experiment's module names its own
# moduli, seeds, learning rates and held norms over one of these: `registry.Experiment`).
# Budget anchors: steps per rho (the key "free" for free runs), scaled by max(1, p / ref_p)
# and log-interpolated in rho between anchors. The paper's are SPEC.md's moduli-scan
# budgets; quick's are about 3x the times measured with the quick model at p = 47.
PAPER = dict(d=128, hidden=256, frac=0.40, wd=1.0, t_int=500, eval_every=10, ref_p=59,
             chunk_steps=200, retire_margin=500,
             budgets={"free": 30000, 0.85: 15000, 1.00: 25000, 1.15: 80000, 1.30: 160000})
QUICK = dict(d=32, hidden=128, frac=0.40, wd=1.0, t_int=100, eval_every=10, ref_p=47,
             chunk_steps=500, retire_margin=200,
             budgets={"free": 5000, 0.85: 6000, 1.00: 6000, 1.15: 12000, 1.30: 24000})
SMOKE = dict(d=16, hidden=64, frac=0.80, wd=1.0, t_int=40, eval_every=10, ref_p=23,
             chunk_steps=200, retire_margin=0,
             budgets={"free": 600, 0.85: 600, 1.30: 600})
PRESET_NAMES = ("paper", "quick", "smoke")

# The per-run hyperparameters a --scan sweeps in one program: the `Runs` field (its values'
# ranges are Runs' rules) -> what the Task needs for it ("" for nothing but the Task switch
# `Config.task` turns on).
SCAN_AXES = {"temperature": "", "momentum": "",
             "grokfast_alpha": "grokfast", "grokfast_lamb": "grokfast"}

# Sparse parity (--problem sparse_parity, or experiments/sparse_parity.py): the authors'
# model and optimiser (n = 30 bits, m = 1000, MLP 30 -> 512 -> 2, lr 1e-3, weight decay 1,
# t_int 1000) replace the modular ones in every experiment. Budgets: the authors' 50k; quick
# about 2x their slowest grokking cells (lr 5e-4: 6637 steps; rho 1.30: 2.47 x 2648), 8 seeds.
PARITY = dict(moduli=[30], train_size=1000, d=128, frac=0.40, hidden=512, arch="mlp",
              lrs=[1e-3], wd=1.0, t_int=1000, eval_every=10, ref_p=30, chunk_steps=500,
              retire_margin=500, rhos=[0.90, 1.30])
PROBLEM_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "sparse_parity": {
        "paper": dict(PARITY, seeds=16, budgets={"free": 50000}),
        "quick": dict(PARITY, seeds=8, budgets={"free": 15000}),
        "smoke": dict(PARITY, moduli=[12], train_size=300, hidden=64, lrs=[1e-2], t_int=100,
                      seeds=2, retire_margin=0, chunk_steps=200, budgets={"free": 1500}),
    },
}

# With --arch transformer these replace the preset's model and optimisation values. The
# paper's: SPEC.md's attention model (d 128, 4 heads, MLP 512, lr 5e-4, t_int 600) with
# budgets about 2x its reported times (718 / 6608 / 73966 / 99920 at rho 0.85 ... 1.20).
TRANSFORMER: dict[str, dict[str, Any]] = {
    "paper": dict(d=128, hidden=512, heads=4, lrs=[5e-4], t_int=600,
                  budgets={"free": 40000, 0.85: 10000, 1.00: 20000, 1.15: 150000, 1.20: 200000}),
    "quick": dict(d=32, hidden=128, heads=4, lrs=[3e-3], t_int=200,
                  budgets={"free": 8000, 0.85: 8000, 1.00: 8000, 1.10: 24000, 1.30: 60000}),
    "smoke": dict(d=16, hidden=32, heads=4, lrs=[1e-2], t_int=40,
                  budgets={"free": 600, 0.85: 600, 1.30: 600}),
}


@dataclasses.dataclass(frozen=True)
class Config:
  """A fully resolved experiment configuration (what config.json records); frozen: a
  changed configuration is a new one (`dataclasses.replace`), never an edited one."""
  experiment: str
  preset: str
  moduli: list[int]
  seeds: int
  lrs: list[float]
  rhos: list[float]
  wd: float
  frac: float
  d: int
  hidden: int
  t_int: int
  eval_every: int
  ref_p: int
  chunk_steps: int
  retire_margin: int | None
  budgets: dict[str, int]
  steps: int | None = None
  arch: str = "mlp"
  heads: int = 4
  layernorm: bool = False
  norm_group: str = "all"  # the weight group whose norm is measured and held (WEIGHT_GROUPS)
  dtype: str = "float32"
  grok_threshold: float = 0.90
  mem_threshold: float = 0.99
  n_boot: int = 1000
  wc_from: str | None = None
  wc_min_grok_fraction: float = 0.75
  grok_persist: int = 1
  matmul_precision: str = "float32"
  hold_rhos: list[float] | None = None  # norm_interventions: sustained holds
  kick: float = 0.8  # norm_interventions: one-shot factor of a weight group
  scales: list[float] | None = None  # free_norm_delay: initial-weight scales s
  fit_rhos: list[float] | None = None  # pinned_norm: [lo, hi], the delay law's fitting range
  kick_at: int = 0  # free_norm_delay: the step at which the weights are scaled by s
  wds: list[float] | None = None  # free_norm_delay: weight decays (default [wd])
  clamp_from: str | None = None  # free_norm_delay: a pinned_norm folder for the figure
  problem: str = "add"  # a grokjax.problems spec; the moduli are its sizes
  train_size: int | None = None  # training examples per seed instead of frac
  train_sizes: list[int] | None = None  # sparse_parity: the m scan
  # The sample the seed indices are drawn from (`Runs.stream`); `resolve` names it after
  # the experiment, "" is the stream every experiment shared before streams existed.
  seed_stream: str | None = None
  # "final": each run's parameters as it stops, "grok": at its T_grok; in params/
  save_params: str = "none"
  loss: str = "cross_entropy"  # the training loss (grokjax.engine.losses.LOSSES)
  noise: float = 0.0  # k: parameter noise k * 2^-24 * |theta| per step (Runs.noise)
  temperature: float = 1.0  # the output temperature of every run (Runs.temperature)
  optimizer: str = "adamw"  # the base update, NAME[:k=v,...] (grokjax.engine.optim.OPTIMIZERS)
  grad_transform: str = "none"  # a gradient transform before it (optim.GRAD_TRANSFORMS)
  arms: list[str] | None = None  # precision: the arithmetic arms (grokjax.experiments.precision)
  # free_training, pinned_norm: {axis: values}, one per-run hyperparameter scanned in one
  # program (SCAN_AXES)
  scan: dict[str, list[float]] | None = None

  def budget(self, rho: float | None, p: int) -> int:
    """Step budget of a cell: --steps if given, else the preset's anchors (see above)."""
    if self.steps is not None:
      raw = self.steps
    else:
      anchors = {float(k): v for k, v in self.budgets.items() if k != "free"}
      if rho is None or not anchors:  # presets without rho anchors give every cell one budget
        raw = self.budgets["free"]
      else:
        xs = sorted(anchors)
        ys = [math.log(anchors[x]) for x in xs]
        if len(xs) == 1:
          raw = anchors[xs[0]]
        else:  # log-linear through the anchors, extended beyond them
          i = int(np.clip(np.searchsorted(xs, rho) - 1, 0, len(xs) - 2))
          slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
          raw = math.exp(ys[i] + slope * (rho - xs[i]))
      raw *= max(1.0, p / self.ref_p)
    return int(math.ceil(raw / self.eval_every) * self.eval_every)

  def task(self, p: int, layernorm: bool | None = None) -> Task:
    return Task(p=p, frac=self.frac, d=self.d, hidden=self.hidden, arch=self.arch,
                layernorm=self.layernorm if layernorm is None else layernorm,
                eval_every=self.eval_every, dtype=self.dtype, heads=self.heads,
                matmul_precision=self.matmul_precision, problem=self.problem,
                train_size=self.train_size, loss=self.loss, noise=self.noise > 0,
                temperature=self.temperature != 1.0 or self.scan_axis == "temperature",
                momentum=self.scan_axis == "momentum", optimizer=self.optimizer,
                grad_transform=self.grad_transform)

  # The training choices and their paper values: what `choices` names where they differ.
  PAPER_CHOICES = (("optimizer", "adamw"), ("grad_transform", "none"), ("loss", "cross_entropy"),
                   ("temperature", 1.0), ("noise", 0.0), ("dtype", "float32"),
                   ("matmul_precision", "float32"))

  def choices(self) -> dict[str, Any]:
    """The training choices this configuration makes differently from the paper (the plan
    line names them; empty for the paper's own training)."""
    return {k: getattr(self, k) for k, paper in self.PAPER_CHOICES if getattr(self, k) != paper}

  @property
  def scan_axis(self) -> str | None:
    """The per-run hyperparameter a --scan sweeps (a key of SCAN_AXES), or None."""
    return next(iter(self.scan)) if self.scan else None

  @property
  def scan_values(self) -> list[float]:
    """The values a --scan takes (empty without one)."""
    return next(iter(self.scan.values())) if self.scan else []

  @property
  def scan_home(self) -> float | None:
    """The --scan value whose results are the headline: the value every run would take
    without the scan (`own_value`) where the scan has it, else its first value; None
    without a scan."""
    if not self.scan:
      return None
    own = self.own_value(self.scan_axis)
    return next((v for v in self.scan_values if np.isclose(v, own)), self.scan_values[0])

  def own_value(self, axis: str) -> float:
    """The configuration's own value of a per-run hyperparameter (a key of SCAN_AXES): its
    temperature, its optimiser's momentum option (`optim.MOMENTUM_OPTION`), its Grokfast
    alpha or lambda (NaN where its gradient transform has none)."""
    from grokjax.engine.optim import GRAD_TRANSFORMS, MOMENTUM_OPTION, OPTIMIZERS, parse_spec
    if axis == "temperature":
      return self.temperature
    if axis == "momentum":
      name, options = parse_spec(self.optimizer, OPTIMIZERS, "optimizer")
      return options[MOMENTUM_OPTION[name]]
    _, options = parse_spec(self.grad_transform, GRAD_TRANSFORMS, "gradient transform")
    return options.get(axis.removeprefix("grokfast_"), float("nan"))

  def needs_x64(self) -> bool:
    """Whether a run of this configuration computes in float64 (JAX's x64 mode on)."""
    return self.dtype == "float64" or any(a.startswith("float64") for a in self.arms or [])

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["budgets"] = {str(k): v for k, v in self.budgets.items()}
    return out


def as_written(saved: dict[str, Any]) -> dict[str, Any]:
  """The configuration a results folder's config.json records (its "config"), read as
  today's Config: a field added after the folder was written reads as the value that folder
  ran with, its default, and `seed_stream`, added with seed streams, as "" (the stream every
  experiment shared before). Every comparison of a folder with a configuration (a resume,
  a claim's folder, a --wc-from source) reads it through here."""
  defaults = {f.name: io.plain(f.default) for f in dataclasses.fields(Config)
              if f.default is not dataclasses.MISSING}
  return {**defaults, "seed_stream": "", **saved}
