"""Grids of runs and their tables: the free and clamp phases of an experiment, runs.csv,
curves.npz and timing.json, and W_c read back from another results folder.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

import numpy as np

from grokjax.harness import io
from grokjax.harness.config import Config, as_written
from grokjax.harness.session import Session
from grokjax.analysis.stats import critical_norm, finite_or_none
from grokjax.engine.reduce import floor_steps, last_finite
from grokjax.engine.spec import WEIGHT_GROUPS, Runs, SweepResult, Task


def run_table(res: SweepResult, cfg: Config, arm: Sequence[str], rho: Sequence[float | None],
              extra: dict[str, Any] | None = None, per_run: Sequence[dict] | None = None
              ) -> list[dict[str, Any]]:
  """One row per run of a phase: configuration, grok times, norms, collapse, final accuracy;
  `extra` adds the same columns to every row, `per_run` its own to each."""
  out = res.reduce(cfg.mem_threshold, cfg.grok_threshold, cfg.grok_persist)
  col = np.clip(np.searchsorted(res.steps, out.t_grok), 0, len(res.steps) - 1)
  collapse = res.curves["collapse"]
  c = res.curves
  none = np.full(len(res.runs), -1)  # curves of a phase trained before the floor was recorded
  t_floor = floor_steps(res.steps, c["floor"]) if "floor" in c else none
  t_floor_f32 = floor_steps(res.steps, c["floor_f32"]) if "floor_f32" in c else none
  at_grok = lambda name, i: (float(c[name][i, col[i]]) if name in c and out.grokked[i]
                             else None)
  gini = last_finite(c["gini"]) if "gini" in c else None
  grouped = res.runs.norm_group.any()  # a phase measuring a weight group names it per run
  own_grokfast = not (np.isnan(res.runs.grokfast_alpha).all()
                      and np.isnan(res.runs.grokfast_lamb).all())
  t = res.task  # the training's own choices, named where they are not the paper's
  paper = dict(Config.PAPER_CHOICES)
  setting = {k: getattr(t, k) for k in ("loss", "optimizer", "grad_transform")
             if getattr(t, k) != paper[k]}
  rows = []
  for i in range(len(res.runs)):
    seen = np.isfinite(collapse[i])
    rows.append(dict(
        p=int(res.runs.size[i]) or res.task.p, problem=res.task.problem, arch=res.task.arch,
        layernorm=(bool(res.runs.layernorm[i]) if res.task.layernorm == "per_run"
                   else res.task.layernorm),
        seed=res.runs.seed[i], seed_stream=str(res.runs.stream[i]), arm=arm[i], rho=rho[i] if arm[i] != "free" else None,
        target_norm=res.runs.target_norm[i] if res.runs.is_clamp[i] else None,
        lr=res.runs.lr[i], wd=res.runs.wd[i],
        t_int=res.runs.t_int[i] if res.runs.is_clamp[i] else None, budget=res.runs.budget[i],
        steps_trained=res.last_step[i], t_mem=out.t_mem[i], t_grok=out.t_grok[i],
        grokked=out.grokked[i], censored=out.censored[i], fell_back=out.fell_back[i],
        diverged=out.diverged[i], diverged_step=res.diverged_step[i] if out.diverged[i] else None,
        norm_at_grok=out.norm_at_grok[i],
        norm_at_mem=finite_or_none(out.norm_at_mem[i]),
        t_peak=out.t_peak[i] if out.t_peak[i] >= 0 else None,
        norm_peak=finite_or_none(out.norm_peak[i]),
        collapse_at_grok=collapse[i, col[i]] if out.grokked[i] else None,
        collapse_max=np.max(collapse[i, seen]) if seen.any() else None,
        t_floor=t_floor[i] if t_floor[i] >= 0 else None,
        t_floor_f32=t_floor_f32[i] if t_floor_f32[i] >= 0 else None,
        train_loss_at_grok=at_grok("train_loss", i), floor_at_grok=at_grok("floor", i),
        gini_final=gini[i] if gini is not None else None,
        final_train_acc=out.final_train_acc[i], final_test_acc=out.final_test_acc[i],
        **({"norm_group": WEIGHT_GROUPS[res.runs.norm_group[i]]} if grouped else {}),
        **({"temperature": res.runs.temperature[i]} if t.temperature else {}),
        **({"grokfast_alpha": finite_or_none(res.runs.grokfast_alpha[i]),
            "grokfast_lamb": finite_or_none(res.runs.grokfast_lamb[i])} if own_grokfast else {}),
        **({"momentum": finite_or_none(res.runs.momentum[i])} if t.momentum else {})))
    rows[-1].update(setting)
    rows[-1].update(extra or {})
    rows[-1].update(per_run[i] if per_run else {})
  return rows


def free_runs(cfg: Config, p: int, lrs: Sequence[float], wd: float | None = None) -> Runs:
  seeds = np.tile(np.arange(cfg.seeds), len(lrs))
  return Runs.free(seeds, np.repeat(lrs, cfg.seeds), cfg.wd if wd is None else wd,
                   cfg.budget(None, p), norm_group=WEIGHT_GROUPS.index(cfg.norm_group))


def clamp_runs(cfg: Config, p: int, wc: dict[float, float], rhos: Sequence[float],
               lrs: Sequence[float]) -> tuple[Runs, np.ndarray]:
  """Runs of every (lr, rho, seed) cell; returns them and each run's rho. RuntimeError (one
  line) where an lr's W_c is not finite: no free run grokked there, and a NaN target would
  leave its runs unclamped."""
  bad = [lr for lr in lrs if not np.isfinite(wc[float(lr)])]
  if bad:
    raise RuntimeError(f"p={p}: no free run grokked at lr {bad}, so W_c is unknown; "
                       "raise the budget (--steps) or change the learning rate")
  grid = [(lr, rho, s) for lr in lrs for rho in rhos for s in range(cfg.seeds)]
  lr, rho, seed = (np.array(c) for c in zip(*grid))
  target = np.array([r * wc[float(l)] for l, r in zip(lr, rho)])
  budget = np.array([cfg.budget(r, p) for r in rho])
  return Runs(seed, lr, cfg.wd, target, cfg.t_int, budget,
              norm_group=WEIGHT_GROUPS.index(cfg.norm_group)), rho


def phase_rows(sess: Session, name: str, task: Task, runs: Runs, arm, rho,
                phases: list, per_run: Sequence[dict] | None = None) -> list[dict[str, Any]]:
  """Train (or load) a phase, append (result, rows) to `phases`, return its rows."""
  res = sess.phase(name, task, runs)
  rows = run_table(res, sess.cfg, arm, rho, per_run=per_run)
  phases.append((res, rows))
  return rows


def scanned(cfg: Config, runs: Runs) -> Runs:
  """The runs at every value of the configuration's --scan, one copy per value in order
  (the runs themselves without a scan)."""
  if not cfg.scan:
    return runs
  return Runs.concat(*(dataclasses.replace(runs, **{cfg.scan_axis: v}) for v in cfg.scan_values))


def rows_at(rows, axis: str, value: float) -> list[dict[str, Any]]:
  """The rows of a --scan trained at `value` of `axis`."""
  return [r for r in rows if r.get(axis) is not None and np.isclose(float(r[axis]), value)]


def free_phase(sess: Session, p: int, lrs, phases, wd: float | None = None
               ) -> list[dict[str, Any]]:
  """The free runs of p at every lr (at weight decay `wd`, default the config's), and at
  every value of the configuration's --scan, in one program."""
  cfg = sess.cfg
  runs = scanned(cfg, free_runs(cfg, p, lrs, wd))
  name = f"free_p{p}" if wd is None else f"free_p{p}_wd{wd:g}"
  return phase_rows(sess, name, cfg.task(p), runs,
                     ["free"] * len(runs), [None] * len(runs), phases)


def wc_by_lr(rows, lrs) -> dict[float, float]:
  return {float(lr): critical_norm([r for r in rows if r["lr"] == lr]) for lr in lrs}


def clamp_phase(sess: Session, p: int, wc: dict[float, float], rhos, lrs, phases
                 ) -> list[dict[str, Any]]:
  cfg = sess.cfg
  runs, rho = clamp_runs(cfg, p, wc, rhos, lrs)
  rows = phase_rows(sess, f"clamp_p{p}", cfg.task(p), runs,
                     ["clamp"] * len(runs), list(rho), phases)
  for r in rows:
    r["wc"] = wc[float(r["lr"])]
  return rows


def write_tables(sess: Session, phases: list[tuple[SweepResult, list[dict]]]) -> list[dict]:
  """runs.csv and curves.npz over every phase; returns all rows."""
  rows = [r for _, rs in phases for r in rs]
  keys = list(dict.fromkeys(k for r in rows for k in r))
  io.write_csv(sess.path("runs.csv"), [{k: r.get(k) for k in keys} for r in rows])
  io.write_manifest(sess.out, len(rows))
  width = max(len(res.steps) for res, _ in phases)
  pad = lambda a, fill: np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)
  arrays = {"steps": np.concatenate([pad(np.tile(res.steps, (len(res.runs), 1)), -1)
                                     for res, _ in phases])}
  names = dict.fromkeys(k for res, _ in phases for k in res.curves)
  for k in names:
    arrays[k] = np.concatenate([pad(res.curves[k].astype(np.float32), np.nan) if k in res.curves
                                else np.full((len(res.runs), width), np.nan, np.float32)
                                for res, _ in phases])
  for k in ("p", "seed", "lr", "rho", "arm", "layernorm"):
    arrays[k] = np.array([np.nan if r.get(k) is None else r.get(k) for r in rows])
  io.write_npz(sess.path("curves.npz"), **arrays)
  keys = _unique([f"p{res.task.p}_{rs[0]['arm']}" for res, rs in phases])
  first = 0
  for key, (res, rs) in zip(keys, phases):  # --save-params: one file per phase
    if res.params is not None:
      write_params(sess.path("params", f"{key}.npz"), res, rs, first, sess.cfg.save_params)
    first += len(rs)
  # Timing lives apart from the results so a resumed run's tables equal an uninterrupted one's.
  io.write_json(sess.path("timing.json"), dict(
      session_wall_s=time.time() - sess.started,
      phases=dict(zip(keys, (res.wall_s for res, _ in phases))),
      run_steps=dict(zip(keys, (int(res.last_step.sum()) for res, _ in phases)))))
  return rows


