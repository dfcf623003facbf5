"""Results-folder I/O. Every file is written atomically: a kill never leaves half a file."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import tempfile
from typing import Any, Iterable

import numpy as np


def _file_mode() -> int:
  """The mode a plain `open(path, "w")` would give: 0o666 less the umask (mkstemp's own
  0o600 would hide every result from the user's group)."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


TEMP_PREFIX = ".tmp-"  # a file being written: renamed into place when complete


def atomic_bytes(path: str, payload: bytes) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
  try:
    os.fchmod(fd, _file_mode())
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    if isinstance(e, OSError) and not e.filename:  # a write or fsync error: name the file
      raise OSError(e.errno, e.strerror or str(e), path) from None
    raise


def sha256_file(path: str) -> str:
  import hashlib
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


class TableError(ValueError):
  """A runs.csv that is not one grokjax wrote (one-line message naming file, line, column)."""


# The columns every runs.csv has, which the report cannot do without.
REQUIRED_COLUMNS = ("p", "seed", "arm", "lr", "t_grok", "grokked", "diverged")


# runs.csv's columns: name -> (the type `read_runs` gives, what it means). The one schema
# that the reader and the documentation read; a column not named here reads as a float.
RUNS_COLUMNS: dict[str, tuple[str, str]] = {
    "p": ("int", "the modulus (sparse parity: the input bits n)"),
    "problem": ("str", "what is learnt: add, sub, mul, div, x2_xy_y2, sparse_parity"),
    "arch": ("str", "mlp or transformer"),
    "layernorm": ("bool", "a LayerNorm in the model"),
    "seed": ("int", "the run's seed within its cell"),
    "seed_stream": ("str", "the stream its sample seeds are drawn from"),
    "arm": ("str", "free, clamp, or an experiment's own arm (oneshot, kick, hold, ...)"),
    "rho": ("float", "the held norm in units of W_c (clamp arms; empty for free runs)"),
    "target_norm": ("float", "the held norm rho * W_c itself"),
    "lr": ("float", "learning rate"),
    "wd": ("float", "weight decay lambda (decoupled)"),
    "t_int": ("int", "the step the clamp starts at"),
    "budget": ("int", "the run's step budget"),
    "steps_trained": ("int", "steps it trained: its budget, or where it retired or diverged"),
    "t_mem": ("int", "first evaluated step with train accuracy >= 0.99 (-1: never)"),
    "t_grok": ("int", "first evaluated step with test accuracy >= 0.90; the budget if censored"),
    "grokked": ("bool", "test accuracy reached the threshold"),
    "censored": ("bool", "never grokked within its budget (and did not diverge)"),
    "fell_back": ("bool", "test accuracy reached the threshold, then fell below it"),
    "diverged": ("bool", "its loss or weights became non-finite; left out of every fit"),
    "diverged_step": ("int", "the step it diverged at"),
    "norm_at_grok": ("float", "||W|| at T_grok (W_c is their median over free runs)"),
    "norm_at_mem": ("float", "||W|| at T_mem"),
    "t_peak": ("int", "the step of the largest ||W|| between T_mem and T_grok"),
    "norm_peak": ("float", "that largest ||W||: where a free run's contraction starts"),
    "collapse_at_grok": ("float", "softmax-collapse fraction at T_grok"),
    "collapse_max": ("float", "its largest value"),
    "t_floor": ("float", "first step with half the train examples at the loss floor of the "
                         "run's dtype (a correct-class gradient of exactly 0)"),
    "t_floor_f32": ("float", "the same for float32's floor (off-class mass below 2^-24), in any "
                             "dtype"),
    "train_loss_at_grok": ("float", "train loss at T_grok"),
    "floor_at_grok": ("float", "fraction of train examples at the floor at T_grok"),
    "gini_final": ("float", "Fourier Gini of the embedding at the last evaluation"),
    "final_train_acc": ("float", "train accuracy at the last evaluation"),
    "final_test_acc": ("float", "test accuracy at the last evaluation"),
    "norm_group": ("str", "the weight group whose norm is measured and held, where not all"),
    "wc": ("float", "the W_c its held norm is a multiple of (clamp runs)"),
    "intervention": ("str", "norm_interventions: oneshot, kick or hold"),
    "group": ("str", "norm_interventions: the weight group a kick scales"),
    "factor": ("float", "norm_interventions: the kick's factor"),
    "scale": ("float", "free_norm_delay: the factor s its weights were scaled by"),
    "start_norm": ("float", "free_norm_delay: ||W|| the contraction starts from"),
    "v_peak": ("float", "free_norm_delay: norm_peak^2"),
    "v_grok": ("float", "free_norm_delay: norm_at_grok^2"),
    "m": ("float", "sparse_parity: training examples"),
    "precision_arm": ("str", "precision: the arm, DTYPE[+LOSS][+noiseK]"),
    "dtype": ("str", "precision: float32 or float64"),
    "loss": ("str", "the training loss, where not the framework's cross-entropy"),
    "optimizer": ("str", "the base update, where not AdamW (NAME[:options])"),
    "grad_transform": ("str", "the gradient transform before it, where there is one"),
    "temperature": ("float", "the run's output temperature, where the program has one"),
    "noise": ("float", "precision: parameter noise k (units of 2^-24 |theta|)"),
    "grokfast_alpha": ("float", "the run's own Grokfast alpha, where a grid sets one per run"),
    "grokfast_lamb": ("float", "the run's own Grokfast lambda, where a grid sets one per run"),
    "momentum": ("float", "the run's own momentum of the base update, where a grid sets one per run"),
}


def read_runs(path: str) -> list[dict[str, Any]]:
  """runs.csv as typed rows (ints, floats, bools; None for empty cells). A file without
  a required column, or with a value that is not of its column's type, raises
  TableError naming the file, the row and the column."""
  import csv
  of = lambda kind: {k for k, (t, _) in RUNS_COLUMNS.items() if t == kind}
  ints, floats, bools, strings = of("int"), of("float"), of("bool"), of("str")
  rows = []
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
      raise TableError(f"{path} has no column {', '.join(missing)}: not a grokjax runs.csv")
    for i, raw in enumerate(reader, start=2):
      row = {}
      for k, v in raw.items():
        if v == "" or v is None:
          row[k] = None
        elif k in bools:
          if v not in ("True", "False"):
            raise TableError(f"{path}, line {i}: {k} = {v!r} is not True or False")
          row[k] = v == "True"
        elif k in strings:
          row[k] = v
        elif k in ints:
          try:
            row[k] = int(float(v))
          except (ValueError, OverflowError):
            raise TableError(f"{path}, line {i}: {k} = {v!r} is not a number") from None
        elif k in floats:
          try:
            row[k] = float(v)
          except ValueError:
            raise TableError(f"{path}, line {i}: {k} = {v!r} is not a number") from None
        else:
          try:
            row[k] = float(v)
          except ValueError:
            row[k] = v
      rows.append(row)
  return rows


MANIFEST = "manifest.json"


def write_manifest(folder: str, n_runs: int) -> None:
  """manifest.json: how many runs the finished folder's runs.csv holds and its SHA-256,
  so that a reader can tell a complete, unedited table from a cut or changed one."""
  write_json(os.path.join(folder, MANIFEST),
             dict(runs=int(n_runs), sha256={"runs.csv": sha256_file(os.path.join(folder, "runs.csv"))}))


def read_finished_runs(folder: str) -> list[dict[str, Any]]:
  """A finished folder's runs.csv (`read_runs`), checked against its manifest.json and
  for values no run can have (`implausible`): TableError naming the file when it was cut
  or changed."""
  path = os.path.join(folder, "runs.csv")
  rows = read_runs(path)
  mismatch = manifest_mismatch(folder, len(rows))
  if mismatch:
    raise TableError(f"{path} does not match its manifest: {mismatch}; re-run it, or restore "
                     "it (git checkout)")
  wrong = implausible(rows)
  if wrong:
    raise TableError(f"{path} cannot be a grokjax table: {wrong}; re-run it, or restore it "
                     "(git checkout)")
  return rows


# The columns of a run's outcome; every other column names the run (its cell and seed).
OUTCOMES = frozenset({
    "steps_trained", "t_mem", "t_grok", "grokked", "censored", "fell_back", "diverged",
    "diverged_step", "norm_at_grok", "norm_at_mem", "t_peak", "norm_peak", "collapse_at_grok",
    "collapse_max", "t_floor", "t_floor_f32", "train_loss_at_grok", "floor_at_grok", "gini_final", "final_train_acc",
    "final_test_acc", "wc", "target_norm"})


def implausible(rows) -> str | None:
  """Why these runs.csv rows cannot be a grokjax table, whatever its manifest says (None:
  plausible): a T_grok that is not a step within its budget, a censored run not at its
  budget, or one run written twice (two rows alike in every column that names a run)."""
  seen = set()
  for i, r in enumerate(rows):
    t, budget = r.get("t_grok"), r.get("budget")
    if t is not None and budget is not None:
      if not (isinstance(t, (int, float)) and math.isfinite(t) and 0 < t <= budget):
        return f"row {i + 1} has t_grok {t!r} outside (0, its budget {budget}]"
      if r.get("censored") and t != budget:
        return f"row {i + 1} is censored at {t!r}, not at its budget {budget}"
    key = tuple(sorted((k, repr(v)) for k, v in r.items() if k not in OUTCOMES))
    if key in seen:
      return f"row {i + 1} is a second copy of a run (same cell and seed)"
    seen.add(key)
  return None


def manifest_mismatch(folder: str, n_rows: int) -> str | None:
  """Why runs.csv does not match the folder's manifest.json (None: it matches, or the
  folder predates manifests)."""
  path = os.path.join(folder, MANIFEST)
  if not os.path.exists(path):
    return None
  m = read_json(path)
  if not isinstance(m, dict) or not isinstance(m.get("sha256"), dict):
    return "manifest.json is not a grokjax manifest"
  if n_rows != m.get("runs"):
    return f"it holds {n_rows} runs and manifest.json says {m.get('runs')}"
  if sha256_file(os.path.join(folder, "runs.csv")) != m.get("sha256", {}).get("runs.csv"):
    return "its SHA-256 differs from manifest.json's (the file was changed)"
  return None


def plain(x: Any) -> Any:
  """numpy scalars/arrays -> JSON-ready Python values; NaN and inf -> None."""
  if isinstance(x, dict):
    return {str(k): plain(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [plain(v) for v in x]
  if isinstance(x, np.ndarray):
    return plain(x.tolist())
  if isinstance(x, (np.bool_, bool)):
    return bool(x)
  if isinstance(x, (np.integer, int)):
    return int(x)
  if isinstance(x, (np.floating, float)):
    return None if not math.isfinite(float(x)) else float(x)
  return x


def write_json(path: str, obj: Any) -> None:
  atomic_bytes(path, (json.dumps(plain(obj), indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str) -> Any:
  """A JSON file; ValueError (one line, naming it) for one nested too deep to read."""
  with open(path) as f:
    try:
      return json.load(f)
    except RecursionError:
      raise ValueError(f"{path} is nested too deeply to be a grokjax file") from None


def write_csv(path: str, rows: Iterable[dict[str, Any]]) -> None:
  rows = list(rows)
  buf = io.StringIO()
  fields = list(rows[0]) if rows else []
  writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _csv_cell(v) for k, v in row.items()})
  atomic_bytes(path, buf.getvalue().encode())


def _csv_cell(v: Any) -> Any:
  v = plain(v)
  if v is None:
    return ""
  if isinstance(v, float):
    return repr(v)
  return v


def write_npz(path: str, **arrays: np.ndarray) -> None:
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  atomic_bytes(path, buf.getvalue())


def environment() -> dict[str, Any]:
  """Package versions and the device a result was computed on."""
  import jax, flax, optax  # noqa: E401  (imported here: only results need the versions)
  from grokjax import __version__
  dev = jax.devices()[0]
  return dict(grokjax=__version__, jax=jax.__version__, flax=flax.__version__,
              optax=optax.__version__, numpy=np.__version__, python=platform.python_version(),
              platform=dev.platform, device=getattr(dev, "device_kind", str(dev)),
              device_count=jax.device_count(), process_count=jax.process_count(),
              host=platform.node(), cpu=_cpu_name(), cores=os.cpu_count(),
              xla_flags=os.environ.get("XLA_FLAGS", ""), x64=bool(jax.config.jax_enable_x64))


def _cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()
