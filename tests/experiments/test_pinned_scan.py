"""pinned_norm --scan: the delay law at every value of one per-run hyperparameter, each
value's free control and clamp cells in the same programs."""

import contextlib
import csv
import io
import json
import os

import pytest

from grokjax import cli
from grokjax.experiments.pinned_norm import refit

BASE = ["--preset", "smoke", "--seeds", "2", "--no-progress", "--no-compile-cache"]


def _run(*args):
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main("pinned_norm", argv=[*BASE, *args])
  return code, out.getvalue(), err.getvalue()


def _rows(folder):
  with open(os.path.join(folder, "runs.csv")) as f:
    return list(csv.DictReader(f))


def _key(r):
  return r["arm"], r["rho"], r["seed"]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
  """A temperature scan (0.5 and 2) and a folder trained at temperature 2 alone."""
  root = tmp_path_factory.mktemp("pinned_scan")
  out, alone = str(root / "scan"), str(root / "t2")
  code, stdout, err = _run("--scan", "temperature=0.5,2", "--out", out)
  assert code == 0, err[-2000:]
  code, _, err = _run("--temperature", "2", "--out", alone)
  assert code == 0, err[-2000:]
  return out, alone, stdout


def test_each_value_trains_in_the_same_programs_as_a_folder_of_its_own(scan):
  out, alone, stdout = scan
  assert "temperature scan 0.5 / 2" in stdout
  assert "p=23 temperature 2: free control W_c" in stdout
  assert sorted(os.listdir(os.path.join(out, "phases"))) == ["clamp_p23.npz", "free_p23.npz"]
  rows = _rows(out)
  assert sorted(float(r["temperature"]) for r in rows) == [0.5] * 6 + [2.0] * 6
  at2 = sorted((r for r in rows if float(r["temperature"]) == 2), key=_key)
  own = sorted(_rows(alone), key=_key)
  assert [_key(r) for r in at2] == [_key(r) for r in own]
  for a, b in zip(at2, own):
    assert (a["t_grok"], a["t_mem"], a["grokked"]) == (b["t_grok"], b["t_mem"], b["grokked"])
    assert float(a["norm_at_grok"]) == pytest.approx(float(b["norm_at_grok"]), rel=1e-5)
    if a["arm"] == "clamp":  # held at rho times its own value's W_c
      assert float(a["wc"]) == pytest.approx(float(b["wc"]), rel=1e-6)
      assert float(a["target_norm"]) == pytest.approx(float(a["rho"]) * float(a["wc"]), rel=1e-5)
  wcs = {float(r["temperature"]): float(r["wc"]) for r in rows if r["arm"] == "clamp"}
  assert wcs[0.5] < wcs[2.0]  # a hotter output needs a larger norm to grok


def test_the_law_per_value_is_the_law_of_its_own_folder(scan):
  out, alone, _ = scan
  fit = json.load(open(os.path.join(out, "fit.json")))
  own = json.load(open(os.path.join(alone, "fit.json")))
  law = fit["scan"]["per_value"]["2"]
  assert fit["scan"]["axis"] == "temperature" and set(fit["scan"]["per_value"]) == {"0.5", "2"}
  assert law["shared"]["alpha"] == pytest.approx(own["shared"]["alpha"], rel=1e-6)
  assert law["per_modulus"]["23"]["wc"] == pytest.approx(own["per_modulus"]["23"]["wc"], rel=1e-6)
  assert law["per_modulus"]["23"]["cells"] == own["per_modulus"]["23"]["cells"]
  # temperature 1 is not scanned: the headline is the first value's law
  assert fit["scan"]["home"] == "0.5"
  assert fit["shared"] == fit["scan"]["per_value"]["0.5"]["shared"]
  assert fit["shared"]["alpha"] != law["shared"]["alpha"]
  assert fit["n_runs"] == 12
  for name in ("delay_law.png", "delay_law_by_temperature.png"):
    assert os.path.exists(os.path.join(out, "figures", name))


def test_a_scan_folder_refits_to_the_same_laws(scan, tmp_path):
  import shutil
  out = str(tmp_path / "copy")
  shutil.copytree(scan[0], out)
  before = json.load(open(os.path.join(out, "fit.json")))
  refit(out, None)
  after = json.load(open(os.path.join(out, "fit.json")))
  assert after == before
  narrowed = refit(out, [1.0, 1.2])  # a held-norm range with one cell: each law says so
  assert all(v["shared"].get("alpha") is None for v in narrowed["scan"]["per_value"].values())


@pytest.mark.parametrize("args, words", [
    (["--scan", "temperature=0.5,2", "--wc-from", "."], "--wc-from: a --scan measures W_c"),
    (["--scan", "temperature=0.5,2", "--temperature", "2"], "--temperature 2 would set"),
    (["--scan", "grokfast_alpha=0.5,0.9"], "needs --grad-transform grokfast"),
])
def test_a_scan_that_cannot_hold_is_refused_with_one_line(tmp_path, args, words):
  out = tmp_path / "x"
  code, _, err = _run(*args, "--out", str(out))
  assert code == 2 and words in err and len(err.strip().splitlines()) == 1
  assert not out.exists()


@pytest.mark.parametrize("scan, extra, home", [
    ({"temperature": [0.5, 1, 2]}, {}, 1.0),
    ({"temperature": [0.5, 2]}, {}, 0.5),  # the own value not scanned: the first
    ({"momentum": [0.8, 0.9, 0.95]}, {}, 0.9),  # AdamW's b1
    ({"momentum": [0.5, 0.9]}, {"optimizer": "sgd:momentum=0.5"}, 0.5),
    ({"grokfast_lamb": [1, 2, 5]}, {"grad_transform": "grokfast"}, 2.0),
    ({"grokfast_alpha": [0.9, 0.99]}, {"grad_transform": "grokfast:alpha=0.99"}, 0.99),
])
def test_the_headline_of_a_scan_is_the_value_every_run_would_take_without_it(scan, extra, home):
  import dataclasses
  from grokjax.experiments.registry import resolve
  cfg = dataclasses.replace(resolve("pinned_norm", "smoke"), scan=scan, **extra)
  assert cfg.scan_home == home
