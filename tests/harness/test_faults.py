"""Faults of the machine around a run: a results folder grokjax may not write to is refused
in one line, exit 2, with nothing on disk changed."""

import os
import shutil
import subprocess
import sys

import pytest

ARGS = ["--preset", "smoke", "--moduli", "23", "--no-progress"]


def _unprivileged():
  """A command prefix under which the permission bits hold: none for a plain user; for
  root (who may write anywhere), a user namespace of its own (`unshare --user`), where
  root's files are held to their owner's bits; None when neither is possible here."""
  if os.geteuid() != 0:
    return []
  if shutil.which("unshare") and subprocess.run(["unshare", "--user", "true"],
                                                capture_output=True).returncode == 0:
    return ["unshare", "--user"]
  return None


def _snapshot(folder):
  """Every path under `folder` with its mode, mtime and content."""
  seen = {}
  for root, dirs, files in os.walk(folder):
    for name in [""] + dirs + files:
      path = os.path.join(root, name)
      st = os.stat(path)
      body = open(path, "rb").read() if os.path.isfile(path) else None
      seen[os.path.relpath(path, folder)] = (st.st_mode, st.st_mtime_ns, body)
  return seen


def test_a_read_only_results_folder_is_one_line_and_nothing_changes(tmp_path):
  prefix = _unprivileged()
  if prefix is None:
    pytest.skip("running as root without user namespaces: no folder is read-only to us")
  from grokjax import cli
  from grokjax.harness import io
  done = tmp_path / "done"  # this command's results folder, made read-only
  cfg, _, _ = cli.parse("free_training", ARGS + ["--out", str(done)])
  (done / "phases").mkdir(parents=True)
  io.write_json(str(done / "config.json"), dict(config=cfg.to_json(), environment=io.environment()))
  (done / "runs.csv").write_text("p,seed\n23,0\n")
  (done / ".grokjax-lock").write_text("pid 1 on elsewhere")
  shelf = tmp_path / "shelf"  # a read-only folder, in which --out does not exist yet
  shelf.mkdir()
  for folder in (done, shelf):
    os.chmod(folder, 0o555)
  before = _snapshot(tmp_path)
  outs = [str(done), str(shelf / "new")]
  code = ("import sys; from grokjax import cli; "
          f"print([cli.main('free_training', argv={ARGS!r} + ['--out', o]) for o in {outs!r}])")
  try:
    proc = subprocess.run(prefix + [sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120)
    after = _snapshot(tmp_path)
  finally:
    for folder in (done, shelf):
      os.chmod(folder, 0o755)
  lines = proc.stderr.strip().splitlines()
  assert proc.stdout.strip().splitlines()[-1:] == ["[2, 2]"], proc.stdout + proc.stderr[-2000:]
  assert len(lines) == 2, proc.stderr[-2000:]
  for out, line in zip(outs, lines):
    assert line.startswith(f"free_training: error: {out}") and "not writable" in line, line
  assert after == before
