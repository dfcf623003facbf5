"""Nothing outside grokjax's own files is touched (#44's data-loss faults, planted)."""

import os

import pytest

from grokjax import cli
from grokjax.harness.session import LOCK, ConfigMismatch, discard_outputs, lock_folder


def _run(out, *extra):
  return cli.main("pinned_norm", argv=["--preset", "smoke", "--out", str(out), "--no-progress",
                                       "--no-figures", "--no-compile-cache", *extra])


def test_force_new_refuses_a_folder_whose_config_json_grokjax_did_not_write(tmp_path, capsys):
  u = tmp_path / "u"
  (u / "params").mkdir(parents=True)
  (u / "config.json").write_text('{"lr":0.1}')
  (u / "runs.csv").write_text("d\n")
  (u / "params" / "w.npz").write_text("w")
  before = {p: p.read_bytes() for p in u.rglob("*") if p.is_file()}
  assert _run(u, "--force-new") == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "not written by grokjax" in err and "runs.csv" in err
  assert {p: p.read_bytes() for p in u.rglob("*") if p.is_file()} == before  # no lock either


def test_a_figure_listing_never_leads_out_of_its_folder(tmp_path):
  out = tmp_path / "f"
  (out / "figures").mkdir(parents=True)
  victim = tmp_path / "victim.txt"
  victim.write_text("keep")
  (out / "figures" / "mine.png").write_text("x")
  (tmp_path / "elsewhere").mkdir()
  (tmp_path / "elsewhere" / "other.png").write_text("keep")
  os.symlink(tmp_path / "elsewhere" / "other.png", out / "figures" / "link.png")
  (out / "figures" / ".grokjax-figures").write_text(
      "mine.png\n../../victim.txt\n" + str(victim) + "\nlink.png\n")
  discard_outputs(str(out))
  assert victim.read_text() == "keep" and (tmp_path / "elsewhere" / "other.png").read_text() == "keep"
  assert not (out / "figures" / "mine.png").exists()


def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
  out = tmp_path / "f"
  out.mkdir()
  target = tmp_path / "precious.txt"
  target.write_text("precious")
  os.symlink(target, out / LOCK)
  with pytest.raises(ConfigMismatch, match="symbolic link"):
    lock_folder(str(out))
  assert target.read_text() == "precious"


def test_an_empty_only_is_an_error_and_the_report_keeps_its_reference_tables(tmp_path, capsys,
                                                                             monkeypatch):
  assert cli.reproduce_main(["--report-only", "--only", "", "--results", str(tmp_path)]) == 2
  assert "--only: no claim" in capsys.readouterr().err
  # the default report holds like-for-like tables: a run without --reference keeps it
  monkeypatch.chdir(tmp_path)
  (tmp_path / "docs").mkdir()
  doc = tmp_path / "docs" / "reproduction.md"
  doc.write_text("# report\n\n## Like for like: every cell against the authors' per-seed data\n")
  from grokjax.paper import report
  assert "only --reference DIR rebuilds" in report.would_lose(str(doc), "docs/results", False)
  assert report.would_lose(str(doc), "docs/results", True) is None
  assert "reads elsewhere" in report.would_lose(str(doc), "elsewhere", True)


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows[0].update(t_grok=-5), "outside (0, its budget"),
    (lambda rows: rows[1].update(t_grok=rows[1]["budget"] * 10), "outside (0, its budget"),
    (lambda rows: rows[2].update(censored=True, grokked=False, t_grok=300), "not at its budget"),
    (lambda rows: rows.append(dict(rows[0])), "second copy of a run"),
])
def test_impossible_rows_are_refused_with_or_without_a_manifest(tmp_path, change, message):
  from grokjax.harness import io
  rows = [dict(p=23, arm="clamp", rho=1.0, seed=s, lr=0.03, budget=600, steps_trained=600,
               t_grok=200 + s, grokked=True, censored=False, diverged=False) for s in range(3)]
  folder = tmp_path / "f"
  folder.mkdir()
  io.write_csv(str(folder / "runs.csv"), rows)
  assert len(io.read_finished_runs(str(folder))) == 3  # no manifest: the rows are plausible
  change(rows)
  io.write_csv(str(folder / "runs.csv"), rows)
  with pytest.raises(io.TableError, match=message.replace("(", r"\(")):
    io.read_finished_runs(str(folder))


