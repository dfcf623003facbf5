"""The paper's experiments as library code: presets, grids, phases, tables.

Experiment scripts only parse flags into a `Config` and call one function here. A
`Session` owns a results folder: it writes config.json, refuses to resume under a
changed configuration, caches finished training phases and checkpoints running ones,
so re-running the same command continues where a killed one stopped.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import shutil
import time
from typing import Any, Sequence

import numpy as np

from grokjax import io
from grokjax.train import CURVES, Runs, SweepResult, Task, train  # noqa: F401 (CURVES re-exported)

EXPERIMENTS = ("free_training", "pinned_norm", "norm_vs_lr", "layernorm_ablation",
               "norm_interventions", "free_norm_delay", "sparse_parity")

# Budget anchors: steps per rho (the key "free" for free runs), scaled by max(1, p / ref_p)
# and log-interpolated in rho between anchors. The paper's are SPEC.md's moduli-scan
# budgets; quick's are about 3x the times measured with the quick model at p = 47.
_PAPER = dict(d=128, hidden=256, frac=0.40, wd=1.0, t_int=500, eval_every=10, ref_p=59,
              chunk_steps=200, retire_margin=500,
              budgets={"free": 30000, 0.85: 15000, 1.00: 25000, 1.15: 80000, 1.30: 160000})
_QUICK = dict(d=32, hidden=128, frac=0.40, wd=1.0, t_int=100, eval_every=10, ref_p=47,
              chunk_steps=500, retire_margin=200,
              budgets={"free": 5000, 0.85: 6000, 1.00: 6000, 1.15: 12000, 1.30: 24000})
_SMOKE = dict(d=16, hidden=64, frac=0.80, wd=1.0, t_int=40, eval_every=10, ref_p=23,
              chunk_steps=200, retire_margin=0,
              budgets={"free": 600, 0.85: 600, 1.30: 600})

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "free_training": dict(_PAPER, moduli=[29, 41, 59, 79, 97], seeds=20, lrs=[1e-3], rhos=[]),
        "pinned_norm": dict(_PAPER, moduli=[41, 53, 59, 71], seeds=12, lrs=[1e-3],
                            rhos=[0.85, 1.00, 1.15]),
        "norm_vs_lr": dict(_PAPER, moduli=[59], seeds=16, lrs=[1e-3, 2e-3, 4e-3, 8e-3],
                           rhos=[0.85, 1.00, 1.15, 1.30],
                           budgets={"free": 30000, 0.85: 30000, 1.30: 30000}),
        "layernorm_ablation": dict(_PAPER, moduli=[59], seeds=16, lrs=[1e-3],
                                   rhos=[0.85, 1.00, 1.15, 1.20], arch="transformer"),
        "norm_interventions": dict(_PAPER, moduli=[59], seeds=16, lrs=[1e-3],
                                   rhos=[0.70, 0.85, 1.00, 1.15, 1.30],
                                   hold_rhos=[0.90, 1.00, 1.15, 1.30], budgets={"free": 20000}),
        "free_norm_delay": dict(_PAPER, moduli=[59], seeds=8, lrs=[1e-3, 2e-3], wds=[0.5, 1.0],
                                scales=[1.0, 2.0, 3.0, 4.0, 6.0], rhos=[],
                                budgets={"free": 60000}),
    },
    "quick": {
        "free_training": dict(_QUICK, moduli=[31, 41, 47], seeds=6, lrs=[5e-3, 1e-2], rhos=[]),
        "pinned_norm": dict(_QUICK, moduli=[41, 47], seeds=6, lrs=[1e-2],
                            rhos=[1.00, 1.05, 1.10, 1.15]),
        "norm_vs_lr": dict(_QUICK, moduli=[47], seeds=4, lrs=[5e-3, 1e-2, 2e-2],
                           rhos=[1.00, 1.05, 1.10, 1.15]),
        "layernorm_ablation": dict(_QUICK, moduli=[47], seeds=4, lrs=[1e-2],
                                   rhos=[1.00, 1.05, 1.10], arch="transformer"),
        "norm_interventions": dict(_QUICK, moduli=[47], seeds=6, lrs=[1e-2],
                                   rhos=[0.70, 0.85, 1.00, 1.15, 1.30],
                                   hold_rhos=[0.90, 1.00, 1.15, 1.30], budgets={"free": 16000}),
        "free_norm_delay": dict(_QUICK, moduli=[47], seeds=4, lrs=[5e-3, 1e-2], wds=[0.5, 1.0],
                                scales=[1.0, 2.0, 4.0, 6.0], rhos=[], budgets={"free": 15000}),
    },
    "smoke": {
        "free_training": dict(_SMOKE, moduli=[23, 31], seeds=2, lrs=[3e-2], rhos=[]),
        "pinned_norm": dict(_SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[0.95, 1.10]),
        "norm_vs_lr": dict(_SMOKE, moduli=[23], seeds=2, lrs=[2e-2, 3e-2], rhos=[0.95, 1.10]),
        "layernorm_ablation": dict(_SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[0.95, 1.10]),
        "norm_interventions": dict(_SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[0.85, 1.15],
                                   hold_rhos=[0.95, 1.10]),
        "free_norm_delay": dict(_SMOKE, moduli=[23], seeds=2, lrs=[3e-2], wds=[1.0],
                                scales=[1.0, 2.0], rhos=[]),
    },
}

# Sparse parity (--problem sparse_parity, or experiments/sparse_parity.py): the authors'
# model and optimiser (n = 30 bits, m = 1000, MLP 30 -> 512 -> 2, lr 1e-3, weight decay 1,
# t_int 1000) replace the modular ones in every experiment. Budgets: the authors' 50k; quick
# about 3x their slowest grokking cells (lr 5e-4: 6637 steps; rho 1.30: 2.47 x 2648), 8 seeds.
_PARITY = dict(moduli=[30], train_size=1000, d=128, frac=0.40, hidden=512, arch="mlp", lrs=[1e-3], wd=1.0,
               t_int=1000, eval_every=10, ref_p=30, chunk_steps=500, retire_margin=500, rhos=[0.90, 1.30])
PROBLEM_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "sparse_parity": {
        "paper": dict(_PARITY, seeds=16, budgets={"free": 50000}),
        "quick": dict(_PARITY, seeds=8, budgets={"free": 20000}),
        "smoke": dict(_PARITY, moduli=[12], train_size=300, hidden=64, lrs=[1e-2], t_int=100,
                      seeds=2, retire_margin=0, chunk_steps=200, budgets={"free": 1500}),
        "paper/norm_vs_lr": dict(lrs=[5e-4, 1e-3, 2e-3]),
        "quick/norm_vs_lr": dict(lrs=[5e-4, 1e-3, 2e-3]),
        "paper/free_training": dict(lrs=[1e-3, 5e-4, 2e-3]),
        "quick/free_training": dict(lrs=[1e-3, 5e-4, 2e-3]),
    },
}
_PARITY_SCANS = dict(problem="sparse_parity", lrs=[1e-3, 5e-4, 2e-3],
                     wds=[1.0, 0.3, 0.5, 2.0, 3.0, 5.0], train_sizes=[600, 1000, 1500])
for _preset in ("paper", "quick"):
  PRESETS[_preset]["sparse_parity"] = dict(PROBLEM_PRESETS["sparse_parity"][_preset],
                                           **_PARITY_SCANS)
PRESETS["smoke"]["sparse_parity"] = dict(PROBLEM_PRESETS["sparse_parity"]["smoke"],
                                         problem="sparse_parity:k=2", lrs=[1e-2, 2e-2],
                                         wds=[1.0, 3.0], train_sizes=[200, 300], rhos=[1.3])

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


@dataclasses.dataclass
class Config:
  """A fully resolved experiment configuration (what config.json records)."""
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
  wds: list[float] | None = None  # free_norm_delay: weight decays (default [wd])
  clamp_from: str | None = None  # free_norm_delay: a pinned_norm folder for the figure
  problem: str = "add"  # a grokjax.problems spec; the moduli are its sizes
  train_size: int | None = None  # training examples per seed instead of frac
  train_sizes: list[int] | None = None  # sparse_parity: the m scan

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
                train_size=self.train_size)

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["budgets"] = {str(k): v for k, v in self.budgets.items()}
    return out


def resolve(experiment: str, preset: str, **overrides) -> Config:
  """The preset's values with every non-None override applied."""
  if experiment not in EXPERIMENTS:
    raise ValueError(f"unknown experiment {experiment!r}")
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
  values = dict(PRESETS[preset][experiment])
  if (overrides.get("arch") or values.get("arch")) == "transformer":
    values.update(TRANSFORMER[preset])
  family = str(overrides.get("problem") or values.get("problem") or "add").partition(":")[0]
  if family in PROBLEM_PRESETS and experiment != "sparse_parity":
    values.update(PROBLEM_PRESETS[family][preset])
    values.update(PROBLEM_PRESETS[family].get(f"{preset}/{experiment}", {}))
  values.update({k: v for k, v in overrides.items() if v is not None})
  return Config(experiment=experiment, preset=preset, **values)


