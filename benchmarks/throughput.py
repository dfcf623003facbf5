"""Throughput of the grokjax engine, in one process: one table, optionally as JSON.

    python benchmarks/throughput.py              # CPU-sized defaults
    python benchmarks/throughput.py --quick      # a fast sanity run (< 1 min)
    python benchmarks/throughput.py --grid-p 59 --grid-d 128 --grid-hidden 256 --grid-seeds 16 \
        --grid-scale 1.0 --matmul 8192           # the GPU case: the paper's dense-rho grid

Useful arithmetic of one full-batch training step of one run (the paper's MLP, factorised
first layer, n = round(frac p^2) training pairs), in FLOPs:

    forward   2 * (2 p d H)        two p x d x H products E W1_top, E W1_bottom
            + 2 n H p              output layer
    backward  2 * (2 n H p)        d(h) and d(W2)
            + 2 * 2 * (2 p d H)    d(E) and d(W1) through the two p x H products
    evaluation, every eval_every steps: 2 (2 p d H) + 2 p^2 H p  (forward on all pairs)

With `--arch transformer` (the paper's attention model, factorised: keys and values once
per vocabulary row and position; d = 128, MLP width M = `--hidden` 512, 4 heads), per
sample the products x W_o (d d), LN(x) W_in (d M), GELU W_out (M d), LN(x) W_unembed
(d (p + 1)) and the three-position attention (6 d), plus per step the keys and values of
3 (p + 1) rows (2 x 3 (p + 1) d d): forward F = 2 n (d^2 + 2 d M + d (p + 1) + 6 d)
+ 12 (p + 1) d^2, backward 2 F, evaluation F with p^2 samples.

Elementwise work (GELU, softmax, Adam, the clamp) is not counted: the figure is a lower
bound on the arithmetic, and "fraction of ceiling" compares it with a large fp32 matmul.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import os
import sys

import numpy as np

if __name__ == "__main__":  # the device count must be chosen before JAX starts
  _n = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--cpu-devices=")), None)
  os.environ.setdefault("GROKJAX_CPU_DEVICES", _n or "")

import jax
import jax.numpy as jnp

from grokjax.engine.optim import NEVER
from grokjax.engine.program import program
from grokjax.engine.runtime import chunk_rate, default_vmap_width, use_cpu_cores
from grokjax.engine.spec import Runs, Task, hparams
from grokjax.engine.train import train


def useful_flops_per_step(task: Task) -> float:
  p, d, h, n = task.p, task.d, task.hidden, task.n_train
  if task.arch == "transformer":
    forward = lambda m: 2 * m * (d * d + 2 * d * h + d * (p + 1) + 6 * d) + 12 * (p + 1) * d * d
    return 3 * forward(n) + forward(p * p) / task.eval_every
  first = 2 * (2 * p * d * h)
  out = 2 * n * h * p
  step = first + out + 2 * out + 2 * first
  evaluation = first + 2 * p * p * h * p
  return step + evaluation / task.eval_every


def matmul_ceiling(n: int, reps: int = 20) -> float:
  """Median GFLOP/s of an n x n x n fp32 matmul through JAX."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t0)
  return 2 * n ** 3 / np.median(times) / 1e9


