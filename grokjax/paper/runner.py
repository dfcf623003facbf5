"""Training the claims: each part a results folder at the paper preset (planned first,
accelerator-only parts skipped on a CPU), its small outputs copied to docs/results.
"""

from __future__ import annotations

import os
import shutil
from typing import Sequence

from grokjax.harness import estimate, io
from grokjax.experiments import registry
from grokjax.paper.claims import CLAIMS, is_done, part_config
from grokjax.paper.prediction import lock_prediction
from grokjax.harness.session import Session

SMALL_FILES = ("config.json", "runs.csv", "fit.json", "summary.json", "timing.json",
               io.MANIFEST)


def copy_small_outputs(src: str, dst: str) -> None:
  """config.json, runs.csv, fit/summary.json, timing.json and figures/ of a results folder."""
  os.makedirs(dst, exist_ok=True)
  for name in SMALL_FILES:
    if os.path.exists(os.path.join(src, name)):
      shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
  if os.path.isdir(os.path.join(src, "figures")):
    shutil.copytree(os.path.join(src, "figures"), os.path.join(dst, "figures"), dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".grokjax-*"))


def run_claims(names: Sequence[str], out: str, results: str, seeds: int | None,
               progress: bool, checkpoint_every_s: float, say=print,
               overlap: bool | str = "auto", dry_run: bool = False) -> None:
  """Train every part of the named claims that `results` lacks; copy its small outputs.
  Claims that need an accelerator are planned (their CPU estimate printed), not run;
  dry_run: print the plan only."""
  import jax
  on_cpu = jax.default_backend() == "cpu"
  todo = []
  say("plan (paper preset; expected from the grok-time prior, see docs/getting_started.md):")
  total = 0.0
  for name in names:
    for part in CLAIMS[name][1]:
      cfg = part_config(part, seeds)
      if is_done(part, results, seeds):
        say(f"  {part.folder:<28} done: {os.path.join(results, part.folder)}")
        continue
      text, exp_s = estimate.plan_line(cfg, registry.get(cfg.experiment).cells(cfg))
      line = f"  {part.folder:<28} {text}"
      if part.accelerator_only and on_cpu:
        say(line + ": needs an accelerator, not run on this CPU")
        continue
      say(line)
      total += exp_s
      todo.append((name, part, cfg))
  say(f"expected training time on this machine: ~{estimate.hms(total)}")
  if dry_run:
    say("dry run: nothing trained")
    return
  for i, (name, part, cfg) in enumerate(todo):
    if name == "user_moduli":
      lock_prediction(results, cfg, say)
    folder = os.path.join(out, part.folder)
    say(f"=== {part.folder} ({i + 1}/{len(todo)}): results in {folder}")
    sess = Session(cfg, folder, progress=progress, checkpoint_every_s=checkpoint_every_s,
                      overlap=overlap)
    registry.get(part.experiment).run(sess)
    copy_small_outputs(folder, os.path.join(results, part.folder))

