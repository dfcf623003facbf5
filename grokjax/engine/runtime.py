"""Where a program runs: the devices (one JAX CPU device per core), the compile cache,
determinism, several processes, and the rate of a compiled chunk on this machine.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Callable, NoReturn

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grokjax.engine.optim import NEVER
from grokjax.engine.program import program
from grokjax.engine.spec import Runs, Task, hparams

def batch_floor(devices, one_by_one: bool = False) -> int:
  """Smallest batch per device worth its own program. 8 on an accelerator (a vmapped step
  costs about the same for 1 or 8 runs there, and every new size is a compile and an
  autotune). On a CPU: 8 when runs are mapped one by one, where an idle lane costs nothing
  (`lax.cond` skips it) and a program costs seconds to compile, so phases of 1 to 8 runs
  per device (a smoke preset's free and clamp phases, a few seeds of a few cells) share one
  program; 1 when vectorised."""
  if not all_cpu(devices):
    return 8
  return 8 if one_by_one else 1


def all_cpu(devices) -> bool:
  return all(d.platform == "cpu" for d in devices)


def default_vmap_width(devices) -> int | None:
  """1 on CPU devices (runs one by one within each), None (vectorise) elsewhere; see `train`."""
  return 1 if all_cpu(devices) else None


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
  hp = jax.device_put(hparams(runs, np.dtype(task.dtype)), sharding)
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
    try:
      n = int(text) if text.strip().isascii() else 0
    except ValueError:
      n = 0
    if not 1 <= n <= 1024:
      raise ValueError(f"GROKJAX_CPU_DEVICES={text!r}: need a whole number of devices from 1 "
                       "to 1024")
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


def distributed_requested() -> bool:
  """Whether the environment asks for several processes: JAX_COORDINATOR_ADDRESS (with
  JAX_NUM_PROCESSES and JAX_PROCESS_ID), or GROKJAX_DISTRIBUTED=1 on a cluster JAX detects
  by itself (SLURM, Cloud TPU)."""
  env = os.environ
  return bool(env.get("JAX_COORDINATOR_ADDRESS")) or env.get("GROKJAX_DISTRIBUTED") == "1"


# Defaults of GROKJAX_COORDINATOR_TIMEOUT and GROKJAX_PEER_TIMEOUT, in seconds
TIMEOUTS = {"GROKJAX_COORDINATOR_TIMEOUT": 120, "GROKJAX_PEER_TIMEOUT": 60}


def _seconds(name: str) -> int:
  """A whole number of seconds >= 1 from the environment variable `name`, else its default."""
  text = os.environ.get(name, str(TIMEOUTS[name]))
  if not text.strip().isdigit() or int(text) < 1:
    raise ValueError(f"{name}={text!r}: need a whole number of seconds >= 1")
  return int(text)


def maybe_initialize_distributed() -> bool:
  """`jax.distributed.initialize()` when `distributed_requested()`.

  A coordinator that does not answer within GROKJAX_COORDINATOR_TIMEOUT seconds (default
  120) raises RuntimeError naming its address, instead of waiting on. A process that sends
  no heartbeat for GROKJAX_PEER_TIMEOUT seconds (default 60) counts as lost, and its peers
  stop (see `supervise`).
  """
  env = os.environ
  timeout = _seconds("GROKJAX_COORDINATOR_TIMEOUT")
  heartbeat = _seconds("GROKJAX_PEER_TIMEOUT")
  if env.get("JAX_COORDINATOR_ADDRESS"):
    # JAX reads the address from the environment itself, but not the other two.
    where = env["JAX_COORDINATOR_ADDRESS"]
    count, index = _whole("JAX_NUM_PROCESSES", 1), _whole("JAX_PROCESS_ID", 0)
    if count is not None and index is not None and index >= count:
      raise RuntimeError(f"JAX_PROCESS_ID={index} is not below JAX_NUM_PROCESSES={count}: "
                         "process ids run from 0 to the count less one")
    args = (where, count, index)
  elif distributed_requested():
    where, args = "the cluster's coordinator", ()
  else:
    return False
  if args and args[2] not in (None, 0):  # process 0 serves the coordinator; the others wait
    _wait_for_coordinator(where, timeout)
  try:
    jax.distributed.initialize(*args, initialization_timeout=timeout,
                               heartbeat_timeout_seconds=heartbeat)
  except Exception as e:  # XLA raises its own kinds for an unreachable coordinator
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    raise RuntimeError(f"jax.distributed could not reach {where} within {timeout} s "
                       f"(GROKJAX_COORDINATOR_TIMEOUT): {first}") from None
  return True


def _whole(name: str, low: int) -> int | None:
  """The environment variable `name` as a whole number >= low (None when unset), or
  RuntimeError naming it."""
  text = os.environ.get(name, "")
  if not text:
    return None
  try:
    value = int(text) if text.strip().isascii() else low - 1
  except ValueError:
    value = low - 1
  if value < low:
    raise RuntimeError(f"{name}={text!r}: need a whole number >= {low}")
  return value


def _wait_for_coordinator(address: str, timeout: int) -> None:
  """Return once host:port accepts a connection; RuntimeError after `timeout` seconds (XLA
  itself would abort the process with a stack trace)."""
  import socket
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except (OSError, ValueError) as e:
      if time.monotonic() >= deadline or isinstance(e, ValueError):
        raise RuntimeError(f"jax.distributed: no coordinator answers at {address} after "
                           f"{timeout} s (GROKJAX_COORDINATOR_TIMEOUT; is process 0 "
                           "running?)") from None
      time.sleep(0.5)


# A process of a jax.distributed run whose peer is gone is ended by XLA itself: a collective
# with the lost process raises, but then the coordination service aborts the survivor from
# C++ (at once when process 0, its host, is gone; after GROKJAX_PEER_TIMEOUT seconds without
# a heartbeat otherwise) with a stack trace, beyond any Python handler. So each process of
# such a run trains in a child, the worker, and its supervisor turns that end into one line.

PEER_LOST = 75  # the worker's exit code when a process of its run is gone
# The first line of an account of a lost process: XLA's (glog lines of its coordination
# client, then an abort), or a failed collective logged from another thread (orbax's)
_XLA_LOST = re.compile(rb"[WEF]\d{4} [\d:.]+\s+\d+ \S*(?:coordination|client\.h|preemption)"
                       rb"\S*:\d+\]|\*\*\* Check failure|terminate called|.*\bGloo \w+ failed")


def supervise(name: str, work: Callable[[], int]) -> int:
  """Run `work` in a forked child of this process, the worker, which exits with the code
  `work` returns (it never returns here); return the exit code this process should end
  with: the worker's, or 2 when a peer was lost. Call it before JAX starts a backend.

  The worker shares this process's stdout; its stderr passes through line by line, except
  XLA's account of a lost peer: when the worker ends because a process of its
  jax.distributed run is gone (`PEER_LOST`, or an abort after that account), this prints
  one line naming the lost process and how to resume instead. SIGTERM and SIGHUP are
  passed on to the worker, Ctrl-C reaches it from the terminal, and the worker ends with
  this process however this one ends (SIGKILL too).
  """
  import signal
  import threading
  alive, alive_w = os.pipe()  # the write end closes when this process ends, however
  err, err_w = os.pipe()
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    os.close(alive_w)
    os.close(err)
    os.dup2(err_w, 2)
    os.close(err_w)
    def follow():  # nothing is ever written: the read returns when the supervisor is gone
      os.read(alive, 1)
      os._exit(1)
    threading.Thread(target=follow, name="grokjax-supervisor", daemon=True).start()
    raise SystemExit(work())
  os.close(alive)
  os.close(err_w)
  for sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda s, _: os.kill(pid, s))
  signal.signal(signal.SIGINT, lambda *_: None)
  held = _pass_stderr(err)
  code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # -N: ended by signal N
  if code == PEER_LOST or (code < 0 and held):
    print(f"{name}: error: {lost_peer_line(b''.join(held).decode(errors='replace'))}",
          file=sys.stderr)
    return 2
  sys.stderr.buffer.write(b"".join(held))
  sys.stderr.flush()
  return code if code >= 0 else 128 - code


def _pass_stderr(fd: int, patience_s: float = 10.0) -> list[bytes]:
  """Copy the pipe `fd` to stderr line by line (a carriage return ends a progress bar's
  line) until it closes. From XLA's first line about a lost process on, lines are held
  back instead, and returned; they go out after all if the worker still writes
  `patience_s` later (it was not dying)."""
  out, held, pending, since = sys.stderr.buffer, [], b"", 0.0
  while True:
    chunk = os.read(fd, 1 << 16)
    *lines, pending = re.split(rb"(?<=[\r\n])", pending + chunk)
    if not chunk:
      lines.append(pending)
    for line in lines:
      if not since and _XLA_LOST.match(line):
        since = time.monotonic()
      if since:
        held.append(line)
      else:
        out.write(line)
    if since and time.monotonic() - since > patience_s:
      out.write(b"".join(held))
      held, since = [], 0.0
    out.flush()
    if not chunk:
      return held


def lost_peer(e: BaseException) -> bool:
  """Whether `e`, raised in a process of a jax.distributed run, says that a peer is gone:
  a collective (Gloo) or a coordination-service call that failed."""
  return jax.distributed.is_initialized() and any(
      s in str(e) for s in ("Gloo", "DEADLINE_EXCEEDED", "UNAVAILABLE", "coordination service"))


def end_lost_peer() -> NoReturn:
  """End the worker after `lost_peer`, at once, with `PEER_LOST` (its supervisor prints the
  line): jax.distributed's shutdown at exit would wait for the lost process, then abort."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(PEER_LOST)


def lost_peer_line(xla_log: str = "") -> str:
  """The one line that says which process of this jax.distributed run was lost and how to
  resume. `xla_log`, XLA's account of the loss, tells a process that never joined from
  one lost later, and names the lost process when there are more than two."""
  env = {**{k: str(v) for k, v in TIMEOUTS.items()}, **os.environ}
  me, n = env.get("JAX_PROCESS_ID", "?"), env.get("JAX_NUM_PROCESSES", "")
  resume = (f"start all {n or 'the'} processes again with the same command and --out to "
            "resume")
  if "RegisterTask" in xla_log:
    return (f"not all {n or 'the'} processes of this jax.distributed run joined within "
            f"GROKJAX_COORDINATOR_TIMEOUT={env['GROKJAX_COORDINATOR_TIMEOUT']} s, "
            f"so process {me} stopped; {resume}")
  task = re.search(r"Task (\d+) heartbeat timeout|stopped sending heartbeats\):\s*(\d+)", xla_log)
  if n == "2" and me in ("0", "1"):
    lost = f"process {1 - int(me)}"
  elif task:
    lost = f"process {task.group(1) or task.group(2)}"
  elif "coordination service" in xla_log:
    lost = "process 0 (the coordinator)"
  else:
    lost = "another process"
  return (f"{lost} of this jax.distributed run is gone (it failed, or was silent for "
          f"GROKJAX_PEER_TIMEOUT={env['GROKJAX_PEER_TIMEOUT']} s), so process {me} "
          f"stopped too; {resume}")
