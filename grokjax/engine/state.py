"""The typed states of the engine: a run's state on the device (`RunState`, with its
`GrokState` and, under a padded Task, its `PaddedData`), which the compiled chunks carry and
vmap over runs, and the host loop's (`LoopState`); both go into the checkpoints
(`grokjax.engine.checkpoints`)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import numpy as np


class GrokState(NamedTuple):
  """A run's parameters at the first evaluation of its latest streak at or above the grok
  threshold (NaN before one), the streak's length, and that evaluation's step (-1)."""
  params: dict[str, jax.Array]
  streak: jax.Array
  step: jax.Array


class PaddedData(NamedTuple):
  """A run's data under a padded Task (several moduli in one program): the train set as
  index arrays with a weight per example, the full set with train and test masks, the mask
  of the run's own classes, and `which`, its size's index in Task.sizes."""
  train: tuple[jax.Array, jax.Array]
  train_y: jax.Array
  train_w: jax.Array
  eval: tuple[jax.Array, jax.Array]
  eval_y: jax.Array
  eval_train: jax.Array
  eval_test: jax.Array
  classes: jax.Array
  which: jax.Array


class RunState(NamedTuple):
  """One run's training state: what `Program.step` carries, the chunks vmap over runs and
  the checkpoints save.

  params: leaf name -> array, the model's own names (`embed`, `w1`, ...).
  opt: the optax state of the paper's chain (`grokjax.engine.optim.paper_optimizer`).
  step: updates taken; diverged: the step it became non-finite at (-1: never).
  data: its train/test split (`Problem.split`), or `PaddedData` under a padded Task.
  noise_key: the key data of its parameter noise (Task.noise), else None.
  grok: its `GrokState` when the program keeps parameters at T_grok, else None.
  """
  params: dict[str, jax.Array]
  opt: Any
  step: jax.Array
  diverged: jax.Array
  data: Any
  noise_key: jax.Array | None = None
  grok: GrokState | None = None


@dataclasses.dataclass
class LoopState:
  """The host side of `grokjax.engine.train.train`: what a checkpoint saves beside the
  runs' device state (`grokjax.engine.program.RunState`).

  lanes, pad: the run each batch lane trains, and which lanes are padding.
  live: runs still training; last_step: steps each has trained; diverged: its divergence
    step (-1: never).
  curves: curve name -> [runs, evals], NaN where not (yet) evaluated.
  elapsed: seconds trained before this process; lane_steps: steps paid for over lanes.
  params, grok_step, trajectory: what `keep_params` keeps (`grokjax.engine.keep`), else None.
  """
  lanes: np.ndarray
  pad: np.ndarray
  live: np.ndarray
  last_step: np.ndarray
  diverged: np.ndarray
  curves: dict[str, np.ndarray]
  elapsed: np.float64
  lane_steps: np.int64
  params: dict[str, np.ndarray] | None = None
  grok_step: np.ndarray | None = None
  trajectory: dict[str, np.ndarray] | None = None

  def tree(self) -> dict:
    """The fields as orbax saves them (a field that is None is left out)."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None}
