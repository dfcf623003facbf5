"""A finished results folder in one call: `grokjax.load(folder)`.

    import grokjax
    res = grokjax.load("results/pinned_norm_quick_p41-47")
    res.runs[0]                        # runs.csv's first row, typed: p, seed, arm, rho, t_grok, ...
    steps, acc = res.curve(0, "test_acc")
    [i for i, r in enumerate(res.runs) if r["arm"] == "clamp" and r["grokked"]]
    res.dataframe()                    # the runs as a pandas DataFrame (pandas not required)
    params, step = res.params(0)       # run 0's weights, kept by --save-params final or grok
    grokjax.harness.results.to_tensorboard("results/pinned_norm_quick_p41-47")  # needs [tensorboard]

Run i is row i of runs.csv and row i of every curve; `load` checks that join on the
columns both files carry (modulus, seed, learning rate, rho, arm, LayerNorm) and refuses a
folder where they disagree, so curves are never paired with another run's row.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import Any

import numpy as np

from grokjax.harness import io

JOIN_COLUMNS = ("p", "seed", "lr", "rho", "arm", "layernorm")


@dataclasses.dataclass(frozen=True)
class Results:
  """One results folder: its configuration, runs and curves, and its fit or summary."""
  folder: str
  config: dict[str, Any]
  environment: dict[str, Any]
  runs: list[dict[str, Any]]  # runs.csv's rows, typed; run i is row i
  steps: np.ndarray  # int[runs, evals]: the step of each evaluation (-1: no evaluation)
  curves: dict[str, np.ndarray]  # name -> float[runs, evals] (NaN: no evaluation)
  fit: dict[str, Any] | None  # fit.json or summary.json, whichever the experiment wrote

  def curve(self, run: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one run's curve, its evaluations only: up to the step it stopped
    at (its budget, or where it retired)."""
    keep = (self.steps[run] >= 0) & (self.steps[run] <= self.runs[run]["steps_trained"])
    return self.steps[run][keep], self.curves[name][run][keep]

  def params(self, run: int, step: int | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Run `run`'s parameters (leaf name -> array, the model's own names) and the step
    they are from: for a folder trained with --save-params final, the step it stopped at;
    with --save-params grok (or every:N), its T_grok (IndexError for a run that never
    grokked). `step`: from a folder trained with --save-params every:N, the parameters at
    that saved step (a multiple of N the run trained to; `trajectory` lists them)."""
    if step is not None:
      steps, traj = self.trajectory(run)
      hit = np.flatnonzero(steps == step)
      if not len(hit):
        raise IndexError(f"run {run} has no parameters saved at step {step}: its trajectory "
                         f"holds steps {_span(steps)}")
      return {k: v[int(hit[0])] for k, v in traj.items()}, int(step)
    for z in self._param_files():
      hit = np.flatnonzero(z["run"] == run)
      if len(hit):
        i = int(hit[0])
        return ({k: z[k][i] for k in z.files if k not in ("run", "step")
                 and not k.startswith("trajectory_")}, int(z["step"][i]))
    if self.config.get("save_params", "none") not in ("none", "final") and \
        0 <= run < len(self.runs):
      raise IndexError(f"run {run} never grokked: --save-params {self.config['save_params']} "
                       "keeps the parameters of the runs that grokked, at their T_grok")
    raise IndexError(f"run {run} is in none of {self.folder}'s params/ files (runs.csv has "
                     f"{len(self.runs)} runs)")

  def trajectory(self, run: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run `run`'s saved trajectory (--save-params every:N): the steps N, 2N, ... it
    trained to, and per leaf its parameters at them, [saves, ...]."""
    for z in self._param_files():
      if "trajectory_run" not in z.files:
        continue
      hit = np.flatnonzero(z["trajectory_run"] == run)
      if len(hit):
        i = int(hit[0])
        steps = z["trajectory_steps"]
        keep = steps <= self.runs[run]["steps_trained"]
        return steps[keep], {k[len("trajectory_"):]: z[k][i][keep] for k in z.files
                             if k.startswith("trajectory_") and k not in
                             ("trajectory_run", "trajectory_steps")}
    raise IndexError(f"run {run} has no trajectory in {self.folder}: train with "
                     "--save-params every:N to keep one")

  def _param_files(self):
    """The params/ files, opened one at a time (FileNotFoundError when there are none)."""
    folder = os.path.join(self.folder, "params")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if not names:
      raise FileNotFoundError(f"{folder} is missing: train with --save-params final, grok or "
                              "every:N to keep the parameters")
    for name in names:
      with np.load(os.path.join(folder, name), allow_pickle=False) as z:
        yield z

  def dataframe(self):
    """The runs as a pandas DataFrame, one row per run, index = run id."""
    try:
      import pandas as pd
    except ImportError:
      raise ImportError("Results.dataframe needs pandas (pip install pandas); "
                        "Results.runs holds the same rows as dicts") from None
    return pd.DataFrame(self.runs)


def _span(steps: np.ndarray) -> str:
  return "none" if not len(steps) else f"{steps[0]:,} to {steps[-1]:,} every {steps[0]:,}"


