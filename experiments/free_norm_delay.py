"""The free-norm delay: free training from initial weights scaled by s, over lr x weight decay.

    python experiments/free_norm_delay.py --preset quick
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("free_norm_delay", doc=__doc__))