# ---------------------------------------------------------------- the results folder


class Session:
  """A results folder: config.json, cached phases, checkpoints, final tables."""

  def __init__(self, cfg: Config, out: str, *, force_new: bool = False, progress: bool = True,
               checkpoint_every_s: float = 60.0):
    self.cfg, self.out, self.progress = cfg, out, progress
    self.checkpoint_every_s = checkpoint_every_s
    cfg_path = os.path.join(out, "config.json")
    if os.path.exists(cfg_path) and not force_new:
      old = io.read_json(cfg_path).get("config", {})
      new = io._plain(cfg.to_json())
      # A field added to Config after a folder was written reads as its default there.
      defaults = {f.name: io._plain(f.default) for f in dataclasses.fields(Config)
                  if f.default is not dataclasses.MISSING}
      old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
      diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      was = io.read_json(cfg_path).get("environment", {}).get("platform")
      now = io.environment().get("platform")
      if was and was != now:
        raise ConfigMismatch(
            f"{out} was trained on {was} and this is {now}: results would not continue bit "
            "for bit; use another --out, or --force-new to start over")
      if diff:
        raise ConfigMismatch(
            f"{out} holds a run with another configuration (differs in: {', '.join(diff)}); "
            "use another --out, or --force-new to start over")
    elif force_new and os.path.isdir(out):
      for name in ("phases", "checkpoints", "figures"):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    self.started = time.time()
    self.estimate: dict[str, float] | None = None  # set by `plan`
    io.write_json(cfg_path, dict(config=cfg.to_json(), environment=io.environment()))

  def phase(self, name: str, task: Task, runs: Runs) -> SweepResult:
    """Train a grid once: a finished phase is loaded, an interrupted one resumed."""
    path = os.path.join(self.out, "phases", f"{name}.npz")
    if os.path.exists(path):
      res = load_result(path)
      if res.task == task and _same_runs(res.runs, runs):
        say(f"  {name}: loaded from {path}")
        return res
    res = train(task, runs, chunk_steps=self.cfg.chunk_steps,
                retire_margin=self.cfg.retire_margin, grok_threshold=self.cfg.grok_threshold,
                mem_threshold=self.cfg.mem_threshold, grok_persist=self.cfg.grok_persist,
                progress=self.progress, desc=name,
                checkpoint=os.path.join(self.out, "checkpoints", name),
                checkpoint_every_s=self.checkpoint_every_s)
    save_result(path, res)
    shutil.rmtree(os.path.join(self.out, "checkpoints", name), ignore_errors=True)
    return res

  def path(self, *parts: str) -> str:
    return os.path.join(self.out, *parts)


class ConfigMismatch(ValueError):
  """A resume was asked for under a different configuration."""


def _same_runs(a: Runs, b: Runs) -> bool:
  return all(np.array_equal(getattr(a, f.name), getattr(b, f.name), equal_nan=True)
             for f in dataclasses.fields(Runs))


