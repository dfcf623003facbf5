"""What the paper reports (arXiv:2606.13753; ../shared/SPEC.md), for comparison only.

These numbers are the other column of `experiments/reproduce.py`'s table. Nothing in
grokjax trains, fits or decides anything from them.
"""

from __future__ import annotations

DENSE_RHO = dict(p=59, alpha=7.64, alpha_ci=(7.47, 7.81), r2=0.994, seeds=16)

MODULI_SCAN = dict(
    wc={41: 49.54, 53: 52.54, 59: 54.72, 71: 58.73},
    alpha={41: 7.92, 53: 7.56, 59: 7.42, 71: 7.07},
    alpha_r2_min=0.986,
    shared_alpha=7.49, shared_alpha_ci=(7.16, 7.69), shared_r2=0.996, seeds=12)

# Table 1: median T_grok at p = 59, 16 seeds, 30k budget; rows rho, columns lr.
NORM_VS_LR = dict(
    lrs=(1e-3, 2e-3, 4e-3, 8e-3),
    median={0.85: (1492, 916, 697, 587), 1.00: (4077, 2891, 1961, 1256),
            1.15: (13426, 12317, 10221, 8007), 1.30: (27925, 23168, 19501, 16893)},
    free=(5131, 2808, 1471, 805),
    fold_rho_text=19.0, fold_lr_text=2.0, seeds=16)

FREE_TRAINING = dict(wc={29: 42.0, 41: 48.0, 59: 55.0, 79: 61.0, 97: 67.0}, beta=0.38,
                     cv_range=(0.01, 0.02))

TRAIN_FRACTION = dict(p=59, wc={0.30: 56.4, 0.35: 55.9, 0.40: 54.8, 0.50: 55.1, 0.65: 55.7})

# The attention model without LayerNorm (alpha_2 fitted over rho 0.85-1.15; 1.20 saturates;
# the free control's median "about 4,400"), and with LayerNorm at p = 71, lr 1e-3 (medians
# "about": the free control, and the unembedding held at rho x its W_c).
TRANSFORMER = dict(p=59, lr=5e-4, wc=37.0, alpha=15.45, r2=0.999, fit_rhos=(0.85, 1.15),
                   free_median=4400, median={0.85: 718, 1.00: 6608, 1.15: 73966, 1.20: 99920})
# The unembedding's held norm is rho x 12.1, a W_c their runner fixes for that weight group
# (its WC_GROUP), where grokjax holds rho x its own free control's W_c of the group.
TRANSFORMER_LN = dict(p=71, lr=1e-3, free_median=1900, unembedding_wc=12.1,
                      unembedding_median={0.85: 1970, 1.00: 2440, 1.15: 3280, 1.30: 3730})

# Sparse parity's numbers (n = 30, k = 3) live with its experiment, which prints them beside
# ours: `grokjax.experiments.sparse_parity.AUTHORS`.

# Norm interventions at p = 59 (MLP, 16 seeds, t_int 500, held norms rho x a fixed 54.6,
# 20k budget): median T_grok; None: no seed grokked within the budget.
INTERVENTIONS = dict(p=59, control=5395,
                     oneshot={0.70: 4576, 0.85: 4898, 1.00: 5321, 1.15: 5469, 1.30: 5622},
                     kick={"all": 4898, "embedding": 5321, "hidden": 5249, "output": 5321},
                     hold={0.90: 1817, 1.00: 3928, 1.15: 13223, 1.30: None},
                     span_oneshot=1.23, budget=20000)

# W_c (mean norm at T_grok) at p = 59, train fraction 0.50, by weight decay and learning rate:
# the text gives weight decay 3, listing 48.9 / 48.7 / 49.1 in the order of the authors' files
# (lr 1e-3, 3e-3, 3e-4; their per-seed means 48.87 / 48.74 / 49.09 fix the mapping), and says
# CV < 1 % there; the abstract's "CV 1-2 % across learning rates" sentence is read at every
# weight decay (the body restricts it to "sufficient weight decay").
WC_WD_LR = dict(p=59, frac=0.50, wc={3.0: {1e-3: 48.9, 3e-3: 48.7, 3e-4: 49.1}},
                cv_max={3.0: 0.01}, abstract_cv=(0.01, 0.02))
