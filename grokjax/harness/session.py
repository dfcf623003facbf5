"""The results folder of one experiment: config.json, cached phases, checkpoints.

A `Session` writes config.json, refuses to resume under a changed configuration or
platform, loads finished training phases and resumes interrupted ones from their
checkpoints, so re-running the same command continues where a killed one stopped.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import tempfile
import time

import numpy as np

from grokjax.harness import io
from grokjax.harness.config import Config, as_written
from grokjax.engine.spec import Runs, SweepResult, Task
from grokjax.engine.train import train


class Session:
  """A results folder: config.json, cached phases, checkpoints, final tables."""

  def __init__(self, cfg: Config, out: str, *, force_new: bool = False, progress: bool = True,
               checkpoint_every_s: float = 60.0, overlap: bool | str = "auto",
               pad_moduli: bool | str = "auto", figures: bool = True):
    self.cfg, self.out, self.progress = cfg, out, progress
    self.figures = figures  # False: the experiment draws none (`grokjax figures` draws them later)
    self.checkpoint_every_s, self.overlap = checkpoint_every_s, overlap
    self.pad_moduli = pad_moduli  # pinned_norm: several moduli in one program (True/False/auto)
    cfg_path = os.path.join(out, "config.json")
    # (grokjax's own lock and half-written files, perhaps another process's of this same
    # jax.distributed run, do not make a folder the user's)
    ours = lambda name: name == LOCK or name.startswith(io.TEMP_PREFIX)
    if os.path.isdir(out) and not all(map(ours, os.listdir(out))) and not os.path.exists(cfg_path):
      raise ConfigMismatch(
          f"{out} is not empty and is not a grokjax results folder (no config.json): nothing "
          "there is touched; use another --out")
    if force_new and os.path.exists(cfg_path):  # before the lock: nothing of theirs is touched
      _read_config(cfg_path, written_by_grokjax=True)
    check_writable(out)
    lock_folder(out)
    if os.path.exists(cfg_path) and not force_new:
      saved = _read_config(cfg_path)
      old = as_written(saved["config"])
      new = io.plain(cfg.to_json())
      diff = sorted(k for k in set(old) | set(new)
                    if old.get(k) != new.get(k) and k not in ANALYSIS_ONLY)
      was = (saved.get("environment") or {}).get("platform")
      now = io.environment().get("platform")
      if was and was != now:
        raise ConfigMismatch(
            f"{out} was trained on {was} and this is {now}: results would not continue bit "
            "for bit; use another --out, or --force-new to start over")
      if diff:
        what = ", ".join(f"{k} (was {_short(old.get(k))}, now {_short(new.get(k))})" for k in diff)
        raise ConfigMismatch(
            f"{out} holds a run with another configuration (differs in: {what}); "
            "use another --out, or --force-new to start over")
    elif force_new and os.path.isdir(out):
      discard_outputs(out)
    self.started = time.time()
    self.estimate = None  # a `grokjax.harness.estimate.Estimate`, set by `plan`
    # x64: whether the grids compute in float64, which their Tasks decide (`train`), not
    # the process's setting (a float32 grid trains without x64 in an x64 process too)
    env = dict(io.environment(), x64=cfg.needs_x64())
    io.write_json(cfg_path, dict(config=cfg.to_json(), environment=env))

  def draw(self, figures) -> list[str]:
    """The experiment's figures of this folder, `figures(out)`, unless the session was
    opened without figures; returns the paths drawn."""
    return figures(self.out) if self.figures else []

  def phase(self, name: str, task: Task, runs: Runs) -> SweepResult:
    """Train a grid once: a finished phase is loaded, an interrupted one resumed. Its
    runs draw their seeds from the configuration's seed stream."""
    path = os.path.join(self.out, "phases", f"{name}.npz")
    runs = dataclasses.replace(runs, stream=self.cfg.seed_stream or "")
    if self.cfg.temperature != 1.0:  # --temperature: every run of every experiment
      runs = dataclasses.replace(runs, temperature=self.cfg.temperature)
    if self.cfg.noise:  # --noise: every run of every experiment
      runs = dataclasses.replace(runs, noise=self.cfg.noise)
    if os.path.exists(path):
      try:
        res = load_result(path)
      except Exception as e:  # numpy, zipfile and json raise many kinds for a damaged file
        raise ValueError(f"{path} is damaged ({type(e).__name__}): delete it (the phase "
                         "trains again) or use --force-new") from None
      if res.task == task and same_runs(res.runs, runs):
        say(f"  {name}: loaded from {path}")
        return res
    res = train(task, runs, chunk_steps=self.cfg.chunk_steps,
                retire_margin=self.cfg.retire_margin, grok_threshold=self.cfg.grok_threshold,
                mem_threshold=self.cfg.mem_threshold, grok_persist=self.cfg.grok_persist,
                progress=self.progress, desc=name,
                checkpoint=os.path.join(self.out, "checkpoints", name),
                checkpoint_every_s=self.checkpoint_every_s, overlap=self.overlap,
                on_rate=self._timer(name, task, len(runs)),
                keep_params=self.cfg.save_params)
    save_result(path, res)
    shutil.rmtree(os.path.join(self.out, "checkpoints", name), ignore_errors=True)
    return res

  def _timer(self, name: str, task: Task, n_runs: int):
    """What the training reports its rate to: the estimate, until it has one."""
    est = self.estimate
    if est is None or not est.wants():
      return None
    return lambda rate, clean: est.measured(task, name, n_runs, rate, clean)

  def path(self, *parts: str) -> str:
    return os.path.join(self.out, *parts)


