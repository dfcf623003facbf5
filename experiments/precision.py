"""Precision: the same seeds and held norms under several arithmetics (float32, float64,
an exact-gradient loss, float32's floor emulated in float64, parameter noise, bfloat16
matmuls), to tell the dynamics from the float32 floor.

    python experiments/precision.py --preset smoke
    python experiments/precision.py --moduli 59 --rhos 0.85,1.00,1.15 --arms float32,float64 \
        --wc-from docs/results/dense_rho --seed-stream ''
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("precision", doc=__doc__))
