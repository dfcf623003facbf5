"""Nothing lost: resume after SIGKILL, isolated divergence, softmax-collapse detection."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from grokjax.engine.optim import NEVER
from grokjax.engine.spec import Runs, Task
from grokjax.engine.program import program
from grokjax.engine.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _args(out):
  return ["--preset", "smoke", "--steps", "600", "--retire-margin", "none", "--chunk-steps", "100",
          "--checkpoint-every", "0", "--no-progress", "--no-figures", "--out", out]


def _cmd(out):
  return [sys.executable, os.path.join(ROOT, "experiments", "pinned_norm.py"), *_args(out)]


def _has_checkpoint(out, phase):
  d = os.path.join(out, "checkpoints", phase)
  return os.path.isdir(d) and any(name.isdigit() for name in os.listdir(d))


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, capsys):
  # A CPU guarantee: bit for bit needs deterministic kernels, which a GPU gives only with
  # --deterministic (scatter-adds without atomics), so the device lane does not assert it.
  # The killed run is the script in a process of its own; the resume and the uninterrupted
  # run are the same entry point in-process (`cli.main`, what the script calls).
  from grokjax import cli
  if os.environ.get("GROKJAX_TEST_DEVICE") == "1":
    pytest.skip("bit-for-bit resume is asserted on the CPU only")
  killed, clean = str(tmp_path / "killed"), str(tmp_path / "clean")
  proc = subprocess.Popen(_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while not _has_checkpoint(killed, "clamp_p23") and time.time() < deadline:
    assert proc.poll() is None, "finished before it could be killed"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert _has_checkpoint(killed, "clamp_p23") and not os.path.exists(os.path.join(killed, "fit.json"))
  in_process = lambda out: _args(out) + ["--no-compile-cache"]  # leave JAX's settings alone
  capsys.readouterr()
  assert cli.main("pinned_norm", argv=in_process(killed)) == 0
  assert "free_p23: loaded" in capsys.readouterr().out
  assert cli.main("pinned_norm", argv=in_process(clean)) == 0
  for name in ("runs.csv", "fit.json"):
    with open(os.path.join(killed, name), "rb") as a, open(os.path.join(clean, name), "rb") as b:
      assert a.read() == b.read(), name


@pytest.mark.xdist_group("tiny")  # trains test_train's TINY: one worker compiles it
def test_divergent_lane_is_frozen_flagged_and_isolated():
  task = Task(p=13, d=8, hidden=16, eval_every=5)
  good = Runs(seed=[0, 1, 2], lr=[1e-2, 3e-3, 1e-2], wd=1.0, target_norm=[np.nan, np.nan, 6.0],
              t_int=[NEVER, NEVER, 10], budget=60)
  bad = Runs.free([3], 1e38, 1.0, 60)  # an absurd learning rate: the weights overflow
  both = train(task, Runs.concat(good, bad), chunk_steps=20, retire_margin=None, progress=False)
  alone = train(task, good, chunk_steps=20, retire_margin=None, progress=False)
  assert both.diverged_step[3] >= 0 and (both.diverged_step[:3] == -1).all()
  assert both.reduce().diverged.tolist() == [False, False, False, True]
  assert both.last_step[3] == both.diverged_step[3] < 60  # frozen where it broke
  assert np.isfinite(both.curves["norm"][3][np.isfinite(both.curves["norm"][3])]).all()
  for k in ("train_loss", "norm", "test_acc"):
    np.testing.assert_allclose(both.curves[k][:3], alone.curves[k], rtol=1e-5, atol=1e-6)


@pytest.mark.xdist_group("tiny")  # trains test_train's TINY: one worker compiles it
def test_softmax_collapse_fraction():
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  from grokjax.engine.runtime import batch_floor
  task = Task(p=13, d=8, hidden=16, eval_every=5)  # test_train's TINY
  prog, devices = program(task), jax.devices()[:1]
  # its init as `train` calls it on one CPU device (a batch at the floor): compiled already
  sharding = NamedSharding(Mesh(np.array(devices), ("runs",)), PartitionSpec("runs"))
  n = batch_floor(devices, one_by_one=True)
  states = prog.init_on(sharding)(np.arange(n, dtype=np.uint32), np.zeros(n, np.int32))
  state = jax.tree.map(lambda x: x[0], states)
  evaluate = jax.jit(prog.evaluate)  # one program (run eagerly, each operation compiles)
  assert float(evaluate(state)["collapse"]) == 0.0
  big = state._replace(params=dict(state.params, w2=1e7 * state.params["w2"]))
  assert float(evaluate(big)["collapse"]) == 1.0


def test_float64_option_runs_in_x64(tmp_path):
  import json
  out = str(tmp_path / "f64")
  # x64 is process-wide, so the script runs as a process: a free phase of 100 steps is
  # enough to see every array of a phase file in float64
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "free_training.py"),
                         "--preset", "smoke", "--moduli", "23", "--steps", "100", "--dtype",
                         "float64", "--no-progress", "--no-figures", "--out", out],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  cfg = json.load(open(os.path.join(out, "config.json")))
  assert cfg["environment"]["x64"] is True and cfg["config"]["dtype"] == "float64"
  assert np.load(os.path.join(out, "phases", "free_p23.npz"))["curve_norm"].dtype == np.float64


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path, capsys):
  """Two unrelated processes on one --out: the second is refused in one line naming the
  first's pid and host, before it writes anything; once the first ends, the folder is free."""
  from grokjax import cli
  out = str(tmp_path / "busy")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from grokjax.harness.session import lock_folder; "
       "lock_folder(sys.argv[1]); print('locked', flush=True); time.sleep(60)", out],
      stdout=subprocess.PIPE, text=True, cwd=ROOT)
  try:
    assert holder.stdout.readline().strip() == "locked"
    args = ["--preset", "smoke", "--out", out, "--no-progress", "--no-compile-cache", "--steps", "100"]
    assert cli.main("pinned_norm", argv=args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err and "in use" in err
    assert os.listdir(out) == [".grokjax-lock"]  # nothing else written
  finally:
    holder.kill()
    holder.wait()
  from grokjax.harness.session import lock_folder
  lock_folder(out)  # free again; taking it twice in one process is a no-op
  lock_folder(out)
