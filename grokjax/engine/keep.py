"""What `grokjax.engine.train.train` keeps of each run's parameters besides its curves
(`keep_params`): at the step it stops, at its T_grok, or a trajectory every N steps; the
host-side copies out of the batch, by run and lane."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from grokjax.engine.program import GrokRule
from grokjax.engine.reduce import grok_times
from grokjax.engine.runtime import to_host

# The parameters `train` can keep of each run (`keep_params`; the --save-params choices);
# "every:N" (`keep_every`) also keeps a trajectory.
KEEP_PARAMS = ("none", "final", "grok")


def keep_every(keep_params: str) -> int | None:
  """N of keep_params "every:N" (a trajectory every N steps, and the parameters at T_grok);
  None for the other choices; ValueError for one that is none of them.

  >>> keep_every("every:500"), keep_every("grok")
  (500, None)
  """
  if keep_params in KEEP_PARAMS:
    return None
  head, _, n = str(keep_params).partition(":")
  if head != "every" or not n.isdigit() or int(n) < 1:
    raise ValueError(f"keep_params must be one of {', '.join(KEEP_PARAMS)} or every:N (N a "
                     f"positive number of steps), got {keep_params!r}")
  return int(n)


def keeps_grok(keep_params: str) -> bool:
  """Whether keep_params keeps the parameters at T_grok, captured on the device ("grok" and
  "every:N")."""
  return keep_params == "grok" or keep_every(keep_params) is not None


def n_keep_of(trajectory: dict[str, np.ndarray]) -> int:
  return next(iter(trajectory.values())).shape[1]


def keep_trajectory(kept: dict[str, np.ndarray], every: int, params, lanes, runs, now, before
                     ) -> None:
  """Copy the parameters of the runs whose chunk just ended at a multiple of `every` (a
  chunk never crosses one: `train` sizes them so) into their trajectory slot now // every - 1."""
  hit = (now % every == 0) & (now > before) & (now // every <= n_keep_of(kept))
  if not hit.any():
    return
  at, slot = np.asarray(lanes)[hit], now[hit] // every - 1
  for name, leaf in named_leaves(to_host(params)).items():
    kept[name][np.asarray(runs)[hit], slot] = np.asarray(leaf)[at]


def named_leaves(params) -> dict[str, Any]:
  """The parameter leaves by name: their tree paths joined with dots (`w1`, `blocks.0.wq`)."""
  return {".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def lanes_of(runs, lanes, pad) -> np.ndarray:
  """The batch lane of each of `runs` (live runs have exactly one that is not padding)."""
  lane_of = {int(r): i for i, r in enumerate(lanes) if not pad[i]}
  return np.array([lane_of[int(r)] for r in runs])


def keep_final(kept: dict[str, np.ndarray], params, lanes, pad, done) -> None:
  """Copy the parameters of the runs `done` (just stopped) from the batch into `kept`."""
  at = lanes_of(done, lanes, pad)
  for name, leaf in named_leaves(to_host(params)).items():
    kept[name][done] = np.asarray(leaf)[at]


def keep_grok(loop, grok, persist: int, lanes, pad, done) -> None:
  """Copy the parameters at T_grok of the runs `done` that grokked, and that step, from the
  batch's `GrokState` (`grokjax.engine.program`) into the `LoopState`."""
  grok = to_host(grok)
  at = lanes_of(done, lanes, pad)
  hit = np.asarray(grok.streak)[at] >= persist
  done, at = done[hit], at[hit]
  loop.grok_step[done] = np.asarray(grok.step)[at]
  for name, leaf in named_leaves(grok.params).items():
    loop.params[name][done] = np.asarray(leaf)[at]


def check_grok_steps(kept: np.ndarray, steps, curves, budgets, rule: GrokRule) -> None:
  """The steps the device kept parameters at must be the T_grok the curves give."""
  res = grok_times(steps, curves["train_acc"], curves["test_acc"], curves["norm"], budgets,
                   grok_threshold=rule.threshold, grok_persist=rule.persist)
  want = np.where(res.grokked, res.t_grok, -1)
  bad = np.flatnonzero(want != kept)
  if len(bad):
    i = int(bad[0])
    raise RuntimeError(f"run {i}'s parameters were kept at step {kept[i]} and its curves put "
                       f"T_grok at {want[i]} (-1: never): the device's grok rule disagrees "
                       "with grokjax.engine.reduce's")
