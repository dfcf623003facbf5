"""The README's Python examples run as written (in a fresh interpreter, one CPU device)."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# the README's programs are the smoke preset's and test_train's free run's
# (tests/experiments/test_experiments.py)
@pytest.mark.xdist_group("smoke")
def test_readme_python_blocks_run():
  with open(os.path.join(ROOT, "README.md")) as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert len(blocks) >= 2
  code = "\n".join(blocks)
  # the suite's compile cache (conftest), which the library leaves off unless asked
  cache = dict(JAX_COMPILATION_CACHE_DIR=os.environ["GROKJAX_CACHE"],
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=600, cwd=ROOT,
                        env=dict(os.environ, GROKJAX_CPU_DEVICES="1", **cache))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "t_grok" in proc.stdout
