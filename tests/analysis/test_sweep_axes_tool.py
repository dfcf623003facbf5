"""tools/sweep_axes.py on committed folders: its numbers are those of the folders' runs.csv,
and a --scan folder (several settings in one runs.csv) is refused with one line."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AXES = os.path.join(ROOT, "docs", "results", "sweep_axes")


def _tool(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sweep_axes.py"), *args],
                        capture_output=True, text=True, cwd=ROOT)


def test_the_summary_reads_its_numbers_from_the_folders(tmp_path):
  from grokjax.harness import io
  proc = _tool(f"adamw={AXES}/pn_T1", f"T2={AXES}/pn_T2", "--out", str(tmp_path), "--n-boot", "50")
  assert proc.returncode == 0, proc.stderr
  out = json.load(open(tmp_path / "summary.json"))
  assert out["control"] == "adamw" and [f["name"] for f in out["folders"]] == ["adamw", "T2"]
  rows = io.read_runs(os.path.join(AXES, "pn_T2", "runs.csv"))
  ctrl = io.read_runs(os.path.join(AXES, "pn_T1", "runs.csv"))
  m = out["folders"][1]["moduli"]["41"]
  free = [r["norm_at_grok"] for r in rows if r["p"] == 41 and r["arm"] == "free" and r["grokked"]]
  assert m["wc"] == float(np.median(free))
  cell = next(c for c in m["cells"] if c["arm"] == "clamp" and c["rho"] == 1.1)
  pairs = {r["seed"]: r["t_grok"] for r in ctrl if r["p"] == 41 and r["rho"] == 1.1}
  ratios = [r["t_grok"] / pairs[r["seed"]] for r in rows if r["p"] == 41 and r["rho"] == 1.1]
  assert cell["vs_control"]["median_ratio"] == float(np.median(ratios))  # every run grokked
  assert (tmp_path / "summary.md").exists() and (tmp_path / "t_grok.png").exists()


def test_a_scan_folder_is_refused_with_one_line(tmp_path):
  proc = _tool(f"adamw={AXES}/pn_T1", f"scan={AXES}/ft_Tscan", "--out", str(tmp_path / "x"))
  assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
  assert "--scan folder" in proc.stderr and not (tmp_path / "x").exists()
