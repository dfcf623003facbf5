"""Several processes: two local CPU processes under jax.distributed, started through the
scripts' own environment variables and given the same --out, write the same runs.csv as
one process."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--preset", "smoke", "--moduli", "23", "--no-progress", "--no-compile-cache"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(out, **env):
  script = os.path.join(ROOT, "experiments", "free_training.py")
  return subprocess.Popen([sys.executable, script, *ARGS, "--out", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, GROKJAX_CPU_DEVICES="1", **env))


def test_two_processes_match_one(tmp_path):
  if os.environ.get("GROKJAX_TEST_DEVICE") == "1":
    pytest.skip("two CPU processes on one machine: a CPU test")
  port = _free_port()
  two = str(tmp_path / "two")
  procs = [_start(two, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                  JAX_PROCESS_ID=str(i)) for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
  one = str(tmp_path / "one")  # one process: the script's entry point, in this one
  from grokjax import cli
  assert cli.main("free_training", argv=ARGS + ["--out", one]) == 0
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