def write_params(path: str, res: SweepResult, rows: list[dict], first: int, kept: str) -> None:
  """A phase's kept parameters as one npz: `run` (the runs.csv row of each), `step` (the
  step they are from) and one array per parameter leaf. "final": every run, at the step it
  stopped; "grok": the runs that grokked, at their T_grok as runs.csv gives it; "every:N":
  those, and every run's trajectory (`trajectory_run`, `trajectory_steps`, and one
  `trajectory_<leaf>` array [runs, saves, ...] per leaf, NaN past the step it stopped)."""
  traj = {}
  if res.trajectory is not None:
    traj = dict(trajectory_run=first + np.arange(len(rows)), trajectory_steps=res.trajectory_steps,
                **{f"trajectory_{k}": v for k, v in res.trajectory.items()})
  if kept != "final":
    at = np.flatnonzero([r["grokked"] for r in rows])
    step = np.array([rows[i]["t_grok"] for i in at], np.int64)
  else:
    at, step = np.arange(len(rows)), res.last_step
  io.write_npz(path, run=first + at, step=step, **{k: v[at] for k, v in res.params.items()},
               **traj)


def _unique(keys: list[str]) -> list[str]:
  """keys with a repeated one numbered (p59_free, p59_free_2, ...)."""
  seen: dict[str, int] = {}
  out = []
  for k in keys:
    seen[k] = seen.get(k, 0) + 1
    out.append(k if seen[k] == 1 else f"{k}_{seen[k]}")
  return out


