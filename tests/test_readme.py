"""The README's Python examples run as written (in a fresh interpreter, one CPU device)."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_blocks_run():
  with open(os.path.join(ROOT, "README.md")) as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert len(blocks) >= 2
  code = "\n".join(blocks)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=600, cwd=ROOT, env=dict(os.environ, GROKJAX_CPU_DEVICES="1"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "t_grok" in proc.stdout