def save_result(path: str, res: SweepResult) -> None:
  arrays = {f"curve_{k}": v for k, v in res.curves.items()}
  arrays.update({f"run_{f.name}": getattr(res.runs, f.name) for f in dataclasses.fields(Runs)})
  task = np.array(json.dumps(dataclasses.asdict(res.task), sort_keys=True))
  io.write_npz(path, steps=res.steps, last_step=res.last_step, diverged_step=res.diverged_step,
               wall_s=np.float64(res.wall_s), task=task, **arrays)


def load_result(path: str) -> SweepResult:
  z = np.load(path)
  text = str(z["task"])
  # JSON; phases written before it hold the repr of a sorted list of plain items
  task = Task(**(json.loads(text) if text.startswith("{") else dict(ast.literal_eval(text))))
  # Runs fields added after a phase was written take their defaults
  runs = Runs(**{f.name: z[f"run_{f.name}"] for f in dataclasses.fields(Runs)
                 if f"run_{f.name}" in z.files})
  curves = {k[len("curve_"):]: z[k] for k in z.files if k.startswith("curve_")}
  return SweepResult(task, runs, z["steps"], curves, z["last_step"], z["diverged_step"],
                     float(z["wall_s"]))


def say(msg: str) -> None:
  print(msg, flush=True)


# ---------------------------------------------------------------- grids and tables


def run_table(res: SweepResult, cfg: Config, arm: Sequence[str], rho: Sequence[float | None],
              extra: dict[str, Any] | None = None, per_run: Sequence[dict] | None = None
              ) -> list[dict[str, Any]]:
  """One row per run of a phase: configuration, grok times, norms, collapse, final accuracy;
  `extra` adds the same columns to every row, `per_run` its own to each."""
  out = res.reduce(cfg.mem_threshold, cfg.grok_threshold, cfg.grok_persist)
  col = np.clip(np.searchsorted(res.steps, out["t_grok"]), 0, len(res.steps) - 1)
  collapse = res.curves["collapse"]
  rows = []
  for i in range(len(res.runs)):
    seen = np.isfinite(collapse[i])
    rows.append(dict(
        p=res.task.p, problem=res.task.problem, arch=res.task.arch, layernorm=res.task.layernorm,
        seed=res.runs.seed[i], arm=arm[i], rho=rho[i] if arm[i] != "free" else None,
        target_norm=res.runs.target_norm[i] if res.runs.is_clamp[i] else None,
        lr=res.runs.lr[i], wd=res.runs.wd[i],
        t_int=res.runs.t_int[i] if res.runs.is_clamp[i] else None, budget=res.runs.budget[i],
        steps_trained=res.last_step[i], t_mem=out["t_mem"][i], t_grok=out["t_grok"][i],
        grokked=out["grokked"][i], censored=out["censored"][i], fell_back=out["fell_back"][i],
        diverged=out["diverged"][i], diverged_step=res.diverged_step[i] if out["diverged"][i] else None,
        norm_at_grok=out["norm_at_grok"][i],
        collapse_at_grok=collapse[i, col[i]] if out["grokked"][i] else None,
        collapse_max=np.max(collapse[i, seen]) if seen.any() else None,
        gini_final=_last(res.curves["gini"][i]) if "gini" in res.curves else None,
        final_train_acc=out["final_train_acc"][i], final_test_acc=out["final_test_acc"][i],
        **(extra or {}), **(per_run[i] if per_run else {})))
  return rows


def _last(row: np.ndarray) -> float:
  ok = np.flatnonzero(np.isfinite(row))
  return float(row[ok[-1]]) if len(ok) else float("nan")


def free_runs(cfg: Config, p: int, lrs: Sequence[float]) -> Runs:
  seeds = np.tile(np.arange(cfg.seeds), len(lrs))
  return Runs.free(seeds, np.repeat(lrs, cfg.seeds), cfg.wd, cfg.budget(None, p))


def clamp_runs(cfg: Config, p: int, wc: dict[float, float], rhos: Sequence[float],
               lrs: Sequence[float]) -> tuple[Runs, np.ndarray]:
  """Runs of every (lr, rho, seed) cell; returns them and each run's rho."""
  grid = [(lr, rho, s) for lr in lrs for rho in rhos for s in range(cfg.seeds)]
  lr, rho, seed = (np.array(c) for c in zip(*grid))
  target = np.array([r * wc[float(l)] for l, r in zip(lr, rho)])
  budget = np.array([cfg.budget(r, p) for r in rho])
  return Runs(seed, lr, cfg.wd, target, cfg.t_int, budget), rho


def critical_norm(rows: list[dict[str, Any]]) -> float:
  """W_c: the median over seeds of ||W|| at T_grok of the grokked, non-diverged free runs."""
  w = [r["norm_at_grok"] for r in rows if r["grokked"] and not r["diverged"]]
  return float(np.median(w)) if w else float("nan")


def cv(values) -> float:
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
  return float(np.std(v) / np.mean(v)) if len(v) > 1 else float("nan")


# The prior of the time estimate: a run is expected to grok after this fraction of its
# cell's budget (the presets' budgets are 3 to 10 times the median grok times they were
# set from), and to stop retire_margin plus half a chunk later. Once a modulus's free
# control has finished, its measured median replaces the prior (`expected_run_steps`).
PRIOR_FRACTION = 0.2


def expected_run_steps(cfg: Config, cells: list[tuple[int, int, int]],
                       scale: dict[int, float] | None = None) -> float:
  """Expected run-steps of (p, runs, budget) cells; scale[p] multiplies the prior."""
  total = 0.0
  for p, n, b in cells:
    if cfg.retire_margin is None:
      total += n * b
      continue
    t = PRIOR_FRACTION * b * (scale or {}).get(p, 1.0)
    total += n * min(b, t + cfg.retire_margin + cfg.chunk_steps / 2)
  return total


