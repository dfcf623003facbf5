"""What an accelerator changes, checked on the CPU: matmul precision pinned in the compiled
programs, the numerics recorded and a resume under other numerics refused, deterministic
kernels asked of XLA, compilations bounded, and the test suite's device lane."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import cli
from grokjax.harness import io
from grokjax.experiments import registry
from grokjax.harness.session import Session
from grokjax.engine.optim import NEVER
from grokjax.engine.spec import Runs, Task, hparams
from grokjax.engine.program import program
from grokjax.engine.runtime import request_determinism
from grokjax.engine.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _chunk_text(task: Task, vmap_width) -> str:
  """The lowered StableHLO of a one-evaluation chunk (steps, backward, optimizer, evaluation)."""
  prog = program(task)
  state = jax.eval_shape(prog.init, jnp.arange(2, dtype=jnp.uint32), jnp.zeros(2, jnp.int32))
  runs = Runs([0, 1], 1e-2, 1.0, [np.nan, 10.0], [NEVER, 5], 50)
  hp = hparams(runs, np.float32)
  return prog.chunk(1, vmap_width, None).lower(state, hp).as_text()


@pytest.mark.parametrize("arch,precision,expected,width", [
    ("mlp", "float32", "HIGHEST", 1), ("mlp", "float32", "HIGHEST", None),
    ("mlp", "tensorfloat32", "HIGH", 1), ("mlp", "bfloat16", "DEFAULT", 1),
    ("transformer", "float32", "HIGHEST", None)])
def test_every_matrix_product_of_the_engine_carries_the_tasks_precision(arch, precision, expected,
                                                                         width):
  # JAX's own default would be DEFAULT: TF32 on recent NVIDIA GPUs, one bf16 pass on TPUs.
  # The pin must reach every product, the backward pass's included, in the CPU's
  # one-run-at-a-time program (width 1) and the accelerators' vmapped one (None).
  task = Task(p=7, d=8, hidden=16, arch=arch, heads=2, eval_every=2, matmul_precision=precision)
  text = _chunk_text(task, width)
  dots = [line for line in text.splitlines() if "dot_general" in line]
  assert len(dots) >= 6  # forward, both gradients, evaluation
  found = {m for line in dots for m in re.findall(r"precision = \[(\w+), (\w+)\]", line)}
  assert found == {(expected, expected)}, found
  assert all("precision = [" in line for line in dots)


def test_precision_is_a_checked_task_field():
  with pytest.raises(ValueError, match="matmul_precision must be one of"):
    Task(p=7, matmul_precision="tf16")


def _session_folder(tmp_path, **fields):
  out = str(tmp_path / "pn")
  Session(registry.resolve("pinned_norm", "smoke", **fields), out, progress=False)
  with open(os.path.join(out, "config.json")) as f:
    return out, json.load(f)


def test_config_json_records_precision_backend_device_and_xla_flags(tmp_path, monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=true")
  _, saved = _session_folder(tmp_path)
  assert saved["config"]["matmul_precision"] == "float32"
  env = saved["environment"]
  assert env["platform"] == jax.devices()[0].platform
  assert env["device"] == jax.devices()[0].device_kind
  assert env["xla_flags"] == "--xla_cpu_use_thunk_runtime=true"
  assert env["device_count"] == jax.device_count() and env["jax"] == jax.__version__


def _refusal(out, capsys, *extra):
  code = cli.main("pinned_norm", None,
                  ["--preset", "smoke", "--out", out, "--no-progress", "--no-compile-cache", *extra])
  err = capsys.readouterr().err.strip()
  return code, err


def _config_bytes(out):
  with open(os.path.join(out, "config.json"), "rb") as f:
    return f.read()


def test_resume_under_another_precision_is_refused_naming_both(tmp_path, capsys):
  out, _ = _session_folder(tmp_path)
  before = _config_bytes(out)
  code, err = _refusal(out, capsys, "--matmul-precision", "tensorfloat32")
  assert code == 2 and len(err.splitlines()) == 1, err
  assert "matmul_precision" in err and '"float32"' in err and '"tensorfloat32"' in err
  assert _config_bytes(out) == before  # the folder is left as it was


def test_resume_on_another_backend_is_refused_naming_both(tmp_path, capsys):
  out, saved = _session_folder(tmp_path)
  here = jax.devices()[0].platform
  other = "gpu" if here != "gpu" else "tpu"  # as if the folder had been trained elsewhere
  saved["environment"]["platform"] = other
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(saved, f)
  before = _config_bytes(out)
  code, err = _refusal(out, capsys)
  assert code == 2 and len(err.splitlines()) == 1, err
  assert f"trained on {other} and this is {here}" in err
  assert _config_bytes(out) == before


def test_deterministic_asks_xla_for_deterministic_kernels_once(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/nowhere")
  request_determinism()
  request_determinism()
  flags = os.environ["XLA_FLAGS"].split()
  assert flags == ["--xla_dump_to=/tmp/nowhere", "--xla_gpu_deterministic_ops=true"]
  assert io.environment()["xla_flags"] == os.environ["XLA_FLAGS"]  # what config.json records


def test_deterministic_flag_reaches_xla_before_jax_starts(tmp_path):
  # Through a script: the flag must be in XLA_FLAGS before the backend exists.
  code = ("import sys; sys.argv = ['x', '--deterministic', '--no-compile-cache'];"
          "from grokjax import cli; args = cli.parse('pinned_norm', sys.argv[1:])[2];"
          "from jax._src import xla_bridge; assert not xla_bridge.backends_are_initialized();"
          "cli.start_jax(args); import os, jax; jax.devices();"
          "print(os.environ['XLA_FLAGS'])")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=env, cwd=str(tmp_path), timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "--xla_gpu_deterministic_ops=true" in proc.stdout


@pytest.mark.xdist_group("tiny")  # test_train's TINY: its programs are shared
def test_batches_are_powers_of_two_and_a_repeat_compiles_nothing():
  # 3 runs leaving one chunk apart, padded to a power of two (4, not 3) or to the floor:
  # runs mapped one at a time (a CPU) keep that one batch (the floor of 8) and its one
  # program, since a finished lane costs nothing there; vectorised lanes shrink 4 -> 2 -> 1
  # on a CPU and stay at the floor of 8 on an accelerator, one program per size; the same
  # grid again reuses every program. An executable is either
  # compiled or, with the persistent cache on (other tests turn it on for the process),
  # loaded from disk: both count.
  from jax import monitoring
  from grokjax.engine.runtime import batch_floor, default_vmap_width
  got = []
  on_time = lambda name, secs, **kw: got.append(name) if name.endswith("backend_compile_duration") else None
  on_event = lambda name, **kw: got.append(name) if name.endswith("compilation_cache/cache_hits") else None
  monitoring.register_event_duration_secs_listener(on_time)
  monitoring.register_event_listener(on_event)
  try:
    # test_train's TINY in its chunks of 20 steps (4 evaluations): the one-by-one batch of 8
    # and the vectorised one of 4 are programs other tests of the group run too; which
    # batch sizes ran is read per chunk function from prog.seen (per Task, shared with them)
    from jax.sharding import Mesh
    task = Task(p=13, d=8, hidden=16, eval_every=5)
    runs = Runs.free(np.arange(3), 1e-2, 1.0, 20 * np.arange(1, 4))
    prog, devices = program(task), jax.devices()[:1]
    mesh = Mesh(np.array(devices), ("runs",))
    sizes = lambda width: sorted(n for fn, n in prog.seen if fn is prog.chunk(4, width, mesh))
    floor = batch_floor(devices)
    width = default_vmap_width(devices)
    train(task, runs, chunk_steps=20, retire_margin=None, progress=False, devices=devices)
    one_by_one = batch_floor(devices, one_by_one=True)
    vectorised = sorted({max(floor, n) for n in (1, 2, 4)})
    assert sizes(width) == ([one_by_one] if width == 1 else vectorised)
    if width == 1:  # up to the floor, runs on a device share that program: one run compiles nothing
      n_before = len(got)
      train(task, runs.take([0]), chunk_steps=20, retire_margin=None, progress=False,
            devices=devices)
      assert len(got) == n_before and sizes(1) == [one_by_one], got[n_before:]
    # vectorised, the batch shrinks with the live runs: 4 -> 2 -> 1 on one CPU device
    train(task, runs, chunk_steps=20, retire_margin=None, progress=False, devices=devices,
          vmap_width=None)
    assert sizes(None) == vectorised, sizes(None)
    n_first = len(got)
    assert n_first > 0  # the listeners hear the compiles (else the check below is empty)
    again = train(task, runs, chunk_steps=20, retire_margin=None, progress=False, devices=devices)
    assert len(got) == n_first, got[n_first:]
    assert (again.last_step == runs.budget).all()
  finally:
    monitoring.unregister_event_duration_listener(on_time)
    monitoring.unregister_event_listener(on_event)


def test_device_lane_leaves_the_platform_to_jax():
  # The suite forces the CPU unless GROKJAX_TEST_DEVICE=1 (then an accelerator runs it).
  code = ("import os, runpy; runpy.run_path(os.path.join(%r, 'conftest.py'));"
          "print(os.environ.get('JAX_PLATFORMS'))") % ROOT
  env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "GROKJAX_TEST_DEVICE")}
  forced = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
  lane = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=dict(env, GROKJAX_TEST_DEVICE="1"))
  assert forced.stdout.split() == ["cpu"] and lane.stdout.split() == ["None"]
