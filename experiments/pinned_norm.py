"""Pinned-norm delay law: clamp ||W|| to rho * W_c from t_int on; fit ln T_grok = c + alpha * rho.

    python experiments/pinned_norm.py --preset quick
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("pinned_norm", doc=__doc__))