def engine_rate(task: Task, n_runs: int, steps: int, width="auto", clamp: bool = True,
                devices=None) -> float:
  """Run-steps per second of the engine's compiled chunk of `steps` steps, after
  compilation, clamp on, the run axis split over the devices as `train` does
  (`grokjax.engine.runtime.chunk_rate`). width: the engine's vmap_width ("auto": its default)."""
  return chunk_rate(task, n_runs, max(1, steps // task.eval_every), clamp=clamp,
                    vmap_width=width, devices=devices)


def profile(task: Task, reps: int = 200) -> dict:
  """Milliseconds per run-step of one run's pieces, each jitted in a loop of `reps`:
  the forward pass on the train pairs, forward + backward, the whole step (adds AdamW and
  the clamp), and one evaluation on all p^2 pairs (paid every eval_every steps)."""
  prog = program(task)
  state = jax.tree.map(lambda x: x[0], prog.init(jnp.arange(1, dtype=jnp.uint32)))
  runs = Runs(np.arange(1), 1e-3, 1.0, 50.0, 0, 10 ** 7)
  hp = jax.tree.map(lambda x: jnp.asarray(x[0]), hparams(runs, np.dtype(task.dtype)))
  args = prog.problem.train_set(state.data)
  pieces = {
      "forward": lambda s: prog.loss(s.params, *args),
      # every gradient leaf used: summing one leaf lets XLA drop the others' products
      "forward_backward": lambda s: sum(g.sum() for g in jax.tree.leaves(
          jax.grad(prog.loss)(s.params, *args))),
      "whole_step": lambda s: sum(x.sum() for x in jax.tree.leaves(prog.step(s, hp).params)),
      "evaluation": lambda s: prog.evaluate(s)["test_acc"],
  }
  out = {}
  for name, f in pieces.items():
    loop = jax.jit(prog.precise(lambda s, f=f: jax.lax.fori_loop(
        0, reps, lambda i, acc: acc + f(jax.tree.map(lambda x: x + 0 * acc.astype(x.dtype)
                                                     if x.dtype.kind == "f" else x, s)), 0.0)))
    loop(state).block_until_ready()
    t0 = time.perf_counter()
    loop(state).block_until_ready()
    out[f"{name}_ms"] = 1e3 * (time.perf_counter() - t0) / reps
  out["evaluation_per_step_ms"] = out["evaluation_ms"] / task.eval_every
  return out


def dense_rho_grid(args) -> tuple[Task, Runs, np.ndarray]:
  """The paper's dense-rho grid (free control + rho 0.85..1.30), budgets scaled by grid_scale."""
  task = Task(p=args.grid_p, d=args.grid_d, hidden=args.grid_hidden, eval_every=args.eval_every)
  sched = {0.85: 8000, 0.90: 8000, 0.95: 9000, 1.00: 12000, 1.05: 18000, 1.10: 27000,
           1.15: 40000, 1.20: 51000, 1.25: 66000, 1.30: 60000}
  rhos = [None] + list(sched)
  seeds = np.tile(np.arange(args.grid_seeds), len(rhos))
  rho = np.repeat([np.nan if r is None else r for r in rhos], args.grid_seeds)
  budget = np.repeat([sched[1.00] if r is None else sched[r] for r in rhos], args.grid_seeds)
  budget = np.maximum(args.eval_every, (budget * args.grid_scale).astype(int))
  free = np.isnan(rho)
  runs = Runs(seeds, args.grid_lr, 1.0, np.where(free, np.nan, rho * args.grid_wc),
              np.where(free, NEVER, args.grid_t_int), budget)
  return task, runs, rho


def grid_benchmark(args) -> dict:
  task, runs, _ = dense_rho_grid(args)
  margin = args.retire_margin
  out = {}
  lock_runs = Runs(runs.seed, runs.lr, runs.wd, runs.target_norm, runs.t_int,
                   np.full(len(runs), runs.budget.max()))
  for name, grid, retire in (("lockstep", lock_runs, None), ("early_exit", runs, margin)):
    train(task, grid.take(np.arange(min(4, len(grid)))), chunk_steps=args.chunk_steps,
          retire_margin=retire, progress=False)  # compile outside the timing
    t0 = time.perf_counter()
    res = train(task, grid, chunk_steps=args.chunk_steps, retire_margin=retire, progress=False)
    wall = time.perf_counter() - t0
    red = res.reduce()
    # A run is finished at T_grok + margin once grokked, else at its own (original) budget.
    finish = np.where(red.grokked, np.minimum(red.t_grok + margin, runs.budget), runs.budget)
    out[name] = dict(wall_s=wall, lane_steps=res.lane_steps, useful_run_steps=int(finish.sum()),
                     wasted_fraction=1 - finish.sum() / res.lane_steps,
                     grokked=int(red.grokked.sum()), runs=len(runs))
  out["speedup"] = out["lockstep"]["wall_s"] / out["early_exit"]["wall_s"]
  return out


def peak_memory() -> dict:
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
  mem = dict(host_peak_rss_mib=rss)
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    mem["device_peak_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
  return mem


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--p", type=int, default=59)
  ap.add_argument("--d", type=int, default=128)
  ap.add_argument("--hidden", type=int, help="MLP width (default 256; 512 with --arch transformer)")
  ap.add_argument("--arch", choices=["mlp", "transformer"], default="mlp",
                  help="the paper's MLP, or its attention model (d 128, 4 heads)")
  ap.add_argument("--layernorm", action="store_true", help="the attention model with LayerNorm")
  ap.add_argument("--runs", type=int, default=16)
  ap.add_argument("--steps", type=int, default=200, help="steps per timed chunk")
  ap.add_argument("--eval-every", type=int, default=10)
  ap.add_argument("--matmul", type=int, default=2048, help="size of the ceiling matmul")
  ap.add_argument("--grid-p", type=int, default=47)
  ap.add_argument("--grid-d", type=int, default=32)
  ap.add_argument("--grid-hidden", type=int, default=128)
  ap.add_argument("--grid-seeds", type=int, default=4)
  ap.add_argument("--grid-lr", type=float, default=1e-2)
  ap.add_argument("--grid-wc", type=float, default=39.2, help="W_c of the grid's task")
  ap.add_argument("--grid-t-int", type=int, default=100)
  ap.add_argument("--grid-scale", type=float, default=0.1, help="budget multiplier")
  ap.add_argument("--retire-margin", type=int, default=200)
  ap.add_argument("--chunk-steps", type=int, default=100)
  ap.add_argument("--skip-sequential", action="store_true")
  ap.add_argument("--skip-grid", action="store_true")
  ap.add_argument("--quick", action="store_true", help="small sizes: a sanity check")
  ap.add_argument("--cpu-devices", help="=N: JAX devices the CPU is split into (default: one "
                  "per core, as the experiment scripts do; =1 is the one-device layout)")
  ap.add_argument("--profile", action="store_true", help="also time one run-step's pieces")
  ap.add_argument("--json", help="also write the table here")
  args = ap.parse_args()
  use_cpu_cores()
  if args.hidden is None:
    args.hidden = 512 if args.arch == "transformer" else 256
  if args.quick:
    args.runs, args.steps, args.matmul, args.grid_seeds, args.grid_scale = 4, 50, 1024, 2, 0.02

  dev = jax.devices()[0]
  table = dict(device=f"{dev.platform}: {getattr(dev, 'device_kind', dev)}",
               device_count=jax.device_count(), jax=jax.__version__, host=platform.processor()
               or platform.machine())
  table["matmul_ceiling_gflops"] = matmul_ceiling(args.matmul)
  task = Task(p=args.p, d=args.d, hidden=args.hidden, eval_every=args.eval_every,
              arch=args.arch, layernorm=args.layernorm)
  vm = engine_rate(task, args.runs, args.steps)
  flops = useful_flops_per_step(task)
  table["paper_scale"] = dict(arch=args.arch, layernorm=args.layernorm, p=args.p, d=args.d,
                              hidden=args.hidden, runs=args.runs,
                              eval_every=args.eval_every,
                              vmap_width=default_vmap_width(jax.devices()),
                              run_steps_per_s=vm,
                              run_steps_per_s_all_vmapped=engine_rate(task, args.runs, args.steps,
                                                                      width=None),
                              useful_mflop_per_run_step=flops / 1e6,
                              useful_gflops=vm * flops / 1e9,
                              fraction_of_ceiling=vm * flops / 1e9 / table["matmul_ceiling_gflops"])
  if args.profile:
    table["profile_one_run"] = profile(task)
  if not args.skip_sequential:
    seq_steps = max(args.eval_every, args.steps // 2)
    one = jax.devices()[:1]
    engine_rate(task, 1, seq_steps, width=None, devices=one)  # compile the batch-of-one program
    t0 = time.perf_counter()
    for _ in range(args.runs):
      engine_rate(task, 1, seq_steps, width=None, devices=one)
    # engine_rate times its own chunk; re-time the whole loop for the sequential figure
    seq = args.runs * 2 * seq_steps / (time.perf_counter() - t0)
    table["sequential"] = dict(run_steps_per_s=seq, vmapped_over_sequential=vm / seq)
  if not args.skip_grid:
    table["mixed_budget_grid"] = grid_benchmark(args)
  table["memory"] = peak_memory()
  print(json.dumps(table, indent=2))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(table, f, indent=2)


if __name__ == "__main__":
  main()