# What a reused W_c must share: the problem, the model and the optimiser. The arithmetic's
# precision (--dtype, --matmul-precision) is not among them: holding a float32 control's
# W_c in float64 is how a precision check compares like with like.
WC_FIELDS = ("d", "hidden", "wd", "frac", "arch", "layernorm", "heads", "problem",
             "train_size")


def wc_source_mismatch(cfg: Config, folder: str) -> str | None:
  """Why `folder`'s W_c does not belong to cfg's model and optimiser, or None if it does."""
  path = os.path.join(folder, "config.json")
  if not os.path.exists(path):
    return f"{folder} has no config.json to check its W_c against"
  other = as_written(io.read_json(path).get("config", {}))
  mine = io.plain(cfg.to_json())
  # a field without a default (d, hidden, ...) is judged only where the folder wrote it
  diff = [f"{k} {other[k]!r} != {mine[k]!r}" for k in WC_FIELDS if k in other and other[k] != mine[k]]
  if other.get("lrs") and not np.isclose(other["lrs"][0], cfg.lrs[0]):
    diff.append(f"lr {other['lrs'][0]!r} != {cfg.lrs[0]!r}")
  return f"{folder} was trained with {', '.join(diff)}" if diff else None


def load_wc(folder: str) -> dict[int, float]:
  """W_c per modulus from a free_training (summary.json) or pinned_norm (fit.json) folder."""
  for name, key in (("summary.json", "per_modulus"), ("fit.json", "per_modulus")):
    path = os.path.join(folder, name)
    if os.path.exists(path):
      per_p = io.read_json(path)[key]
      wc = {int(p): float(v["wc"]) for p, v in per_p.items() if v.get("wc") is not None}
      bad = {p: w for p, w in wc.items() if not (np.isfinite(w) and 0 < w < 1e6)}
      if bad:
        raise ValueError(f"{path}: W_c {', '.join(f'{w:g} at p={p}' for p, w in bad.items())} "
                         "is not a weight norm")
      return wc
  raise FileNotFoundError(f"{folder} has no summary.json or fit.json to read W_c from")
