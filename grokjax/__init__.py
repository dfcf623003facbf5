"""grokjax: whole grokking sweep grids as one compiled, vmapped JAX program.

The package in layers, each importing only those above it in this list
(docs/architecture.md):
  problems     what is learnt: `Problem`, modular arithmetic, sparse parity, the models
  engine       a grid in, curves out: `Task`, `Runs`, the per-run program, the host loop,
               the optax clamp, the grok-time reducer
  analysis     numpy only: censored cell statistics, the fits, one seed bootstrap
  harness      the results folder every experiment shares: config, session, plan, figures
  experiments  one module per experiment, found by name through `experiments.registry`
  paper        the reproduction: the paper's numbers, claims, rows, verdicts, report
and `cli` / `__main__` on top. What a user imports is here.
"""

from grokjax import problems
from grokjax.engine import train  # the engine's host loop, as a module: grokjax.train.train
from grokjax.engine.optim import NEVER, clamp_global_norm, paper_optimizer, scale_weights
from grokjax.engine.reduce import GrokTimes, grok_times
from grokjax.engine.spec import Runs, SweepResult, Task
from grokjax.engine.train import train as train_grid
from grokjax.engine.transforms import grokfast_ema, orthogonal_grad
from grokjax.harness.results import Results, load
from grokjax.problems import Problem

__version__ = "0.1.0"
__all__ = ["GrokTimes", "NEVER", "Problem", "Results", "Runs", "SweepResult", "Task",
           "clamp_global_norm",
           "grok_times", "grokfast_ema", "load", "orthogonal_grad", "paper_optimizer",
           "problems", "scale_weights", "train", "train_grid"]