def training_seconds(cfg: Config, cells: list[tuple[int, int, int]], rate: float, p_ref: int,
                     scale: dict[int, float] | None = None) -> tuple[float, float]:
  """(expected, worst-case) seconds to train (p, runs, budget) cells at `rate` run-steps/s
  measured at size p_ref; other sizes scaled by their per-step arithmetic (the problem's
  `cost`: n_train * p for a modular problem)."""
  ref = cfg.task(p_ref).problem_def.cost(cfg.hidden)
  cost = lambda p: cfg.task(p).problem_def.cost(cfg.hidden) / ref
  expected = sum(expected_run_steps(cfg, [c], scale) * cost(c[0]) for c in cells) / rate
  worst = sum(n * b * cost(p) for p, n, b in cells) / rate
  return expected, worst


def plan(cfg: Config, cells: list[tuple[int, int, int]]) -> dict[str, float]:
  """Print the grid size and a time estimate before a long run; return the estimate.

  cells: (p, number of runs, step budget) per group of runs. The rate is one compiled
  chunk of the largest modulus timed on this machine; other moduli are scaled by their
  per-step arithmetic (n_train * p). The expected time uses `expected_run_steps`; the
  budgets give the worst case.
  """
  n_runs = sum(n for _, n, _ in cells)
  run_steps = sum(n * b for _, n, b in cells)
  p_big = max(p for p, _, _ in cells)
  batch = min(max(n for p, n, _ in cells if p == p_big), 64)
  rate, width = measure_rate(cfg.task(p_big), batch)
  expected, worst = training_seconds(cfg, cells, rate, p_big)
  say(f"{cfg.experiment} ({cfg.preset} preset): {n_runs} runs over moduli "
      f"{', '.join(map(str, cfg.moduli))}, at most {run_steps:,} run-steps (budgets)")
  import jax
  how = "vmapped" if width is None else "mapped one by one in the program"
  if jax.device_count() > 1:
    how += f", {jax.device_count()} {jax.devices()[0].platform} devices"
  say(f"  this machine: {rate:,.0f} run-steps/s at p={p_big} ({batch} runs {how}); "
      f"expected ~{hms(expected)} of training, at most ~{hms(worst)} if no run groks early")
  return dict(rate=rate, p_big=p_big, expected_s=expected, worst_s=worst)


def eta_update(sess: "Session", p: int, free_rows, remaining: list[tuple[int, int, int]]) -> None:
  """After a free control: the expected time left, with the prior rescaled by its median."""
  est = getattr(sess, "estimate", None)
  med = _cell_summary(free_rows)["median_t_grok"]
  if est is None or med is None or not remaining:
    return
  cfg = sess.cfg
  scale = {p: med / (PRIOR_FRACTION * cfg.budget(None, p))}
  left, _ = training_seconds(cfg, remaining, est["rate"], est["p_big"], scale)
  say(f"  ETA: ~{hms(left)} of training left (clamp cells of p={p} rescaled by its free "
      f"median T_grok {med:.0f}, x{scale[p]:.2f} the prior)")


def measure_rate(task: Task, batch: int) -> tuple[float, int | None]:
  """Run-steps per second of one compiled chunk on this machine (after compiling), and
  the vmap width `train` uses here."""
  import jax
  from grokjax.train import chunk_rate, default_vmap_width
  return chunk_rate(task, batch, 1, reps=3), default_vmap_width(jax.devices())


