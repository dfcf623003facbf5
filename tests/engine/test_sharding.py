"""The run axis sharded over several (forced host) devices equals one device, run by run."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from grokjax.engine.optim import NEVER
from grokjax.engine.spec import Runs, Task
from grokjax.engine.train import train

# The sharded run needs a process with four host devices; the one-device reference trains
# here, where its program is test_train's TINY batch (xdist group "tiny": compiled already).
# One source for the grid and the Task in both processes (the script's text, eval here).
GRID = """Runs(seed=[0, 1, 2, 3, 4], lr=[1e-2, 3e-3, 1e-2, 5e-3, 2e-2], wd=1.0,
            target_norm=[np.nan, np.nan, 6.0, 8.0, np.nan], t_int=[NEVER, NEVER, 10, 20, NEVER],
            budget=[60, 60, 40, 60, 30])"""
TASK = "Task(p=13, d=8, hidden=16, eval_every=5)"
SCRIPT = textwrap.dedent(f"""
    import sys, jax, numpy as np
    from grokjax.engine.optim import NEVER
    from grokjax.engine.spec import Runs, Task
    from grokjax.engine.train import train
    assert jax.device_count() == 4, jax.devices()
    many = train({TASK}, {GRID}, chunk_steps=20, retire_margin=None, progress=False)
    np.savez(sys.argv[1], last_step=many.last_step, **many.curves)
""")


@pytest.mark.xdist_group("tiny")
def test_sharded_equals_single_device(tmp_path):
  flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  out = str(tmp_path / "many.npz")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, out], env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  many = np.load(out)
  import jax
  one = train(eval(TASK), eval(GRID), chunk_steps=20, retire_margin=None, progress=False,
              devices=jax.devices("cpu")[:1])  # a CPU in the device lane too
  for k in one.curves:
    np.testing.assert_allclose(many[k], one.curves[k], rtol=1e-5, atol=1e-6, err_msg=k)
  np.testing.assert_array_equal(many["last_step"], [60, 60, 40, 60, 30])
  np.testing.assert_array_equal(one.last_step, [60, 60, 40, 60, 30])
