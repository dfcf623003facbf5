"""Reproduce the paper: train every claim's experiment at the paper preset (or load it),
then print each paper number beside ours with a verdict, and write docs/reproduction.md.

    python experiments/reproduce.py                       # everything (hours on a CPU)
    python experiments/reproduce.py --only dense_rho      # one claim
    python experiments/reproduce.py --report-only         # the table from docs/results/
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.reproduce_main(doc=__doc__))
