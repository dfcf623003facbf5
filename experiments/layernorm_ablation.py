"""LayerNorm ablation: the delay law with and without LayerNorm, free control and clamp
cells for each variant, alpha fitted per variant.

    python experiments/layernorm_ablation.py --preset quick
    python experiments/layernorm_ablation.py --arch transformer        # the paper's, for a GPU
"""

import sys

from grokjax import cli

if __name__ == "__main__":
  sys.exit(cli.main("layernorm_ablation", doc=__doc__))