def check_writable(out: str) -> None:
  """Raise ConfigMismatch, one line naming the folder, when `out` (or, before it exists,
  the folder it would be made in) cannot take a new file. The probe is a file made and
  removed at once; when it cannot be made, nothing on disk has changed."""
  folder = os.path.abspath(out)
  while not os.path.isdir(folder):
    folder = os.path.dirname(folder)
  try:
    fd, probe = tempfile.mkstemp(dir=folder, prefix=io.TEMP_PREFIX)
  except OSError as e:
    where = out if folder == os.path.abspath(out) else f"{out} (in {folder})"
    raise ConfigMismatch(f"{where} is not writable ({e.strerror}): nothing was changed; make "
                         "it writable or use another --out") from None
  os.close(fd)
  os.remove(probe)


# The lock a training process holds on its results folder while it lives (fcntl.flock: the
# kernel drops it when the process ends, however it ends).
LOCK = ".grokjax-lock"
_held: dict[str, int] = {}  # folder -> the descriptor this process holds its lock with


def lock_folder(out: str) -> None:
  """Take `out`'s lock for this process (again: a no-op), or raise ConfigMismatch naming
  the pid and host of the process that holds it. The processes of one jax.distributed run
  share a folder on purpose: only process 0 takes the lock."""
  import fcntl
  import platform
  import jax
  key = os.path.realpath(out)
  if key in _held or jax.process_index() != 0:
    return
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, LOCK)
  try:  # never through a link: the pid line would overwrite whatever it points at
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
  except OSError:
    if os.path.islink(path):
      raise ConfigMismatch(f"{path} is a symbolic link, not grokjax's lock: nothing was "
                           "changed; remove the link or use another --out") from None
    raise
  if not os.path.isfile(path):
    os.close(fd)
    raise ConfigMismatch(f"{path} is not a regular file: nothing was changed; remove it or "
                         "use another --out")
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise ConfigMismatch(f"{out} is in use by another grokjax run ({holder}); wait for it to "
                         "finish or use another --out") from None
  os.ftruncate(fd, 0)
  os.write(fd, f"pid {os.getpid()} on {platform.node()}".encode())
  _held[key] = fd


# What a results folder holds of grokjax's: all that --force-new deletes (figures: the ones
# `grokjax.harness.plots` lists as written). Anything else in the folder is the user's and stays.
OUTPUT_FILES = ("runs.csv", "curves.npz", "fit.json", "summary.json", "timing.json",
                io.MANIFEST)
OUTPUT_DIRS = ("phases", "checkpoints", "params")


def discard_outputs(out: str) -> None:
  """Delete a results folder's own outputs, the old results before the old config.json, so
  a kill midway never leaves a new configuration beside old results."""
  from grokjax.harness.plots import OWNED
  for name in OUTPUT_FILES:
    path = os.path.join(out, name)
    if os.path.exists(path):
      os.remove(path)
  for name in OUTPUT_DIRS:
    shutil.rmtree(os.path.join(out, name), ignore_errors=True)
  figures = os.path.join(out, "figures")
  listing = os.path.join(figures, OWNED)
  if os.path.exists(listing):
    inside = os.path.realpath(figures)
    for name in open(listing).read().split():
      path = os.path.join(figures, name)
      # a name of the listing is a file of figures/ itself, never a path that leads out
      if (os.path.basename(name) == name and not os.path.islink(path)
          and os.path.dirname(os.path.realpath(path)) == inside and os.path.isfile(path)):
        os.remove(path)
    os.remove(listing)
  if os.path.exists(os.path.join(out, "config.json")):
    os.remove(os.path.join(out, "config.json"))