def test_a_float32_folder_rerun_in_an_x64_process_gives_the_same_runs(tmp_path):
  """The arithmetic is the Task's: JAX_ENABLE_X64=1 in the process neither changes a
  float32 folder's runs.csv nor records the folder as x64."""
  import json
  import subprocess
  import sys
  outs = []
  for x64 in ("0", "1"):
    out = tmp_path / f"x64_{x64}"
    env = dict(os.environ, JAX_ENABLE_X64=x64)
    proc = subprocess.run([sys.executable, "-m", "grokjax", "free_training", "--preset", "smoke",
                           "--moduli", "23", "--steps", "100", "--no-progress", "--no-figures",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outs.append(out)
  assert (outs[0] / "runs.csv").read_bytes() == (outs[1] / "runs.csv").read_bytes()
  assert json.loads((outs[1] / "config.json").read_text())["environment"]["x64"] is False


def _fake_root(tmp_path, cgroup_line, files):
  root = tmp_path / "root"
  (root / "proc" / "self").mkdir(parents=True)
  (root / "proc" / "self" / "cgroup").write_text(cgroup_line + "\n")
  (root / "proc" / "meminfo").write_text("MemTotal: 100000000 kB\nMemAvailable: 80000000 kB\n")
  for rel, text in files.items():
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
  return str(root)


@pytest.mark.parametrize("line, files", [
    ("0::/job42", {"sys/fs/cgroup/job42/memory.max": str(4 << 30),
                   "sys/fs/cgroup/job42/memory.current": str(1 << 30)}),
    ("4:memory:/docker/abc", {"sys/fs/cgroup/memory/memory.limit_in_bytes": str(4 << 30),
                              "sys/fs/cgroup/memory/memory.usage_in_bytes": str(1 << 30)}),
])
def test_the_memory_guard_reads_a_containers_limit(tmp_path, line, files):
  from grokjax.harness import estimate
  root = _fake_root(tmp_path, line, files)
  assert estimate.cgroup_headroom(root) == 3 << 30
  assert estimate.available_memory(root) == 3 << 30  # not the host's 76 GiB


def test_no_cgroup_limit_leaves_the_hosts_memory(tmp_path):
  from grokjax.harness import estimate
  root = _fake_root(tmp_path, "0::/", {"sys/fs/cgroup/memory.max": "max"})
  assert estimate.cgroup_headroom(root) is None
  assert estimate.available_memory(root) == 80000000 * 1024


def test_values_a_user_mistyped_are_one_line_naming_them(monkeypatch, capsys):
  from grokjax import problems
  from grokjax.engine import runtime
  with pytest.raises(ValueError, match="'k' of 'sparse_parity:k=3,k=4' is given twice"):
    problems.parse_spec("sparse_parity:k=3,k=4")
  for text in ("\u00b2", "4096", "abc", "0"):
    monkeypatch.setenv("GROKJAX_CPU_DEVICES", text)
    with pytest.raises(ValueError, match="GROKJAX_CPU_DEVICES="):
      runtime.use_cpu_cores()


@pytest.mark.parametrize("damage, message", [
    (lambda d: _edit_csv(d, "t_grok", "1e400"), "t_grok = '1e400' is not a number"),
    (lambda d: _edit_csv(d, "rho", "abc"), "rho = 'abc' is not a number"),
    (lambda d: (d / "manifest.json").write_text("[1, 2]"), "not a grokjax manifest"),
    (lambda d: (d / "fit.json").write_text("[1, 2]"), "is not a JSON object"),
    (lambda d: (d / "curves.npz").write_bytes((d / "curves.npz").read_bytes()[:200]),
     "curves.npz cannot be read"),
    (lambda d: (d / "config.json").write_text('{"config": {}, "environment": "x"}'),
     "no configuration and environment objects"),
    (lambda d: (d / "config.json").write_text("[" * 100000 + "]" * 100000), "nested too deeply"),
])
def test_a_damaged_folder_is_one_line_for_load_and_figures(tmp_path, capsys, damage, message):
  import grokjax
  from grokjax import __main__ as entry
  src = tmp_path / "src"
  assert _run(src) == 0
  capsys.readouterr()
  damage(src)
  with pytest.raises((ValueError, OSError), match=message.replace("(", r"\(").replace("[", r"\[")):
    grokjax.load(str(src))
  assert entry.main(["figures", str(src)]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err


def _edit_csv(folder, column, value):
  import csv
  rows = list(csv.DictReader(open(folder / "runs.csv")))
  rows[0][column] = value
  with open(folder / "runs.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  (folder / "manifest.json").unlink()  # the manifest would catch it first


def test_a_platform_without_a_device_is_one_line(tmp_path):
  import subprocess
  import sys
  out = tmp_path / "never"
  proc = subprocess.run([sys.executable, "-m", "grokjax", "pinned_norm", "--preset", "smoke",
                         "--out", str(out)], env=dict(os.environ, JAX_PLATFORMS="cuda"),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr[-500:]
  assert "JAX_PLATFORMS='cuda'" in proc.stderr and not out.exists()


@pytest.mark.parametrize("env, message", [
    ({"JAX_NUM_PROCESSES": "abc"}, "JAX_NUM_PROCESSES='abc': need a whole number >= 1"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "5"}, "JAX_PROCESS_ID=5 is not below"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1"}, "JAX_PROCESS_ID='-1'"),
])
def test_a_distributed_environment_that_cannot_be_is_refused_naming_the_variable(monkeypatch,
                                                                              env, message):
  from grokjax.engine import runtime
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  with pytest.raises(RuntimeError, match=message.replace("(", r"\(")):
    runtime.maybe_initialize_distributed()
