"""Every experiment grokjax runs, found by name: one `Experiment` record each, one registry.

An experiment is a module with an `EXPERIMENT = Experiment(...)` record: its function, its
presets, its flags and checks, its output file and the one rule for how many runs it trains
(`cells`, read by the plan line, the memory check and the reproduction's plan alike). The
built-in experiments are the modules beside this one, listed in `BUILTIN` and imported by
name from this layer when first asked for (nothing below the experiments reads the table); your own is one
`register(Experiment(...))` call, after which `cli.main(name)` runs it like any other (the
command-line flags, the checks, the plan, resume, runs.csv):

    from grokjax import cli
    from grokjax.experiments import registry
    registry.register(registry.Experiment(name="mine", run=mine, presets={...}, cells=cells))
    cli.main("mine", argv=["--preset", "smoke", "--out", "runs/mine"])
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

from grokjax.harness import config
from grokjax.harness.config import Config
from grokjax.harness.estimate import Cell

# The experiments of this package, each the module grokjax.<name>.
BUILTIN = ("free_training", "pinned_norm", "norm_vs_lr", "layernorm_ablation",
           "norm_interventions", "free_norm_delay", "sparse_parity", "precision")


def _no_flags(ap) -> None:
  pass


def _no_checks(cfg: Config) -> None:
  pass


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment, everything the harness needs to plan, check and run it.

  name: its name on the command line and in config.json.
  run: trains the grid in a `Session` and writes its results; returns the output's dict.
  presets: per preset name ("paper", "quick", "smoke"), the `Config` values (the shared
    bases are `config.PAPER`, `config.QUICK`, `config.SMOKE`).
  cells: the runs it trains, as `Cell`s (p, runs, budget, phase), from a Config alone.
  add_flags: its own command-line flags (argparse), after the common ones.
  check: refuses a configuration it cannot run (`flags.UsageError`, one line).
  output: the summary file it writes beside runs.csv.
  figures: draws a finished folder's figures from its files (runs.csv, the output file,
    curves.npz where it is there) and returns their paths; the experiment draws its own
    with it, and `grokjax figures FOLDER` redraws any folder's.
  problem_presets: per problem family, per preset, values that replace the family's own
    (`config.PROBLEM_PRESETS`) for this experiment, e.g. sparse parity's learning rates.
  doc: one paragraph for --help (the module's docstring).
  """
  name: str
  run: Callable[[Any], dict]
  presets: Mapping[str, Mapping[str, Any]]
  cells: Callable[[Config], list[Cell]]
  add_flags: Callable[[Any], None] = _no_flags
  check: Callable[[Config], None] = _no_checks
  output: str = "fit.json"
  figures: Callable[[str], list[str]] | None = None
  problem_presets: Mapping[str, Mapping[str, Mapping[str, Any]]] = dataclasses.field(
      default_factory=dict)
  doc: str = ""


_REGISTERED: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
  """Add an experiment of your own; its name may not be taken. Returns it."""
  if experiment.name in BUILTIN or experiment.name in _REGISTERED or experiment.name == "reproduce":
    raise ValueError(f"an experiment named {experiment.name!r} exists already")
  _REGISTERED[experiment.name] = experiment
  return experiment


def unregister(name: str) -> None:
  """Remove an experiment `register` added (built-in ones stay)."""
  _REGISTERED.pop(name, None)


def names() -> tuple[str, ...]:
  """The built-in experiments, then the registered ones, in the order they came."""
  return BUILTIN + tuple(_REGISTERED)


def get(name: str) -> Experiment:
  """The record of the experiment called `name`; ValueError naming the choices if none."""
  if name in _REGISTERED:
    return _REGISTERED[name]
  if name not in BUILTIN:
    raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(names())}")
  return importlib.import_module(f"grokjax.experiments.{name}").EXPERIMENT


def resolve(experiment: str, preset: str, **overrides) -> Config:
  """The one way to a Config: the experiment's preset, the architecture's overlay
  (`--arch transformer`: `config.TRANSFORMER`), the problem family's (`--problem
  sparse_parity`: `config.PROBLEM_PRESETS`, then the experiment's own `problem_presets`),
  then every override that is not None."""
  exp = get(experiment)
  if preset not in exp.presets:
    raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(exp.presets)}")
  values = dict(exp.presets[preset])
  if (overrides.get("arch") or values.get("arch")) == "transformer":
    values.update(config.TRANSFORMER[preset])
  own = str(values.get("problem") or "add").partition(":")[0]
  family = str(overrides.get("problem") or own).partition(":")[0]
  if family in config.PROBLEM_PRESETS and family != own:
    values.update(config.PROBLEM_PRESETS[family][preset])
    values.update(exp.problem_presets.get(family, {}).get(preset, {}))
  values.update({k: v for k, v in overrides.items() if v is not None})
  values.setdefault("seed_stream", experiment)
  return Config(experiment=experiment, preset=preset, **values)
