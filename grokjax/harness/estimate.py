"""Before a long run: how long it will take on this machine, and whether it fits in memory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, NamedTuple

import numpy as np

from grokjax.harness.config import Config
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import cell_summary
from grokjax.engine.spec import CURVES, Task
from grokjax.engine.keep import keep_every, keeps_grok


# The prior of the time estimate. For the paper's MLP on a + b mod p, inside the ranges it
# was fitted over, a run is expected to grok at the T_grok of `grok_prior.json`: a
# log-linear law in p, lr, weight decay, train fraction and held norm, fitted to every
# committed paper-preset run (tools/fit_grok_prior.py). Otherwise, after this fraction of
# its cell's budget (the presets' budgets are 3 to 10 times the median grok times they
# were set from). Either way it stops retire_margin plus half a chunk later; once a
# modulus's free control has finished, its measured median rescales the prior (`eta_update`).
PRIOR_FRACTION = 0.2
PRIOR_FEATURES = ("1", "ln p", "ln lr", "ln wd", "ln frac", "held", "held (rho - 1)",
                  "held (rho - 1) ln p", "held ln lr")


class Cell(NamedTuple):
  """A group of runs an experiment trains with one size and one step budget.

  phase: the phase that trains it; the cells of one phase are held in memory together.
  train_size: its training examples per seed where it differs from the configuration's
    (sparse parity's m scan), else None.
  rho: the held norm (rho x W_c) of its runs, None when free.
  wd: their weight decay where it differs from the configuration's (a --wds scan).
  dtype: their arithmetic where it differs from the configuration's (precision's arms).
  """
  p: int
  runs: int
  budget: int
  phase: str
  train_size: int | None = None
  rho: float | None = None
  wd: float | None = None
  dtype: str | None = None

  def task(self, cfg: Config):
    own = {k: v for k, v in (("train_size", self.train_size), ("dtype", self.dtype))
           if v is not None}
    return (dataclasses.replace(cfg, **own) if own else cfg).task(self.p)


# A run-step's cost by arithmetic, relative to float32: float64 measured 3.4-5.6x float32 on
# the 2-core AVX-512 EPYC (the committed docs/results/precision folders' timing.json, the
# MLP at p = 41 and 59). The plan scales a rate timed in one arithmetic by these to the
# cells of another (the other arithmetics' own chunks are not timed before they run).
DTYPE_COST = {"float32": 1.0, "bfloat16": 1.0, "float64": 4.5}


def dtype_cost(cfg: Config, c: Cell) -> float:
  return DTYPE_COST.get(c.dtype or cfg.dtype, 1.0)


def prior_features(p: int, rho: float | None, lr: float, wd: float, frac: float) -> list[float]:
  """The regressors of the grok-time prior, in the order of PRIOR_FEATURES."""
  held = 0.0 if rho is None else 1.0
  r = 0.0 if rho is None else rho - 1.0
  return [1.0, np.log(p), np.log(lr), np.log(wd), np.log(frac), held, held * r,
          held * r * np.log(p), held * np.log(lr)]


_PRIOR: dict | None = None


def grok_prior() -> dict:
  """grok_prior.json beside this module (its coefficients, ranges and sources)."""
  global _PRIOR
  if _PRIOR is None:
    from grokjax.harness import io
    _PRIOR = io.read_json(os.path.join(os.path.dirname(__file__), "grok_prior.json"))
  return _PRIOR


def prior_t_grok(cfg: Config, p: int, rho: float | None, lr: float, wd: float) -> float | None:
  """The fitted prior's T_grok for one run, or None outside its model and ranges."""
  law = grok_prior()
  m = law["model"]
  if (cfg.arch, cfg.problem, cfg.d, cfg.hidden, bool(cfg.layernorm)) != (
      m["arch"], m["problem"], m["d"], m["hidden"], m["layernorm"]) or cfg.train_size:
    return None
  inside = lambda k, v: law["ranges"][k][0] <= v <= law["ranges"][k][1]
  if not (inside("p", p) and inside("lr", lr) and inside("wd", wd) and inside("frac", cfg.frac)
          and (rho is None or inside("rho", rho))):
    return None
  return float(np.exp(np.dot(law["coef"], prior_features(p, rho, lr, wd, cfg.frac))))


def expected_t(cfg: Config, c: Cell, lr: float) -> float:
  """A run's expected T_grok in cell c at learning rate lr: the fitted prior where it
  holds, else PRIOR_FRACTION of the cell's budget."""
  t = prior_t_grok(cfg, c.p, c.rho, lr, cfg.wd if c.wd is None else c.wd)
  return PRIOR_FRACTION * c.budget if t is None else t


