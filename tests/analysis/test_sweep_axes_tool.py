"""tools/sweep_axes.py on committed folders: its numbers are those of the folders' runs.csv;
one value of a --scan folder (FOLDER@VALUE) reads as a folder of its own, and a --scan
folder without a value (several settings in one runs.csv) is refused with one line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

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


def test_a_scan_folder_without_a_value_is_refused_with_one_line(tmp_path):
  for args, words in (([f"scan={AXES}/ft_Tscan"], "is a --scan folder"),
                      ([f"scan={AXES}/pn_Tscan@3"], "'3' is not one of the values"),
                      ([f"T1={AXES}/pn_T1@1"], "is not a --scan folder")):
    proc = _tool(f"adamw={AXES}/pn_T1", *args, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr and not (tmp_path / "x").exists()


def test_one_value_of_a_scan_reads_as_the_folder_trained_at_it(tmp_path):
  """pn_Tscan trained pn_T1's and pn_T2's runs in one folder (the same T_grok): its values
  give the summary the two folders give, the control included."""
  folders = _tool(f"T1={AXES}/pn_T1", f"T2={AXES}/pn_T2", "--out", str(tmp_path / "f"),
                  "--n-boot", "50")
  values = _tool(f"T1={AXES}/pn_Tscan@1", f"T2={AXES}/pn_Tscan@2", "--out", str(tmp_path / "v"),
                 "--n-boot", "50")
  assert folders.returncode == 0 and values.returncode == 0, folders.stderr + values.stderr
  a = json.load(open(tmp_path / "f" / "summary.json"))["folders"]
  b = json.load(open(tmp_path / "v" / "summary.json"))["folders"]
  assert b[1]["value"] == 2.0 and b[1]["setting"].endswith("; temperature 2")
  for x, y in zip(a, b):
    assert x["shared"] == y["shared"]
    for p in ("41", "47"):
      mx, my = x["moduli"][p], y["moduli"][p]
      assert mx["alpha"] == my["alpha"] and mx["wc"] == pytest.approx(my["wc"], rel=1e-6)
      for cx, cy in zip(mx["cells"], my["cells"]):
        assert (cx["rho"], cx["median_t_grok"], cx["n"]) == (cy["rho"], cy["median_t_grok"], cy["n"])
        assert (cx.get("vs_control") or {}).get("ratios") == (cy.get("vs_control") or {}).get("ratios")
