"""Where a program runs: the devices (one JAX CPU device per core), the compile cache,
determinism, several processes, and the rate of a compiled chunk on this machine.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grokjax.optim import NEVER
from grokjax.program import program
from grokjax.spec import Runs, Task, hparams

def batch_floor(devices) -> int:
  """Smallest batch per device worth its own program: 1 on a CPU (runs go one by one),
  8 on an accelerator (a vmapped step costs about the same for 1 or 8 runs there, and
  every new size is a compile and an autotune)."""
  return 1 if all_cpu(devices) else 8


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
  or GROKJAX_DISTRIBUTED=1 on a cluster JAX detects by itself (SLURM, Cloud TPU). A
  coordinator that does not answer within GROKJAX_COORDINATOR_TIMEOUT seconds (default
  120) raises RuntimeError naming its address, instead of waiting on.
  """
  env = os.environ
  text = env.get("GROKJAX_COORDINATOR_TIMEOUT", "120")
  if not text.strip().isdigit() or int(text) < 1:
    raise ValueError(f"GROKJAX_COORDINATOR_TIMEOUT={text!r}: need a whole number of seconds >= 1")
  timeout = int(text)
  if env.get("JAX_COORDINATOR_ADDRESS"):
    # JAX reads the address from the environment itself, but not the other two.
    number = lambda k: int(env[k]) if env.get(k) else None
    where = env["JAX_COORDINATOR_ADDRESS"]
    args = (where, number("JAX_NUM_PROCESSES"), number("JAX_PROCESS_ID"))
  elif env.get("GROKJAX_DISTRIBUTED") == "1":
    where, args = "the cluster's coordinator", ()
  else:
    return False
  if args and args[2] not in (None, 0):  # process 0 serves the coordinator; the others wait
    _wait_for_coordinator(where, timeout)
  try:
    jax.distributed.initialize(*args, initialization_timeout=timeout)
  except Exception as e:  # XLA raises its own kinds for an unreachable coordinator
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    raise RuntimeError(f"jax.distributed could not reach {where} within {timeout} s "
                       f"(GROKJAX_COORDINATOR_TIMEOUT): {first}") from None
  return True


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