def _read_config(path: str, written_by_grokjax: bool = False) -> dict:
  """A results folder's config.json, or ConfigMismatch saying in one line what is wrong.
  written_by_grokjax: also refuse one grokjax did not write (no experiment in its config,
  no grokjax version in its environment), naming the folder's files, which stay as they
  are: only a folder grokjax made is grokjax's to clear."""
  try:
    saved = io.read_json(path)
  except (ValueError, UnicodeDecodeError, RecursionError) as e:
    raise ConfigMismatch(f"{path} is not valid JSON ({type(e).__name__}): restore it, or use "
                         "--force-new to start the folder over") from None
  if written_by_grokjax:
    env = saved.get("environment") if isinstance(saved, dict) else None
    cfg = saved.get("config") if isinstance(saved, dict) else None
    if not (isinstance(cfg, dict) and isinstance(cfg.get("experiment"), str)
            and isinstance(env, dict) and "grokjax" in env):
      folder = os.path.dirname(path) or "."
      names = ", ".join(sorted(os.listdir(folder))[:8])
      raise ConfigMismatch(f"{path} was not written by grokjax, so {folder} ({names}) is not a "
                           "grokjax results folder: --force-new touches nothing there; use "
                           "another --out")
  if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
    raise ConfigMismatch(f"{path} holds no configuration (no \"config\" object): restore it, "
                         "or use --force-new to start the folder over")
  if not isinstance(saved.get("environment", {}), dict):
    raise ConfigMismatch(f"{path}'s \"environment\" is not an object: restore it, or use "
                         "--force-new to start the folder over")
  return saved


def _short(value, limit: int = 80) -> str:
  """A config value for a one-line message."""
  text = json.dumps(value)
  return text if len(text) <= limit else text[: limit - 3] + "..."


# Fields that change only what is computed from finished runs: a resume may change them.
ANALYSIS_ONLY = frozenset({"fit_rhos"})


class ConfigMismatch(ValueError):
  """A resume was asked for under a different configuration."""


def same_runs(a: Runs, b: Runs) -> bool:
  def same(x, y):
    return np.array_equal(x, y, equal_nan=x.dtype.kind == "f" and y.dtype.kind == "f")
  return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(Runs))


def save_result(path: str, res: SweepResult) -> None:
  arrays = {f"curve_{k}": v for k, v in res.curves.items()}
  arrays.update({f"param_{k}": v for k, v in (res.params or {}).items()})
  arrays.update({f"trajectory_{k}": v for k, v in (res.trajectory or {}).items()})
  if res.trajectory_steps is not None:
    arrays["trajectory_steps"] = res.trajectory_steps
  arrays.update({f"run_{f.name}": getattr(res.runs, f.name) for f in dataclasses.fields(Runs)})
  task = np.array(json.dumps(dataclasses.asdict(res.task), sort_keys=True))
  io.write_npz(path, steps=res.steps, last_step=res.last_step, diverged_step=res.diverged_step,
               wall_s=np.float64(res.wall_s), task=task, **arrays)


def load_result(path: str) -> SweepResult:
  z = np.load(path)
  text = str(z["task"])
  # JSON; phases written before it hold the repr of a sorted list of plain items
  task = Task(**(json.loads(text) if text.startswith("{") else dict(ast.literal_eval(text))))
  # Runs fields added after a phase was written take their defaults
  runs = Runs(**{f.name: z[f"run_{f.name}"] for f in dataclasses.fields(Runs)
                 if f"run_{f.name}" in z.files})
  curves = {k[len("curve_"):]: z[k] for k in z.files if k.startswith("curve_")}
  params = {k[len("param_"):]: z[k] for k in z.files if k.startswith("param_")}
  traj = {k[len("trajectory_"):]: z[k] for k in z.files
          if k.startswith("trajectory_") and k != "trajectory_steps"}
  return SweepResult(task, runs, z["steps"], curves, z["last_step"], z["diverged_step"],
                     float(z["wall_s"]), params=params or None, trajectory=traj or None,
                     trajectory_steps=z["trajectory_steps"] if traj else None)


def say(msg: str) -> None:
  print(msg, flush=True)
