"""Free training with weight decay: W_c per (p, lr), its spread, and W_c ~ p^beta.

    python experiments/free_training.py --preset quick
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("free_training", doc=__doc__))
