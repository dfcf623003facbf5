"""The run axis sharded over several (forced host) devices equals one device, run by run."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from grokjax.engine.optim import NEVER
    from grokjax.engine.spec import Runs, Task
    from grokjax.engine.train import train
    assert jax.device_count() == 4, jax.devices()
    task = Task(p=13, d=8, hidden=16, eval_every=5)
    runs = Runs(seed=[0, 1, 2, 3, 4], lr=[1e-2, 3e-3, 1e-2, 5e-3, 2e-2], wd=1.0,
                target_norm=[np.nan, np.nan, 6.0, 8.0, np.nan], t_int=[NEVER, NEVER, 10, 20, NEVER],
                budget=[60, 60, 40, 60, 30])
    many = train(task, runs, chunk_steps=20, retire_margin=None, progress=False)
    one = train(task, runs, chunk_steps=20, retire_margin=None, progress=False,
                devices=jax.devices()[:1])
    for k in many.curves:
      np.testing.assert_allclose(many.curves[k], one.curves[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_array_equal(many.last_step, [60, 60, 40, 60, 30])
    print("sharded == single")
""")


def test_sharded_equals_single_device():
  flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "sharded == single" in proc.stdout
