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
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grokjax.engine.checkpoints import Checkpoints, grid_fingerprint
from grokjax.engine.state import LoopState
from grokjax.engine.keep import (check_grok_steps, keep_every, keep_final, keep_grok,
                                 keep_trajectory, keeps_grok, n_keep_of, named_leaves)
from grokjax.engine.program import GrokRule, program
from grokjax.engine.progress import progress as progress_bar
from grokjax.engine.reduce import grok_times
from grokjax.engine.runtime import all_cpu, batch_floor, default_vmap_width, to_host
from grokjax.engine.spec import Runs, SweepResult, Task, hparams


class Flight(NamedTuple):
  """A chunk queued on the device: its records and status (step, diverged) to read, and the
  lane layout it ran under; `compiles`: its program was compiled for it."""
  rec: Any
  status: Any
  lanes: np.ndarray
  pad: np.ndarray
  compiles: bool


def batch_size(live: int, ndev: int, cap: int, floor: int = 1) -> int:
  """Batch size for `live` runs: ndev times the next power of two (at least `floor` per
  device), never above cap. Powers of two keep the distinct batch sizes, and so the
  compiled programs, of a phase to about log2(runs); padding stays under 50 %."""
  per = max(floor, 1 << max(0, -(-live // ndev) - 1).bit_length())
  return min(ndev * per, cap)


def lane_layout(sources: np.ndarray, size: int, ndev: int) -> tuple[np.ndarray, np.ndarray]:
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


def _under_task_precision(fn: Callable) -> Callable:
  """fn(task, runs, ...) under JAX's x64 mode exactly when the Task is float64, whatever
  the process's setting: a float32 grid gives the same bits in a process that also trains
  float64 ones (x64 mode otherwise promotes some of optax's scalar arithmetic)."""
  @functools.wraps(fn)
  def wrapped(task: Task, runs: Runs, **kwargs):
    with jax.enable_x64(task.dtype == "float64"):
      return fn(task, runs, **kwargs)
  return wrapped


@_under_task_precision
def train(task: Task, runs: Runs, *, chunk_steps: int = 500, retire_margin: int | None = 500,
          grok_threshold: float = 0.90, mem_threshold: float = 0.99, grok_persist: int = 1,
          progress: bool = True,
          devices=None, desc: str | None = None, checkpoint: str | None = None,
          checkpoint_every_s: float = 60.0, vmap_width: int | None | str = "auto",
          overlap: bool | str = "auto", on_rate: Callable[[float], None] | None = None,
          keep_params: str = "none") -> SweepResult:
  """Train every run of a grid; return its curves. A float64 Task trains under JAX's x64
  mode and a float32 one without it, whatever the process's setting.

  Args:
    task: the static configuration.
    runs: one row per run.
    chunk_steps: steps per compiled chunk (rounded to a multiple of eval_every); the
      granularity of progress, retirement, checkpoints and batch compaction.
    retire_margin: a run that has memorised and grokked is retired once it is this many
      steps past T_grok; None trains every run to its own budget.
    grok_threshold, mem_threshold, grok_persist: what retirement calls grokked
      (`grokjax.engine.reduce.grok_times`).
    progress: show the progress with run-steps/s and the time left on stderr: a tqdm bar on
      a terminal or in a notebook, a plain line a minute in a log file
      (`grokjax.engine.progress`).
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
    keep_params: "none"; "final": keep each run's parameters as it stops (at its budget,
      on retiring or diverging), in `SweepResult.params`; "grok": its parameters at its
      T_grok under grok_threshold and grok_persist instead, captured on the device at that
      evaluation (NaN for a run that never grokked); "every:N": those at T_grok, and a
      trajectory of every run's parameters at steps N, 2N, ... (`SweepResult.trajectory`;
      N a multiple of eval_every; chunks are shortened to end on every multiple of N, so
      the host copies parameters once per N steps, never per step). Any of them turns
      `overlap` off, so that the parameters read as a run stops are those of the chunk that
      stopped it.

  Returns:
    A `SweepResult`.
  """
  if task.layernorm != "per_run" and runs.layernorm.any():
    raise ValueError("runs with their own LayerNorm switch need Task(layernorm='per_run')")
  if not task.noise and runs.noise.any():
    raise ValueError("runs with parameter noise (Runs.noise > 0) need Task(noise=True)")
  if not task.temperature and np.any(runs.temperature != 1):
    raise ValueError("runs with an output temperature (Runs.temperature != 1) need "
                     "Task(temperature=True)")
  if not task.momentum and not np.isnan(runs.momentum).all():
    raise ValueError("runs with their own momentum (Runs.momentum) need Task(momentum=True)")
  own = ~np.isnan(runs.grokfast_alpha) | ~np.isnan(runs.grokfast_lamb)
  if own.any() and not task.grokfast:
    raise ValueError("runs with their own Grokfast alpha or lambda need "
                     "Task(grad_transform='grokfast')")
  every = keep_every(keep_params)
  rule = GrokRule(float(grok_threshold), int(grok_persist))
  sizes = np.where(runs.size == 0, task.p, runs.size)
  allowed = task.sizes or (task.p,)
  if not np.isin(sizes, allowed).all():
    raise ValueError(f"run sizes {sorted(set(sizes.tolist()) - set(allowed))} are not among the "
                     f"Task's {allowed} (several moduli in one program: Task(sizes=...))")
  which = np.searchsorted(np.array(allowed), sizes).astype(np.int32)
  t0 = time.perf_counter()
  ev = task.eval_every
  chunk_evals = max(1, int(chunk_steps) // ev)
  n_evals = -(-runs.budget // ev)
  budgets = n_evals * ev
  chunk_evals = min(chunk_evals, int(n_evals.max()))  # never longer than the longest budget
  # Runs retire only at the end of a chunk of this length, whatever `every` does to chunks.
  retire_len = chunk_evals * ev
  if every is not None:  # a chunk ends at every multiple of N: the host copies nothing between
    if every % ev:
      raise ValueError(f"keep_params every:{every}: N must be a multiple of eval_every ({ev})")
    chunk_evals = math.gcd(every // ev, chunk_evals)
  steps = ev * np.arange(1, n_evals.max() + 1)

  devices = list(devices or jax.devices())
  ndev = len(devices)
  mesh = Mesh(np.array(devices), ("runs",))
  sharding = NamedSharding(mesh, PartitionSpec("runs"))
  grok_kept = keeps_grok(keep_params)
  prog = program(task, rule if grok_kept else None)
  prog.check_groups(runs)
  width = default_vmap_width(devices) if vmap_width == "auto" else vmap_width
  hp_all = hparams(dataclasses.replace(runs, budget=budgets), np.dtype(task.dtype))
  fingerprint = grid_fingerprint(task, runs)
  if keep_params != "none":  # another loop state: a checkpoint without it is another grid's
    fingerprint = hashlib.sha256(f"{fingerprint}|keep {keep_params} {rule}".encode()).hexdigest()
  ckpt = Checkpoints(checkpoint, fingerprint, ndev) if checkpoint else None

  loop, state = _start(task, runs, prog, ckpt, sharding, sizes, which, len(steps), budgets,
                       keep_params, width)
  size = len(loop.lanes)
  lanes, pad, live = loop.lanes, loop.pad, loop.live
  last_step, diverged, curves = loop.last_step, loop.diverged, loop.curves
  elapsed0 = float(loop.elapsed)

  bar = None
  if progress:  # a resumed grid starts at the run-steps it had trained, retired runs' budgets off
    bar = progress_bar(int(budgets.sum() - np.sum((budgets - last_step)[~live])), desc,
                       initial=int(last_step.sum()))
  overlap = (not all_cpu(devices)) if overlap == "auto" else bool(overlap)
  overlap = overlap and keep_params == "none"
  fn = prog.chunk(chunk_evals, width, mesh)
  chunk_len = chunk_evals * ev
  put_hp = lambda lanes, pad: jax.device_put(
      jax.tree.map(lambda v: v[lanes], hp_all)._replace(active=~pad), sharding)

  def launch(state, hp, lanes, pad):
    """Queue one chunk on the device; return the state it will leave and its ticket."""
    compiles = (fn, len(lanes)) not in prog.seen
    prog.seen.add((fn, len(lanes)))
    state, rec, status = fn(state, hp)
    # the lanes paid for: all of them when vectorised; one at a time, padding is skipped
    paid = len(lanes) if width != 1 else int(np.sum(~pad))
    loop.lane_steps = np.int64(loop.lane_steps + paid * chunk_len)
    return state, Flight(rec=rec, status=status, lanes=lanes, pad=pad, compiles=compiles)

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
    rec, (step_now, div_now) = to_host((flight.rec, flight.status))
    t_prev, t_read = t_read, time.perf_counter()
    real, run, trained = _read(loop, flight, rec, step_now, div_now, n_evals, chunk_evals, ev,
                               every, state.params)
    if not rate_told and not flight.compiles and t_prev is not None and trained:
      # Run-steps/s of the training's own program, read to read (the host's share in), from
      # the first chunk that did not compile.
      on_rate(trained / max(t_read - t_prev, 1e-9), True)
      rate_told = True

    # Runs diverge and retire at the reads of a plain loop's chunks, also when `every`
    # shortens them (a chunk that trained nothing ends them at once).
    clock = int(step_now[real].max()) if len(real) else 0
    on_time = clock % retire_len == 0 or trained == 0
    stops = diverged >= 0
    if retire_margin is not None:
      res = grok_times(steps, curves["train_acc"], curves["test_acc"], curves["norm"], budgets,
                       mem_threshold=mem_threshold, grok_threshold=grok_threshold,
                       grok_persist=grok_persist)
      stops |= res.grokked & res.memorised & (last_step >= res.t_grok + retire_margin)
    finished = ~live | (last_step >= budgets) | (stops & on_time)
    if bar is not None:
      bar.total -= int(np.sum((budgets - last_step)[finished & live]))
      bar.update(trained)
      bar.set_postfix(live=int((~finished).sum()))
    if keep_params != "none" and np.any(finished & live):
      done = np.flatnonzero(finished & live)
      if keep_params == "final":
        keep_final(loop.params, state.params, lanes, pad, done)
      else:
        keep_grok(loop, state.grok, rule.persist, lanes, pad, done)
    live[:] = ~finished
    if snapshot is not None:
      saved_state, saved_lanes, saved_pad = snapshot
      loop.lanes, loop.pad = saved_lanes, saved_pad
      loop.elapsed = np.float64(elapsed0 + time.perf_counter() - t0)
      ckpt.save(int(last_step.sum()), loop, saved_state)
      last_save = time.perf_counter()
    if not live.any():
      flight = None
      continue
    # Retired runs leave the batch; `state` is the one after the last queued chunk, whose
    # layout is `lanes` (the chunk just read, or the one queued ahead of it).
    state, lanes, pad, size, moved = _rebalance(state, lanes, pad, live, size, width, sharding)
    if moved:
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
  if grok_kept:
    check_grok_steps(loop.grok_step, steps, curves, budgets, rule)
  wall = elapsed0 + time.perf_counter() - t0
  traj = loop.trajectory
  return SweepResult(task, runs, steps, curves, last_step, diverged, wall,
                     int(loop.lane_steps), loop.params, traj,
                     None if traj is None else every * np.arange(1, n_keep_of(traj) + 1))


def _start(task: Task, runs: Runs, prog, ckpt, sharding, sizes, which, n_steps: int,
           budgets: np.ndarray, keep_params: str, width) -> tuple[LoopState, Any]:
  """The loop state and the device state a training starts from: its checkpoint's, or a
  fresh one (every run's initial weights and split, in a batch of lanes dealt evenly over
  the devices, padding lanes repeating a live run)."""
  saved = ckpt.restore() if ckpt else None
  if saved is not None:
    loop, leaves = saved
    size = len(loop.lanes)
    treedef = jax.tree.structure(jax.eval_shape(prog.init, jnp.zeros(size, jnp.uint32),
                                                jnp.zeros(size, jnp.int32)))
    return loop, jax.device_put(jax.tree.unflatten(treedef, leaves), sharding)
  n, devices = len(runs), list(sharding.mesh.devices.flat)
  seeds = np.array([task.of_size(q).init_seed(w, s, str(st)) for q, w, s, st in
                    zip(sizes, runs.wd, runs.seed, runs.stream)], np.uint32)
  size = batch_size(n, len(devices), 1 << 62, batch_floor(devices, one_by_one=width == 1))
  # lanes[i] is the run trained in batch lane i; padding lanes repeat a live run.
  lanes, pad = lane_layout(np.arange(n), size, len(devices))
  state = prog.init_on(sharding)(seeds[lanes], which[lanes])
  loop = LoopState(lanes=lanes, pad=pad, live=np.ones(n, bool),
                   last_step=np.zeros(n, np.int64), diverged=np.full(n, -1, np.int64),
                   curves={k: np.full((n, n_steps), np.nan, task.dtype)
                           for k in prog.curve_names},
                   elapsed=np.float64(0.0), lane_steps=np.int64(0))
  leaves = named_leaves(state.params)
  if keep_params != "none":  # filled as runs stop; kept in the checkpoints with the rest
    loop.params = {name: np.full((n, *x.shape[1:]), np.nan, x.dtype)
                   for name, x in leaves.items()}
  if keeps_grok(keep_params):  # the step of each run's kept parameters, -1 before it groks
    loop.grok_step = np.full(n, -1, np.int64)
  every = keep_every(keep_params)
  if every is not None:  # the trajectory: at steps N, 2N, ... up to the longest budget
    n_keep = int(budgets.max()) // every
    loop.trajectory = {name: np.full((n, n_keep, *x.shape[1:]), np.nan, x.dtype)
                       for name, x in leaves.items()}
  return loop, state


def _read(loop: LoopState, flight: "Flight", rec, step_now, div_now, n_evals, chunk_evals: int,
          ev: int, every: int | None, params) -> tuple[np.ndarray, np.ndarray, int]:
  """Copy a read chunk's records into the loop state: the curves, the trajectory, each run's
  last step and divergence. Only runs still live when the chunk was read take its records:
  with overlap, a run retired by the chunk before was trained once more and that chunk is
  dropped, so the result is the same as without. Returns the chunk's real lanes, their
  runs and the run-steps they trained."""
  real = np.flatnonzero(~flight.pad & loop.live[flight.lanes])
  run = flight.lanes[real]
  for lane, r in zip(real, run):
    start = loop.last_step[r] // ev
    stop = min(start + chunk_evals, n_evals[r])
    for k in loop.curves:
      loop.curves[k][r, start:stop] = rec[k][lane, : stop - start]
  trained = int(np.sum(step_now[real] - loop.last_step[run]))
  if every is not None:
    keep_trajectory(loop.trajectory, every, params, real, run, step_now[real],
                    loop.last_step[run])
  loop.last_step[run] = step_now[real]
  loop.diverged[run] = div_now[real]
  return real, run, trained


def _rebalance(state, lanes, pad, live, size: int, width, sharding):
  """Retired runs leave the batch. Runs mapped one at a time skip a finished lane for free
  (`Program._skip_idle`): the batch keeps its size, so no new program is compiled; the live
  runs are still dealt evenly over the devices. Vectorised lanes cost compute: those
  batches shrink. Returns (state, lanes, pad, size, whether the layout changed)."""
  devices = list(sharding.mesh.devices.flat)
  keep = np.flatnonzero(live[lanes] & ~pad)
  _, first = np.unique(lanes[keep], return_index=True)
  keep = keep[np.sort(first)]
  new_size = size if width == 1 else batch_size(len(keep), len(devices), size,
                                                 batch_floor(devices))
  if new_size == size and len(keep) == np.sum(~pad):
    return state, lanes, pad, size, False
  take, pad = lane_layout(keep, new_size, len(devices))
  state = _compact(state, jax.device_put(take, sharding), sharding)
  return state, lanes[take], pad, new_size, True


@jax.jit
def _copy(state):
  """A copy in new buffers (the original is about to be donated to the next chunk)."""
  return jax.tree.map(jnp.copy, state)


@functools.partial(jax.jit, static_argnums=2)
def _compact(state, take, sharding):
  """The rows `take` of every leaf of a batch: one compiled gather per pair of sizes."""
  return jax.lax.with_sharding_constraint(jax.tree.map(lambda x: x[take], state), sharding)