def load(folder: str, curves: bool = True) -> Results:
  """Read a finished results folder (see the module docstring). Raises io.TableError
  when runs.csv and curves.npz are not the same runs, FileNotFoundError when it is not a
  finished folder. curves=False: a folder without curves.npz (as committed under
  docs/results) loads too, with no curves."""
  runs_path, curves_path = (os.path.join(folder, n) for n in ("runs.csv", "curves.npz"))
  needed = [runs_path, os.path.join(folder, "config.json")] + ([curves_path] if curves else [])
  for path in needed:
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} is missing: not a finished grokjax results folder")
  runs = io.read_finished_runs(folder)
  arrays = {"steps": np.zeros((len(runs), 0), np.int64)}
  if os.path.exists(curves_path):
    try:
      with np.load(curves_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
      raise io.TableError(f"{curves_path} cannot be read ({type(e).__name__}): re-run the "
                          "folder, or load it with curves=False") from None
  steps = arrays.pop("steps")
  keys = {k: arrays.pop(k) for k in JOIN_COLUMNS if k in arrays}
  if len(steps) != len(runs):
    raise io.TableError(f"{curves_path} holds {len(steps)} runs and runs.csv {len(runs)}")
  for k, column in keys.items():
    ours = [r.get(k) for r in runs]
    for i, (a, b) in enumerate(zip(ours, column)):
      if not _same(a, b):
        raise io.TableError(f"{curves_path}: run {i} has {k} {b!r} and runs.csv says {a!r}")
  saved = io.read_json(os.path.join(folder, "config.json"))
  fit = next((io.read_json(os.path.join(folder, n)) for n in ("fit.json", "summary.json")
              if os.path.exists(os.path.join(folder, n))), None)
  if fit is not None and not isinstance(fit, dict):
    raise io.TableError(f"{folder}'s fit.json or summary.json is not a JSON object")
  if not (isinstance(saved, dict) and isinstance(saved.get("config", {}), dict)
          and isinstance(saved.get("environment", {}), dict)):
    raise io.TableError(f"{folder}/config.json holds no configuration and environment objects")
  return Results(folder, saved.get("config", {}), saved.get("environment", {}), runs,
                 steps, arrays, fit)


def _same(a, b) -> bool:
  if a is None:
    return isinstance(b, (float, np.floating)) and np.isnan(b)
  if isinstance(a, bool) or isinstance(b, (bool, np.bool_)):
    return bool(a) == bool(b) or str(a) == str(b)
  if isinstance(a, str) or isinstance(b, (str, np.str_)):
    return str(a) == str(b)
  return bool(np.isclose(float(a), float(b), rtol=1e-6, atol=0))


def run_names(res: Results) -> list[str]:
  """A TensorBoard run name per run: its id, then those of the join columns that differ
  between the folder's runs and that it has (`run3_arm=clamp_rho=0.95_seed=1`)."""
  order = ("p", "arm", "rho", "lr", "layernorm", "seed")  # JOIN_COLUMNS, as a reader groups
  varying = [k for k in order if len({repr(r.get(k)) for r in res.runs}) > 1]
  width = len(str(max(len(res.runs) - 1, 0)))
  value = lambda v: f"{v:g}" if isinstance(v, float) else str(v)
  return ["_".join([f"run{i:0{width}d}"] + [f"{k}={value(r[k])}" for k in varying
                                            if r.get(k) is not None])
          for i, r in enumerate(res.runs)]


def to_tensorboard(folder: str, logdir: str | None = None) -> str:
  """Write a finished folder's curves as TensorBoard event files; return the logdir.

  Each run is one subdirectory of `logdir` (default FOLDER/tensorboard), named by
  `run_names`; each curve of curves.npz is a scalar of its own name (test_acc, norm, ...)
  at the steps the run was evaluated at, up to the step it stopped at (`Results.curve`).
  Needs tensorboardX (pip install 'grokjax[tensorboard]'). A run subdirectory that
  already holds event files is refused (FileExistsError): a second export would draw
  every point twice.
  """
  try:
    from tensorboardX import FileWriter
    from tensorboardX.proto.summary_pb2 import Summary
  except ImportError:
    raise ImportError("grokjax.harness.results.to_tensorboard needs tensorboardX: pip install "
                      "'grokjax[tensorboard]' (or tensorboardX)") from None
  res = load(folder)
  logdir = os.path.join(folder, "tensorboard") if logdir is None else logdir
  names = run_names(res)
  for name in names:
    run_dir = os.path.join(logdir, name)
    if os.path.isdir(run_dir) and any(f.startswith("events.out.tfevents")
                                      for f in os.listdir(run_dir)):
      raise FileExistsError(f"{run_dir} already holds event files: remove {logdir} or "
                            "choose another logdir")
  for i, name in enumerate(names):
    curves = {curve: res.curve(i, curve) for curve in res.curves}  # all at the same steps
    steps = next(iter(curves.values()), ([], None))[0]
    writer = FileWriter(os.path.join(logdir, name))
    try:  # one event per evaluation holding every curve: a seventh of the records to write
      for j, step in enumerate(steps):
        writer.add_summary(Summary(value=[Summary.Value(tag=curve, simple_value=float(v[j]))
                                          for curve, (_, v) in curves.items()]), int(step))
    finally:
      writer.close()
  return logdir