def memory_needed(cfg: Config) -> int:
  """Bytes of host memory the largest phase of an experiment needs, roughly.

  Per run: parameters and two Adam moments, the split, and the curves of its whole budget
  (seven float32 curves, held on the host and copied once into curves.npz). Once per
  device: the activations of a training step and of an evaluation over all p^2 pairs
  (CPU devices train one run at a time, so activations do not scale with the runs).
  """
  n_rhos = max(1, len(cfg.rhos)) if cfg.experiment != "free_training" else 1
  runs = cfg.seeds * len(cfg.lrs) * n_rhos
  if cfg.experiment == "norm_interventions":
    runs = cfg.seeds * (len(cfg.rhos) + 4 + len(cfg.hold_rhos or []))
  elif cfg.experiment == "free_norm_delay":
    runs = cfg.seeds * len(cfg.lrs) * len(cfg.wds or [cfg.wd]) * len(cfg.scales or [1.0])
  worst = 0
  for p in cfg.moduli:
    t = cfg.task(p)
    prob, h = t.problem_def, cfg.hidden
    n_params, state_bytes = _state_size(t)
    state = 3 * 4 * n_params + state_bytes
    budget = max([cfg.budget(None, p)] + [cfg.budget(r, p) for r in cfg.rhos])
    curves = 2 * 7 * 4 * -(-budget // cfg.eval_every)
    c = prob.n_classes
    act = 4 * 3 * (prob.n_train * (2 * h + 2 * c) + (prob.n_train + prob.n_test) * (h + c))
    worst = max(worst, runs * (state + curves) + act)
  return int(worst)


def _state_size(task: Task) -> tuple[int, int]:
  """(parameters, bytes of the per-seed data) of one run, from shapes alone (abstract:
  nothing here may start a JAX backend, jax.distributed comes later)."""
  import jax
  from flax import nnx
  model = nnx.eval_shape(lambda: task.make_model(nnx.Rngs(0)))
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  return n_params, task.problem_def.data_bytes()


def available_memory() -> int:
  """Bytes of memory this machine can still give (MemAvailable), or its total."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def largest_fitting(cfg: Config, field: str, have: int) -> int | None:
  """The largest value of an integer field (seeds, steps, the largest modulus) that fits."""
  def need(v):
    if field == "moduli":
      return memory_needed(dataclasses.replace(cfg, moduli=[min(q, v) for q in cfg.moduli]))
    return memory_needed(dataclasses.replace(cfg, **{field: v}))
  lo = 1 if field != "moduli" else 3
  hi = lo
  while need(hi) <= have and hi < 2 ** 62:
    hi *= 2
  if need(lo) > have:
    return None
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if need(mid) <= have else (lo, mid)
  return lo


def hms(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds < 120:
    return f"{seconds} s"
  if seconds < 7200:
    return f"{seconds / 60:.0f} min"
  return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- the experiments


def _phase_rows(sess: Session, name: str, task: Task, runs: Runs, arm, rho,
                phases: list, per_run: Sequence[dict] | None = None) -> list[dict[str, Any]]:
  """Train (or load) a phase, append (result, rows) to `phases`, return its rows."""
  res = sess.phase(name, task, runs)
  rows = run_table(res, sess.cfg, arm, rho, per_run=per_run)
  phases.append((res, rows))
  return rows


def _free_phase(sess: Session, p: int, lrs, phases, layernorm=None) -> list[dict[str, Any]]:
  cfg = sess.cfg
  runs = free_runs(cfg, p, lrs)
  tag = "" if layernorm is None else ("_ln" if layernorm else "_noln")
  return _phase_rows(sess, f"free_p{p}{tag}", cfg.task(p, layernorm), runs,
                     ["free"] * len(runs), [None] * len(runs), phases)


def _wc_by_lr(rows, lrs) -> dict[float, float]:
  return {float(lr): critical_norm([r for r in rows if r["lr"] == lr]) for lr in lrs}


def checked_wc(cfg: Config, p: int, free_rows, what: str = "") -> float:
  """W_c of a free control, refused (RuntimeError, one line) when too few seeds grokked."""
  frac = _cell_summary(free_rows)["grok_fraction"]
  if not frac >= cfg.wc_min_grok_fraction:
    raise RuntimeError(
        f"p={p}{what}: only {frac:.0%} of the free control grokked (need "
        f"{cfg.wc_min_grok_fraction:.0%}), so W_c is not trustworthy; raise the budget "
        "(--steps) or the learning rate, or lower --wc-min-grok-fraction")
  return critical_norm(free_rows)


def _clamp_phase(sess: Session, p: int, wc: dict[float, float], rhos, lrs, phases,
                 layernorm=None) -> list[dict[str, Any]]:
  cfg = sess.cfg
  bad = [lr for lr in lrs if not np.isfinite(wc[float(lr)])]
  if bad:
    raise RuntimeError(f"p={p}: no free run grokked at lr {bad}, so W_c is unknown; "
                       "raise the budget (--steps) or change the learning rate")
  runs, rho = clamp_runs(cfg, p, wc, rhos, lrs)
  tag = "" if layernorm is None else ("_ln" if layernorm else "_noln")
  rows = _phase_rows(sess, f"clamp_p{p}{tag}", cfg.task(p, layernorm), runs,
                     ["clamp"] * len(runs), list(rho), phases)
  for r in rows:
    r["wc"] = wc[float(r["lr"])]
  return rows


def write_tables(sess: Session, phases: list[tuple[SweepResult, list[dict]]]) -> list[dict]:
  """runs.csv and curves.npz over every phase; returns all rows."""
  rows = [r for _, rs in phases for r in rs]
  keys = list(dict.fromkeys(k for r in rows for k in r))
  io.write_csv(sess.path("runs.csv"), [{k: r.get(k) for k in keys} for r in rows])
  width = max(len(res.steps) for res, _ in phases)
  pad = lambda a, fill: np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)
  arrays = {"steps": np.concatenate([pad(np.tile(res.steps, (len(res.runs), 1)), -1)
                                     for res, _ in phases])}
  names = dict.fromkeys(k for res, _ in phases for k in res.curves)
  for k in names:
    arrays[k] = np.concatenate([pad(res.curves[k].astype(np.float32), np.nan) if k in res.curves
                                else np.full((len(res.runs), width), np.nan, np.float32)
                                for res, _ in phases])
  for k in ("p", "seed", "lr", "rho", "arm", "layernorm"):
    arrays[k] = np.array([np.nan if r.get(k) is None else r.get(k) for r in rows])
  io.write_npz(sess.path("curves.npz"), **arrays)
  # Timing lives apart from the results so a resumed run's tables equal an uninterrupted one's.
  io.write_json(sess.path("timing.json"), dict(
      session_wall_s=time.time() - sess.started,
      phases={f"p{res.task.p}_{rs[0]['arm']}": res.wall_s for res, rs in phases},
      run_steps={f"p{res.task.p}_{rs[0]['arm']}": int(res.last_step.sum()) for res, rs in phases}))
  return rows


def grok_rule(cfg: Config, rows) -> dict[str, Any]:
  """The T_grok rule of a result, and how many runs reached the threshold then fell back."""
  return dict(grok_threshold=cfg.grok_threshold, grok_persist=cfg.grok_persist,
              n_fell_back=int(sum(bool(r["fell_back"]) for r in rows)), n_runs=len(rows))


def _cell_summary(rows) -> dict[str, Any]:
  """Grok fraction, median T_grok and T_mem of a cell. A diverged run is neither a grok
  time nor a censoring time: it is left out of all three and counted in n_diverged."""
  ok = [r for r in rows if not r["diverged"]]
  t = np.array([r["t_grok"] for r in ok], float)
  g = np.array([r["grokked"] for r in ok], bool)
  mem = np.array([r["t_mem"] for r in ok if r["t_mem"] >= 0], float)
  return dict(n=len(rows), grok_fraction=float(g.mean()) if len(g) else float("nan"),
              median_t_grok=censored_median(t, ~g), median_t_mem=float(np.median(mem)) if len(mem) else None,
              n_censored=int((~g).sum()), n_diverged=len(rows) - len(ok))


def censored_median(t: np.ndarray, censored: np.ndarray) -> float | None:
  """Median with censored runs as lower bounds above every observed time; None when
  half or more are censored (the median is then only known to exceed the budget)."""
  if len(t) == 0 or 2 * censored.sum() >= len(t):
    return None
  return float(np.median(np.where(censored, np.inf, t)))


def pinned_norm(sess: Session) -> dict[str, Any]:
  """Free control (W_c) then clamp cells per modulus; delay-law fits per modulus and shared."""
  from grokjax import plots
  cfg = sess.cfg
  if len(cfg.lrs) != 1:
    raise ValueError("pinned_norm holds one learning rate; use norm_vs_lr for several")
  lr = cfg.lrs[0]
  wc_given = load_wc(cfg.wc_from) if cfg.wc_from else {}
  cells = []
  for p in cfg.moduli:
    if p not in wc_given:
      cells.append((p, cfg.seeds, cfg.budget(None, p)))
    cells += [(p, cfg.seeds, cfg.budget(r, p)) for r in cfg.rhos]
  sess.estimate = plan(cfg, cells)
  phases, per_p, clamp_rows = [], {}, []
  for i, p in enumerate(cfg.moduli):
    if p in wc_given:
      wc = wc_given[p]
      say(f"p={p}: W_c = {wc:.2f} from {cfg.wc_from}")
    else:
      free = _free_phase(sess, p, [lr], phases)
      wc = checked_wc(cfg, p, free)
      s = _cell_summary(free)
      say(f"p={p}: free control W_c = {wc:.2f} (CV {cv([r['norm_at_grok'] for r in free]):.1%}, "
          f"{s['grok_fraction']:.0%} grokked, median T_grok {s['median_t_grok']})")
      later = [c for c in cells if c[0] in cfg.moduli[i + 1:]]
      eta_update(sess, p, free, [(p, cfg.seeds, cfg.budget(r, p)) for r in cfg.rhos] + later)
    rows = _clamp_phase(sess, p, {float(lr): wc}, cfg.rhos, [lr], phases)
    clamp_rows += rows
    per_p[p] = dict(wc=wc, cells={f"{rho:g}": _cell_summary([r for r in rows if r["rho"] == rho])
                                  for rho in cfg.rhos})
  all_rows = write_tables(sess, phases)
  fits = delay_fits(cfg, clamp_rows)
  fits["shared"]["n_diverged"] = sum(1 for r in clamp_rows if r["diverged"])
  for p in cfg.moduli:
    per_p[p].update(fits["per_modulus"].get(p, {}))
  result = dict(experiment="pinned_norm", lr=lr, per_modulus=per_p, shared=fits["shared"],
                fit_method=fits["method"], **grok_rule(cfg, all_rows))
  io.write_json(sess.path("fit.json"), result)
  plots.delay_law(sess.path("figures", "delay_law.png"), clamp_rows, result)
  plots.curves(sess.path("figures", "curves.png"), phases)
  print_delay_summary(result)
  return result


def delay_fits(cfg: Config, clamp_rows) -> dict[str, Any]:
  """Per-modulus and shared fits of ln T_grok = c + alpha * rho (diverged runs excluded)."""
  from grokjax import fit
  ok = [r for r in clamp_rows if not r["diverged"]]
  per_p = {}
  for p in sorted({r["p"] for r in ok}):
    rs = [r for r in ok if r["p"] == p]
    per_p[p] = fit.safe(fit.fit_delay_law, *_fit_arrays(rs), n_boot=cfg.n_boot)
    per_p[p]["n_diverged"] = sum(1 for r in clamp_rows if r["p"] == p and r["diverged"])
    per_p[p]["aft"] = fit.safe(fit.fit_aft_delay_law, *_fit_arrays(rs), n_boot=cfg.n_boot)
  rho, t, cens, seed = _fit_arrays(ok)
  moduli = np.array([r["p"] for r in ok])
  shared = fit.safe(fit.fit_shared_delay_law, rho, t, moduli, cens, seed, n_boot=cfg.n_boot)
  shared["aft"] = fit.safe(fit.fit_aft_delay_law, rho, t, cens, seed, moduli, n_boot=cfg.n_boot)
  return dict(per_modulus=per_p, shared=shared, method=fit.METHOD)


def _fit_arrays(rows):
  return (np.array([r["rho"] for r in rows], float), np.array([r["t_grok"] for r in rows], float),
          np.array([r["censored"] for r in rows], bool), np.array([r["seed"] for r in rows], int))


def print_delay_summary(result) -> None:
  for p, d in result["per_modulus"].items():
    cells = "  ".join(f"rho {k}: {v['grok_fraction']:.0%} grokked, median {v['median_t_grok']}"
                      for k, v in d["cells"].items())
    say(f"p={p}  W_c={d['wc']:.2f}  {cells}")
    if d.get("alpha") is not None:
      say(f"       alpha = {d['alpha']:.2f} [{d['alpha_ci'][0]:.2f}, {d['alpha_ci'][1]:.2f}]"
          f"{_ci_warning(d)}  R^2 = {d['r2']:.3f}  ({d['n_censored']} censored, "
          f"{d.get('n_diverged', 0)} diverged runs; {d['n_cells']} cells fitted)")
    else:
      say(f"       no fit: {d.get('error')}")
    say(_aft_line(d.get("aft"), "       "))
  s = result["shared"]
  if s.get("alpha") is not None:
    say(f"shared: alpha = {s['alpha']:.2f} [{s['alpha_ci'][0]:.2f}, {s['alpha_ci'][1]:.2f}]"
        f"{_ci_warning(s)}  R^2 = {s['r2']:.3f}")
  else:
    say(f"shared: no fit: {s.get('error')}")
  say(_aft_line(s.get("aft"), "shared "))


def _aft_line(aft: dict | None, indent: str) -> str:
  if not aft or aft.get("alpha") is None:
    return f"{indent}per-run censored (AFT) fit: {(aft or {}).get('error', 'not made')}"
  return (f"{indent}per-run censored (AFT) fit: alpha = {aft['alpha']:.2f} "
          f"[{aft['alpha_ci'][0]:.2f}, {aft['alpha_ci'][1]:.2f}]{_ci_warning(aft)}, sigma = "
          f"{aft['sigma']:.2f}, {aft['n_censored']} of {aft['n_runs']} runs censored")


def _ci_warning(fit_result: dict) -> str:
  return f" ({fit_result['ci_warning']})" if fit_result.get("ci_warning") else ""


WC_FIELDS = ("d", "hidden", "wd", "frac", "arch", "layernorm", "heads", "dtype")


def wc_source_mismatch(cfg: Config, folder: str) -> str | None:
  """Why `folder`'s W_c does not belong to cfg's model and optimiser, or None if it does."""
  path = os.path.join(folder, "config.json")
  if not os.path.exists(path):
    return f"{folder} has no config.json to check its W_c against"
  other = io.read_json(path).get("config", {})
  mine = io._plain(cfg.to_json())
  diff = [f"{k} {other.get(k)!r} != {mine[k]!r}" for k in WC_FIELDS
          if k in other and other.get(k) != mine[k]]
  if other.get("lrs") and not np.isclose(other["lrs"][0], cfg.lrs[0]):
    diff.append(f"lr {other['lrs'][0]!r} != {cfg.lrs[0]!r}")
  return f"{folder} was trained with {', '.join(diff)}" if diff else None


def load_wc(folder: str) -> dict[int, float]:
  """W_c per modulus from a free_training (summary.json) or pinned_norm (fit.json) folder."""
  for name, key in (("summary.json", "per_modulus"), ("fit.json", "per_modulus")):
    path = os.path.join(folder, name)
    if os.path.exists(path):
      per_p = io.read_json(path)[key]
      return {int(p): float(v["wc"]) for p, v in per_p.items() if v.get("wc") is not None}
  raise FileNotFoundError(f"{folder} has no summary.json or fit.json to read W_c from")


def free_training(sess: Session) -> dict[str, Any]:
  """Free training over moduli x learning rates: W_c, its spread, the power law in p."""
  from grokjax import fit, plots
  cfg = sess.cfg
  sess.estimate = plan(cfg, [(p, cfg.seeds * len(cfg.lrs), cfg.budget(None, p)) for p in cfg.moduli])
  phases, per_p = [], {}
  for p in cfg.moduli:
    rows = _free_phase(sess, p, cfg.lrs, phases)
    by_lr = {}
    for lr in cfg.lrs:
      rs = [r for r in rows if r["lr"] == lr]
      by_lr[f"{lr:g}"] = dict(_cell_summary(rs), wc=critical_norm(rs),
                              wc_cv_seeds=cv([r["norm_at_grok"] for r in rs]))
    wcs = [v["wc"] for v in by_lr.values()]
    per_p[p] = dict(wc=by_lr[f"{cfg.lrs[0]:g}"]["wc"], per_lr=by_lr, wc_cv_lrs=cv(wcs))
    say(f"p={p}: " + "  ".join(f"lr {k}: W_c {v['wc']:.2f} (CV {v['wc_cv_seeds']:.1%}, "
                               f"{v['grok_fraction']:.0%} grokked, T_grok {v['median_t_grok']})"
                               for k, v in by_lr.items()))
    per_p[p]["wc_by_threshold"] = wc_by_threshold(phases[-1][0], cfg, cfg.lrs[0])
    th = per_p[p]["wc_by_threshold"]
    say(f"       W_c at test-accuracy thresholds " + ", ".join(
        f"{k}: {'-' if v is None else f'{v:.2f}'}" for k, v in th["wc"].items())
        + (f" (spread {th['spread']:.1%} of W_c)" if th["spread"] is not None else ""))
  all_rows = write_tables(sess, phases)
  ps = [p for p in cfg.moduli if np.isfinite(per_p[p]["wc"])]
  power = fit.safe(fit.fit_power_law, np.array(ps, float), np.array([per_p[p]["wc"] for p in ps]))
  result = dict(experiment="free_training", lr=cfg.lrs[0], per_modulus=per_p, power_law=power,
                **grok_rule(cfg, all_rows))
  io.write_json(sess.path("summary.json"), result)
  plots.wc_vs_p(sess.path("figures", "wc_vs_p.png"), result)
  plots.curves(sess.path("figures", "curves.png"), phases)
  if power.get("beta") is not None:
    say(f"W_c = {power['c']:.2f} * p^{power['beta']:.3f}  (R^2 = {power['r2']:.3f})")
  else:
    say(f"no power-law fit: {power.get('error')}")
  return result


SENSITIVITY_THRESHOLDS = (0.80, 0.90, 0.95)


def wc_by_threshold(res: SweepResult, cfg: Config, lr: float) -> dict[str, Any]:
  """W_c of the free runs at `lr` with T_grok defined at each test-accuracy threshold,
  and its spread (max - min) / W_c at the configured threshold."""
  pick = np.isclose(res.runs.lr, lr)
  wc = {}
  for th in SENSITIVITY_THRESHOLDS:
    out = res.reduce(cfg.mem_threshold, th, cfg.grok_persist)
    ok = pick & out["grokked"] & ~out["diverged"]
    wc[f"{th:g}"] = float(np.median(out["norm_at_grok"][ok])) if ok.any() else None
  known = [v for v in wc.values() if v is not None]
  ref = wc.get(f"{cfg.grok_threshold:g}") or (known[0] if known else None)
  spread = (max(known) - min(known)) / ref if len(known) == len(wc) and ref else None
  return dict(wc=wc, spread=spread)


def norm_vs_lr(sess: Session) -> dict[str, Any]:
  """The rho x learning-rate matrix at one modulus, with a free control per learning rate.

  The held norms are rho * W_c with W_c measured at the first (reference) learning rate,
  so a row of the matrix holds one absolute norm, as in the paper's table.
  """
  from grokjax import fit, plots
  cfg = sess.cfg
  if len(cfg.moduli) != 1:
    raise ValueError("norm_vs_lr runs at one modulus")
  p = cfg.moduli[0]
  clamp_cells = [(p, cfg.seeds * len(cfg.lrs), cfg.budget(r, p)) for r in cfg.rhos]
  sess.estimate = plan(cfg, [(p, cfg.seeds * len(cfg.lrs), cfg.budget(None, p))] + clamp_cells)
  phases = []
  free = _free_phase(sess, p, cfg.lrs, phases)
  eta_update(sess, p, [r for r in free if r["lr"] == cfg.lrs[0]], clamp_cells)
  wc_lr = _wc_by_lr(free, cfg.lrs)
  wc = wc_lr[float(cfg.lrs[0])]
  say(f"p={p}: W_c = {wc:.2f} at the reference lr {cfg.lrs[0]:g}; per lr "
      + ", ".join(f"{k:g}: {v:.2f}" for k, v in wc_lr.items()))
  clamp = _clamp_phase(sess, p, {float(lr): wc for lr in cfg.lrs}, cfg.rhos, cfg.lrs, phases)
  all_rows = write_tables(sess, phases)
  matrix = {f"{rho:g}": {f"{lr:g}": _cell_summary([r for r in clamp if r["rho"] == rho
                                                    and r["lr"] == lr])["median_t_grok"]
                         for lr in cfg.lrs} for rho in cfg.rhos}
  control = {f"{lr:g}": _cell_summary([r for r in free if r["lr"] == lr])["median_t_grok"]
             for lr in cfg.lrs}
  grid = [[matrix[f"{rho:g}"][f"{lr:g}"] for lr in cfg.lrs] for rho in cfg.rhos]
  budget = [[cfg.budget(rho, p) for _ in cfg.lrs] for rho in cfg.rhos]
  fold_rho = {f"{lr:g}": fit.fold_change_bounded([row[j] for row in grid], [b[j] for b in budget])
              for j, lr in enumerate(cfg.lrs)}
  fold_lr = {f"{rho:g}": fit.fold_change_bounded(grid[i], budget[i])
             for i, rho in enumerate(cfg.rhos)}
  alpha_lr = {}
  for lr in cfg.lrs:
    rs = [r for r in clamp if r["lr"] == lr and not r["diverged"]]
    alpha_lr[f"{lr:g}"] = fit.safe(fit.fit_delay_law, *_fit_arrays(rs), n_boot=cfg.n_boot)
  result = dict(experiment="norm_vs_lr", p=p, wc=wc, wc_per_lr={f"{k:g}": v for k, v in wc_lr.items()},
                held_norms={f"{rho:g}": rho * wc for rho in cfg.rhos},
                median_t_grok=matrix, free_control=control, fold_across_rho=fold_rho,
                fold_across_lr=fold_lr,
                fold_rho_median=fit.bounded_median(list(fold_rho.values())),
                fold_lr_median=fit.bounded_median(list(fold_lr.values())),
                per_lr=alpha_lr, fit_method=fit.METHOD, **grok_rule(cfg, all_rows))
  io.write_json(sess.path("fit.json"), result)
  plots.rho_lr_matrix(sess.path("figures", "rho_lr_matrix.png"), result)
  plots.curves(sess.path("figures", "curves.png"), phases)
  say(f"median T_grok (rows rho, columns lr {', '.join(f'{lr:g}' for lr in cfg.lrs)}):")
  for rho, row in matrix.items():
    say(f"  rho {rho:>5}: " + "  ".join(f"{'censored' if v is None else int(v):>8}" for v in row.values()))
  say("  free    : " + "  ".join(f"{'censored' if v is None else int(v):>8}" for v in control.values()))
  say(f"fold change of median T_grok: across rho {fit.format_fold(result['fold_rho_median'])}, "
      f"across lr {fit.format_fold(result['fold_lr_median'])} (medians over the other axis; "
      "'>=': a censored cell at the slow end, so only a lower bound)")
  return result


def layernorm_ablation(sess: Session) -> dict[str, Any]:
  """The delay law with and without LayerNorm on one architecture.

  For each modulus and each variant: a free control measures that variant's W_c, then
  clamp cells at rho * W_c; alpha is fitted per variant (per modulus and shared). Both
  variants of a seed start from the same weights and split (the init ignores LayerNorm).
  """
  cfg = sess.cfg
  from grokjax import plots
  if len(cfg.lrs) != 1:
    raise ValueError("layernorm_ablation holds one learning rate")
  lr = cfg.lrs[0]
  cells = []
  for p in cfg.moduli:
    cells += 2 * ([(p, cfg.seeds, cfg.budget(None, p))] + [(p, cfg.seeds, cfg.budget(r, p))
                                                          for r in cfg.rhos])
  sess.estimate = plan(cfg, cells)
  phases, variants = [], {}
  for ln in (False, True):
    name = "layernorm" if ln else "no_layernorm"
    per_p, clamp_rows = {}, []
    for p in cfg.moduli:
      free = _free_phase(sess, p, [lr], phases, layernorm=ln)
      wc = checked_wc(cfg, p, free, f" ({name})")
      say(f"p={p} {name}: free control W_c = {wc:.2f} "
          f"({_cell_summary(free)['grok_fraction']:.0%} grokked)")
      rows = _clamp_phase(sess, p, {float(lr): wc}, cfg.rhos, [lr], phases, layernorm=ln)
      clamp_rows += rows
      per_p[p] = dict(wc=wc, cells={f"{rho:g}": _cell_summary([r for r in rows if r["rho"] == rho])
                                    for rho in cfg.rhos})
    fits = delay_fits(cfg, clamp_rows)
    for p in cfg.moduli:
      per_p[p].update(fits["per_modulus"].get(p, {}))
    variants[name] = dict(per_modulus=per_p, shared=fits["shared"], rows=clamp_rows)
  all_rows = write_tables(sess, phases)
  result = dict(experiment="layernorm_ablation", arch=cfg.arch, lr=lr, fit_method=_fit_method(),
                **grok_rule(cfg, all_rows),
                variants={k: {kk: vv for kk, vv in v.items() if kk != "rows"}
                          for k, v in variants.items()})
  a0 = variants["no_layernorm"]["shared"].get("alpha")
  a1 = variants["layernorm"]["shared"].get("alpha")
  if a0 is not None and a1 is not None:
    result["alpha_ratio_ln_over_noln"] = a1 / a0
  io.write_json(sess.path("fit.json"), result)
  plots.ablation(sess.path("figures", "layernorm_ablation.png"),
                 {k: (v["rows"], v) for k, v in variants.items()})
  plots.curves(sess.path("figures", "curves.png"), phases)
  for name, v in variants.items():
    say(f"--- {name} ({cfg.arch})")
    print_delay_summary(v)
  return result


def _fit_method() -> str:
  from grokjax import fit
  return fit.METHOD
