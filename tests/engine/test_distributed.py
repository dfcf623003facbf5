"""Several processes: two local CPU processes under jax.distributed, started through the
scripts' own environment variables and given the same --out, write the same runs.csv as
one process, also when one of them is killed and both are started again."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Programs compile into the suite's cache (conftest), which a relaunch then loads from
ARGS = ["--preset", "smoke", "--moduli", "23", "--no-progress", "--no-figures"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(out, *flags, **env):
  script = os.path.join(ROOT, "experiments", "free_training.py")
  return subprocess.Popen([sys.executable, script, *ARGS, *flags, "--out", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, GROKJAX_CPU_DEVICES="1", **env))


def _start_both(out, *flags, **env):
  port = _free_port()
  return [_start(out, *flags, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                 JAX_PROCESS_ID=str(i), **env) for i in range(2)]


def _first_checkpoint(out, procs, timeout_s=300):
  """Wait until `out` holds a finished checkpoint (orbax names its folder by the step once
  it is complete)."""
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline and all(p.poll() is None for p in procs):
    for phase in glob.glob(os.path.join(out, "checkpoints", "*")):
      if any(name.isdigit() for name in os.listdir(phase)):
        return
    time.sleep(0.05)
  for p in procs:
    p.kill()
  raise AssertionError("no checkpoint was written: " + procs[0].communicate()[1][-2000:])


# its one-process reference trains the smoke preset's programs (tests/experiments/test_experiments.py)
@pytest.mark.xdist_group("smoke")
def test_a_killed_process_stops_its_peer_in_one_line_and_both_resume_as_one(tmp_path):
  """Two processes under jax.distributed, one SIGKILLed after the first checkpoint: the
  other stops within seconds (GROKJAX_PEER_TIMEOUT bounds it) with one line naming the lost
  process and exit 2, where XLA alone aborts it with a stack trace. Both started again on
  the same --out resume and write the runs.csv of one uninterrupted process."""
  if os.environ.get("GROKJAX_TEST_DEVICE") == "1":
    pytest.skip("two CPU processes on one machine: a CPU test")
  two, flags = str(tmp_path / "two"), ("--retire-margin", "none", "--checkpoint-every", "0")
  procs = _start_both(two, *flags, GROKJAX_PEER_TIMEOUT="3")
  _first_checkpoint(two, procs)
  procs[0].kill()  # the coordinator: XLA aborts the other at once, from C++
  killed = time.monotonic()
  _, err = procs[1].communicate(timeout=120)
  stopped_s = time.monotonic() - killed
  procs[0].communicate()
  assert procs[1].returncode == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
  assert "process 0 " in err and "resume" in err, err
  assert stopped_s < 3 + 10, stopped_s  # the peer timeout, and room for a busy machine
  for p in _start_both(two, *flags):
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
  one = str(tmp_path / "one")  # one process: the script's entry point, in this one
  from grokjax import cli
  assert cli.main("free_training", argv=ARGS + [*flags, "--out", one]) == 0
  with open(os.path.join(one, "runs.csv")) as a, open(os.path.join(two, "runs.csv")) as b:
    assert a.read() == b.read()
  with open(os.path.join(two, "config.json")) as f:
    env = json.load(f)["environment"]
  assert env["process_count"] == 2 and env["device_count"] == 2  # one device per process


def test_a_coordinator_that_never_answers_is_one_line_within_its_timeout(tmp_path):
  """Process 1 of 2 with no process 0: it gives up after GROKJAX_COORDINATOR_TIMEOUT
  seconds with one line naming the address (XLA alone would abort with a stack trace)."""
  out = str(tmp_path / "alone")
  address = f"127.0.0.1:{_free_port()}"
  proc = _start(out, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="1",
                GROKJAX_COORDINATOR_TIMEOUT="2")
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
  assert address in err and "GROKJAX_COORDINATOR_TIMEOUT" in err and not os.path.exists(out)
