"""grokjax: whole grokking sweep grids as one compiled, vmapped JAX program."""

from grokjax import problems, train  # modules: grokjax.train stays the engine module
from grokjax.optim import clamp_global_norm, paper_optimizer
from grokjax.problems import Problem
from grokjax.reduce import grok_times
from grokjax.results import Results, load
from grokjax.spec import Runs, SweepResult, Task
from grokjax.train import train as train_grid

__version__ = "0.1.0"
__all__ = ["Problem", "Results", "Runs", "SweepResult", "Task", "clamp_global_norm", "grok_times",
           "load", "paper_optimizer", "problems", "train", "train_grid"]
