"""grokjax's experiments from the command line: `grokjax EXPERIMENT [flags]` (installed as a
console script) or `python -m grokjax EXPERIMENT [flags]`, the same as
`python experiments/EXPERIMENT.py [flags]` from a clone.

    grokjax pinned_norm --moduli 97,113 --dry-run    # the plan, nothing trained
    grokjax pinned_norm --moduli 41,47 --preset quick
    grokjax reproduce --only dense_rho --report-only
    grokjax figures docs/results/dense_rho           # redraw a finished folder's figures
    grokjax tensorboard results/pinned_norm_quick    # its curves as TensorBoard event files
    grokjax free_training --help                     # every experiment's flags
"""

from __future__ import annotations

import re
import sys

from grokjax import cli
from grokjax.experiments import registry

REPRODUCE_DOC = "The paper, reproduced: every claim at the paper preset, then one table."
FIGURES_DOC = "Redraw the figures of finished results folders from their files (PNG and PDF)."
TENSORBOARD_DOC = "A finished results folder's curves as TensorBoard event files (needs tensorboardX)."


def figures(folders: list[str]) -> int:
  """`grokjax figures FOLDER...`: each folder's figures, drawn by its experiment."""
  import os
  from grokjax.harness import io
  if not folders:
    print("grokjax figures: error: name at least one results folder", file=sys.stderr)
    return 2
  for folder in folders:
    path = os.path.join(folder, "config.json")
    try:
      name = io.read_json(path)["config"]["experiment"]
      draw = registry.get(name).figures
      if draw is None:
        raise ValueError(f"the experiment {name!r} draws no figures")
      for out in draw(folder):
        print(out)
    except (OSError, KeyError, ValueError, TypeError) as e:
      what = f"{path} names no experiment" if isinstance(e, (KeyError, TypeError)) else e
      print(f"grokjax figures: error: {folder}: {what}", file=sys.stderr)
      return 2
  return 0


def tensorboard(args: list[str]) -> int:
  """`grokjax tensorboard FOLDER [--logdir DIR]`: `grokjax.harness.results.to_tensorboard`."""
  import argparse
  from grokjax.harness import results
  ap = argparse.ArgumentParser(prog="grokjax tensorboard", description=TENSORBOARD_DOC)
  ap.add_argument("folder", help="a finished results folder")
  ap.add_argument("--logdir", help="where the runs go (default FOLDER/tensorboard)")
  opts = ap.parse_args(args)
  try:
    logdir = results.to_tensorboard(opts.folder, opts.logdir)
  except (OSError, ImportError, ValueError) as e:  # io.TableError is a ValueError
    print(f"grokjax tensorboard: error: {e}", file=sys.stderr)
    return 2
  print(f"{logdir}  (view: tensorboard --logdir {logdir})")
  return 0


SUBCOMMANDS = {"reproduce": REPRODUCE_DOC, "figures": FIGURES_DOC, "tensorboard": TENSORBOARD_DOC}


def usage() -> str:
  lines = [__doc__.strip(), "", "experiments:"]
  for name in registry.names() + tuple(SUBCOMMANDS):
    doc = SUBCOMMANDS.get(name) or registry.get(name).doc
    first = re.split(r"(?<=\.)\s", " ".join((doc or "").split()))[0].rstrip(".")
    lines.append(f"  {name:<20} {first if len(first) <= 90 else first[:87] + '...'}")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(usage(), file=sys.stdout if argv else sys.stderr)
    return 0 if argv else 2
  name, rest = argv[0], argv[1:]
  if name == "reproduce":
    return cli.reproduce_main(rest, doc=usage())
  if name == "figures":
    return figures(rest)
  if name == "tensorboard":
    return tensorboard(rest)
  if name not in registry.names():
    print(f"grokjax: error: unknown experiment {name!r}; choose from "
          f"{', '.join(registry.names() + tuple(SUBCOMMANDS))}", file=sys.stderr)
    return 2
  return cli.main(name, argv=rest)


if __name__ == "__main__":
  sys.exit(main())