def expected_run_steps(cfg: Config, cells: list[Cell],
                       scale: dict[int, float] | None = None) -> float:
  """Expected run-steps of the cells (their runs spread evenly over cfg.lrs); scale[p]
  multiplies the prior's T_grok."""
  total = 0.0
  for c in cells:
    if cfg.retire_margin is None:
      total += c.runs * c.budget
      continue
    per_lr = [min(c.budget, expected_t(cfg, c, lr) * (scale or {}).get(c.p, 1.0)
                  + cfg.retire_margin + cfg.chunk_steps / 2) for lr in cfg.lrs]
    total += c.runs * float(np.mean(per_lr))
  return total


def training_seconds(cfg: Config, cells: list[Cell], rate: float, p_ref: int,
                     scale: dict[int, float] | None = None, dtype_ref: str | None = None
                     ) -> tuple[float, float]:
  """(expected, worst-case) seconds to train the cells at `rate` run-steps/s measured at
  size p_ref in `dtype_ref` (default the configuration's); other sizes scaled by their
  per-step arithmetic (the problem's `cost`: n_train * p for a modular problem), other
  arithmetics by `DTYPE_COST`."""
  ref = cfg.task(p_ref).problem_def.cost() * DTYPE_COST.get(dtype_ref or cfg.dtype, 1.0)
  cost = lambda c: c.task(cfg).problem_def.cost() * dtype_cost(cfg, c) / ref
  expected = sum(expected_run_steps(cfg, [c], scale) * cost(c) for c in cells) / rate
  worst = sum(c.runs * c.budget * cost(c) for c in cells) / rate
  return expected, worst


class Estimate:
  """The time estimate of one experiment, from the training's own program.

  `plan` prints the grid's size; the first chunk of training that does not compile (its
  run-steps/s, reported by `grokjax.engine.train.train` through `Session.phase`) gives the rate,
  and `measured` prints the expected and the worst-case time of the whole grid. No second
  program is compiled or run for it, and when every phase is already in the results folder
  nothing is timed at all.
  """

  def __init__(self, cfg: Config, cells: list[Cell]):
    self.cfg, self.cells = cfg, cells
    self.rate: float | None = None  # run-steps/s, measured at size p_ref in dtype_ref
    self.p_ref: int | None = None
    self.dtype_ref: str | None = None
    self.clean = False  # measured on a chunk without compiling

  def wants(self) -> bool:
    return not self.clean

  def measured(self, task: Task, name: str, n_runs: int, rate: float, clean: bool) -> None:
    """Take the rate of a training; print the estimate the first time."""
    told = self.rate is not None
    self.rate, self.p_ref, self.clean, self.dtype_ref = rate, task.p, clean, task.dtype
    if told:  # a rate with compiles in it, replaced by a clean one for later ETAs
      return
    import jax
    from grokjax.engine.runtime import default_vmap_width
    expected, worst = training_seconds(self.cfg, self.cells, rate, task.p,
                                       dtype_ref=task.dtype)
    how = "vmapped" if default_vmap_width(jax.devices()) is None else "mapped one by one"
    if jax.device_count() > 1:
      how += f", {jax.device_count()} {jax.devices()[0].platform} devices"
    timed = (f"timed on {name}'s own chunks" if clean else
             f"timed over all of {name}, compiles included")
    say(f"  this machine: {rate:,.0f} run-steps/s at p={task.p} ({n_runs} runs {how}; {timed}); "
        f"the whole grid: expected ~{hms(expected)} of training, at most ~{hms(worst)} if no "
        "run groks early")


def plan_line(cfg: Config, cells: list[Cell]) -> tuple[str, float]:
  """One line of what a configuration's cells (its experiment's `cells(cfg)`) will cost
  here, timed on a compiled chunk of its largest size: runs, run-steps, the expected and
  the worst-case time; and the expected seconds."""
  runs = sum(c.runs for c in cells)
  p_big = max(c.p for c in cells)
  rate, _ = measure_rate(cfg.task(p_big), min(16, runs))
  expected, worst = training_seconds(cfg, cells, rate, p_big)
  return (f"{runs:>4} runs, at most {sum(c.runs * c.budget for c in cells):,} run-steps; expected "
          f"~{hms(expected)}, at most ~{hms(worst)} ({rate:,.0f} run-steps/s at p={p_big})"
          + params_note(cfg, cells), expected)


