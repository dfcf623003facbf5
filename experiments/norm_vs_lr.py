"""The rho x learning-rate matrix at one modulus: how much the held norm and the lr move T_grok.

    python experiments/norm_vs_lr.py --preset quick
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("norm_vs_lr", doc=__doc__))
