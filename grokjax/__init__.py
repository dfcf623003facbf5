"""grokjax: whole grokking sweep grids as one compiled, vmapped JAX program."""

from grokjax.optim import clamp_global_norm, paper_optimizer
from grokjax.reduce import grok_times
from grokjax.train import Runs, SweepResult, Task, train

__version__ = "0.1.0"
__all__ = ["Runs", "SweepResult", "Task", "clamp_global_norm", "grok_times",
           "paper_optimizer", "train"]