def plan(cfg: Config, cells: list[Cell]) -> Estimate:
  """Print the grid's size before a long run; return its `Estimate`, which prints the time
  once training has timed its first chunk.

  cells: the experiment's `cells(cfg)`. Other sizes than the timed one are scaled by their
  per-step arithmetic (the problem's `cost`). The expected time uses `expected_run_steps`;
  the budgets give the worst case.
  """
  n_runs = sum(c.runs for c in cells)
  run_steps = sum(c.runs * c.budget for c in cells)
  trained = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in cfg.choices().items())
  if cfg.scan:  # one per-run hyperparameter over its values, one program
    values = " / ".join(f"{v:g}" for v in cfg.scan_values)
    trained = ", ".join(filter(None, [trained, f"{cfg.scan_axis} scan {values}"]))
  say(f"{cfg.experiment} ({cfg.preset} preset): {n_runs} runs over moduli "
      f"{', '.join(map(str, cfg.moduli))}, at most {run_steps:,} run-steps (budgets)"
      + (f"; {trained}" if trained else "") + params_note(cfg, cells))
  return Estimate(cfg, cells)


def params_bytes(cfg: Config, cells: list[Cell]) -> int:
  """Bytes of one set of parameters per run, uncompressed: what --save-params final keeps,
  and the most --save-params grok keeps (it keeps only the runs that grok)."""
  itemsize = np.dtype(cfg.dtype).itemsize
  return sum(c.runs * state_size(c.task(cfg))[0] * itemsize for c in cells)


