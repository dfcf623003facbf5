"""One-shot rescales of the norm (global, or one weight group) against a sustained hold.

    python experiments/norm_interventions.py --preset quick
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("norm_interventions", doc=__doc__))
