"""Sparse parity, the paper's non-Fourier problem: W_c and its seed CV, W_c against m,
clamps at rho 0.90 and 1.30, and free training over weight decays and learning rates.

    python experiments/sparse_parity.py --preset quick
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("sparse_parity", doc=__doc__))