def params_note(cfg: Config, cells: list[Cell]) -> str:
  """The plan's words on --save-params: its disk cost, or nothing when off."""
  if cfg.save_params == "none":
    return ""
  mib = params_bytes(cfg, cells) / 2 ** 20
  every = keep_every(cfg.save_params)
  if every is not None:
    saves = sum(c.runs * (c.budget // every) * state_size(c.task(cfg))[0] for c in cells)
    traj = saves * np.dtype(cfg.dtype).itemsize / 2 ** 20
    return (f"; --save-params every:{every} keeps at most {traj:,.1f} MiB of trajectories (every "
            f"{every:,} steps) and {mib:,.1f} MiB at T_grok in params/, as much in phases/, and "
            "holds the trajectories in memory while a phase trains")
  if cfg.save_params == "grok":
    return (f"; --save-params grok keeps up to {mib:,.1f} MiB of parameters in params/ (the "
            "runs that grok, at T_grok) and as much in phases/")
  return (f"; --save-params final keeps {mib:,.1f} MiB of parameters in params/ (and as much "
          "in phases/)")


def eta_update(sess: "Session", p: int, free_rows, remaining: list[Cell]) -> None:
  """After a free control: the expected time left, with the prior rescaled by its median."""
  est = sess.estimate
  med = cell_summary(free_rows)["median_t_grok"]
  if est is None or est.rate is None or med is None or not remaining:
    return
  cfg = sess.cfg
  free = Cell(p, 1, cfg.budget(None, p), "free")
  scale = {p: med / expected_t(cfg, free, cfg.lrs[0])}
  left, _ = training_seconds(cfg, remaining, est.rate, est.p_ref, scale, est.dtype_ref)
  say(f"  ETA: ~{hms(left)} of training left (clamp cells of p={p} rescaled by its free "
      f"median T_grok {med:.0f}, x{scale[p]:.2f} the prior)")


def measure_rate(task: Task, batch: int) -> tuple[float, int | None]:
  """Run-steps per second of one compiled chunk on this machine (after compiling), and
  the vmap width `train` uses here."""
  import jax
  from grokjax.engine.runtime import chunk_rate, default_vmap_width
  return chunk_rate(task, batch, 1, reps=3), default_vmap_width(jax.devices())


def memory_needed(cfg: Config, cells: list[Cell]) -> int:
  """Bytes of host memory the largest phase of the cells needs, roughly.

  Per batch lane (at least 8 per device, the engine's batch floor, one device per core
  unless GROKJAX_CPU_DEVICES says otherwise): parameters and two Adam moments (and, under
  --save-params grok, the copy at T_grok the state carries) twice, for the chunk's donated
  buffers and the checkpoint's copy, and the split. Per run, the curves of its whole budget
  (held on the host and copied once into curves.npz). Once per device: the activations of
  a training step and of an evaluation over all p^2 pairs (CPU devices train one run at a
  time, so activations do not scale with the runs). Measured at p = 23, d = 16 on 2 cores:
  the peak resident memory of a 2-run free phase grows by 42-47 KiB per hidden unit; this
  counts 53 KiB (`benchmarks/README.md`).
  """
  worst = 0
  for phase in dict.fromkeys(c.phase for c in cells):
    group = [c for c in cells if c.phase == phase]
    t = max((c.task(cfg) for c in group), key=lambda t: t.problem_def.cost())
    prob, h = t.problem_def, cfg.hidden
    n_params, state_bytes = state_size(t)
    state = 2 * (3 + keeps_grok(cfg.save_params)) * 4 * n_params + state_bytes
    curves = 2 * len(CURVES) * 4 * -(-max(c.budget for c in group) // cfg.eval_every)
    k = prob.n_classes
    act = 4 * 3 * (prob.n_train * (2 * h + 2 * k) + (prob.n_train + prob.n_test) * (h + k))
    runs = sum(c.runs for c in group)
    lanes = max(runs, 8 * _devices())
    every = keep_every(cfg.save_params)  # a trajectory lives on the host, twice when saved
    traj = 0 if every is None else 2 * 4 * n_params * sum(c.runs * (c.budget // every)
                                                         for c in group)
    worst = max(worst, lanes * state + runs * curves + _devices() * act + traj)
  return int(worst)


def _devices() -> int:
  """The CPU devices the engine will split this host into (`runtime.use_cpu_cores`), read
  without starting JAX."""
  text = os.environ.get("GROKJAX_CPU_DEVICES", "")
  if text.strip().isdigit() and int(text) >= 1:
    return int(text)
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=256)
def state_size(task: Task) -> tuple[int, int]:
  """(parameters, bytes of the per-seed data) of one run, from shapes alone (abstract:
  nothing here may start a JAX backend, jax.distributed comes later). Cached per Task: a
  command's checks and plan ask for each of its Tasks several times."""
  import jax
  from flax import nnx
  model = nnx.eval_shape(lambda: task.make_model(nnx.Rngs(0)))
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  return n_params, task.problem_def.data_bytes()


def available_memory(root: str = "/") -> int:
  """Bytes of memory this process can still have: the machine's (MemAvailable, or its
  total), and at most what its container's memory cgroup leaves (`cgroup_headroom`)."""
  host = None
  try:
    with open(os.path.join(root, "proc/meminfo")) as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          host = int(line.split()[1]) * 1024
  except OSError:
    pass
  if host is None:
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  limit = cgroup_headroom(root)
  return host if limit is None else min(host, limit)


def cgroup_headroom(root: str = "/") -> int | None:
  """Limit minus usage of this process's memory cgroup (v2: memory.max and memory.current;
  v1: memory.limit_in_bytes and memory.usage_in_bytes), as Docker, SLURM and Kubernetes
  set them; None where no limit is set or none can be read. The cgroup's own folder is
  tried first, then the mount's root (a container often sees its cgroup there)."""
  def read(path):
    try:
      with open(path) as f:
        return f.read().strip()
    except OSError:
      return None
  lines = (read(os.path.join(root, "proc/self/cgroup")) or "").splitlines()
  base = os.path.join(root, "sys/fs/cgroup")
  tries = []
  for line in lines:
    _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
    rel = path.lstrip("/")
    if controllers == "":  # v2
      tries += [(os.path.join(base, rel, "memory.max"), os.path.join(base, rel, "memory.current")),
                (os.path.join(base, "memory.max"), os.path.join(base, "memory.current"))]
    elif "memory" in controllers.split(","):  # v1
      v1 = os.path.join(base, "memory")
      tries += [(os.path.join(v1, rel, "memory.limit_in_bytes"),
                 os.path.join(v1, rel, "memory.usage_in_bytes")),
                (os.path.join(v1, "memory.limit_in_bytes"), os.path.join(v1, "memory.usage_in_bytes"))]
  for limit_path, usage_path in tries:
    limit = read(limit_path)
    if limit is None:
      continue
    if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:  # no limit set
      return None
    usage = read(usage_path)
    return max(0, int(limit) - (int(usage) if usage and usage.isdigit() else 0))
  return None


def largest_fitting(cfg: Config, field: str, have: int,
                    cells: Callable[[Config], list[Cell]]) -> int | None:
  """The largest value of an integer field (seeds, steps, the largest modulus) that fits;
  cells: the experiment's rule for the runs of a configuration."""
  def need(v):
    if field in ("moduli", "train_sizes"):  # a scan: its largest value capped at v
      new = dataclasses.replace(cfg, **{field: [min(q, v) for q in getattr(cfg, field)]})
    else:
      new = dataclasses.replace(cfg, **{field: v})
    return memory_needed(new, cells(new))
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
