"""Before a long run: how long it will take on this machine, and whether it fits in memory.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from grokjax.config import Config
from grokjax.session import Session, say
from grokjax.stats import cell_summary
from grokjax.spec import CURVES, Task


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
  ref = cfg.task(p_ref).problem_def.cost()
  cost = lambda p: cfg.task(p).problem_def.cost() / ref
  expected = sum(expected_run_steps(cfg, [c], scale) * cost(c[0]) for c in cells) / rate
  worst = sum(n * b * cost(p) for p, n, b in cells) / rate
  return expected, worst


class Estimate:
  """The time estimate of one experiment, from the training's own program.

  `plan` prints the grid's size; the first chunk of training that does not compile (its
  run-steps/s, reported by `grokjax.train.train` through `Session.phase`) gives the rate,
  and `measured` prints the expected and the worst-case time of the whole grid. No second
  program is compiled or run for it, and when every phase is already in the results folder
  nothing is timed at all.
  """

  def __init__(self, cfg: Config, cells: list[tuple[int, int, int]]):
    self.cfg, self.cells = cfg, cells
    self.rate: float | None = None  # run-steps/s, measured at size p_ref
    self.p_ref: int | None = None
    self.clean = False  # measured on a chunk without compiling

  def wants(self) -> bool:
    return not self.clean

  def measured(self, task: Task, name: str, n_runs: int, rate: float, clean: bool) -> None:
    """Take the rate of a training; print the estimate the first time."""
    told = self.rate is not None
    self.rate, self.p_ref, self.clean = rate, task.p, clean
    if told:  # a rate with compiles in it, replaced by a clean one for later ETAs
      return
    import jax
    from grokjax.runtime import default_vmap_width
    expected, worst = training_seconds(self.cfg, self.cells, rate, task.p)
    how = "vmapped" if default_vmap_width(jax.devices()) is None else "mapped one by one"
    if jax.device_count() > 1:
      how += f", {jax.device_count()} {jax.devices()[0].platform} devices"
    timed = (f"timed on {name}'s own chunks" if clean else
             f"timed over all of {name}, compiles included")
    say(f"  this machine: {rate:,.0f} run-steps/s at p={task.p} ({n_runs} runs {how}; {timed}); "
        f"the whole grid: expected ~{hms(expected)} of training, at most ~{hms(worst)} if no "
        "run groks early")


def grid_cells(cfg: Config) -> list[tuple[int, int, int]]:
  """(p, runs, budget) of every cell an experiment trains, free controls included, from
  its configuration alone (before any W_c is known: --wc-from's reuse is not counted)."""
  n_lr = len(cfg.lrs)
  if cfg.experiment == "norm_interventions":  # one budget for the control and every arm
    arms = 1 + len(cfg.rhos) + 4 + len(cfg.hold_rhos or [])
    return [(p, cfg.seeds * arms, cfg.budget(None, p)) for p in cfg.moduli]
  if cfg.experiment == "free_training":
    n_lr *= len(cfg.wds or [cfg.wd])
  if cfg.experiment == "free_norm_delay":
    runs = cfg.seeds * len(cfg.lrs) * len(cfg.wds or [cfg.wd]) * len(cfg.scales or [1.0])
    return [(p, runs, cfg.budget(None, p)) for p in cfg.moduli]
  per_p = [(None, n_lr)] + [(r, n_lr) for r in cfg.rhos]
  variants = 2 if cfg.experiment == "layernorm_ablation" else 1
  return [(p, cfg.seeds * k * variants, cfg.budget(r, p)) for p in cfg.moduli for r, k in per_p]


def plan_line(cfg: Config) -> tuple[str, float]:
  """One line of what a configuration will cost here, timed on a compiled chunk of its
  largest size: runs, run-steps, the expected and the worst-case time; and the expected
  seconds."""
  cells = grid_cells(cfg)
  runs = sum(n for _, n, _ in cells)
  p_big = max(p for p, _, _ in cells)
  rate, _ = measure_rate(cfg.task(p_big), min(16, runs))
  expected, worst = training_seconds(cfg, cells, rate, p_big)
  return (f"{runs:>4} runs, at most {sum(n * b for _, n, b in cells):,} run-steps; expected "
          f"~{hms(expected)}, at most ~{hms(worst)} ({rate:,.0f} run-steps/s at p={p_big})",
          expected)


def plan(cfg: Config, cells: list[tuple[int, int, int]]) -> Estimate:
  """Print the grid's size before a long run; return its `Estimate`, which prints the time
  once training has timed its first chunk.

  cells: (p, number of runs, step budget) per group of runs. Other sizes than the timed
  one are scaled by their per-step arithmetic (the problem's `cost`). The expected time
  uses `expected_run_steps`; the budgets give the worst case.
  """
  n_runs = sum(n for _, n, _ in cells)
  run_steps = sum(n * b for _, n, b in cells)
  say(f"{cfg.experiment} ({cfg.preset} preset): {n_runs} runs over moduli "
      f"{', '.join(map(str, cfg.moduli))}, at most {run_steps:,} run-steps (budgets)")
  return Estimate(cfg, cells)


def eta_update(sess: "Session", p: int, free_rows, remaining: list[tuple[int, int, int]]) -> None:
  """After a free control: the expected time left, with the prior rescaled by its median."""
  est = getattr(sess, "estimate", None)
  med = cell_summary(free_rows)["median_t_grok"]
  if est is None or est.rate is None or med is None or not remaining:
    return
  cfg = sess.cfg
  scale = {p: med / (PRIOR_FRACTION * cfg.budget(None, p))}
  left, _ = training_seconds(cfg, remaining, est.rate, est.p_ref, scale)
  say(f"  ETA: ~{hms(left)} of training left (clamp cells of p={p} rescaled by its free "
      f"median T_grok {med:.0f}, x{scale[p]:.2f} the prior)")


def measure_rate(task: Task, batch: int) -> tuple[float, int | None]:
  """Run-steps per second of one compiled chunk on this machine (after compiling), and
  the vmap width `train` uses here."""
  import jax
  from grokjax.runtime import chunk_rate, default_vmap_width
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
  elif cfg.experiment == "free_training":  # every weight decay's curves are held at once
    runs = cfg.seeds * len(cfg.lrs) * len(cfg.wds or [cfg.wd])
  elif cfg.experiment == "free_norm_delay":
    runs = cfg.seeds * len(cfg.lrs) * len(cfg.wds or [cfg.wd]) * len(cfg.scales or [1.0])
  worst = 0
  # one task per phase shape: each modulus, and each training-set size a scan trains
  sizes = [cfg.train_size] + list(cfg.train_sizes or [])
  tasks = [dataclasses.replace(cfg, train_size=m).task(p) for p in cfg.moduli for m in sizes]
  for t in tasks:
    p = t.p
    prob, h = t.problem_def, cfg.hidden
    n_params, state_bytes = state_size(t)
    state = 3 * 4 * n_params + state_bytes
    budget = max([cfg.budget(None, p)] + [cfg.budget(r, p) for r in cfg.rhos])
    curves = 2 * len(CURVES) * 4 * -(-budget // cfg.eval_every)
    c = prob.n_classes
    act = 4 * 3 * (prob.n_train * (2 * h + 2 * c) + (prob.n_train + prob.n_test) * (h + c))
    worst = max(worst, runs * (state + curves) + act)
  return int(worst)


def state_size(task: Task) -> tuple[int, int]:
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
    if field in ("moduli", "train_sizes"):  # a scan: its largest value capped at v
      return memory_needed(dataclasses.replace(cfg, **{field: [min(q, v) for q in
                                                                getattr(cfg, field)]}))
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
