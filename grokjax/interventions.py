"""Norm interventions beyond the sustained clamp (`grokjax.norm_interventions`) and the
free-norm delay (`grokjax.free_norm_delay`), gathered under their former module."""

from grokjax.free_norm_delay import fit_kappa, free_norm_delay, peak_after_memorising  # noqa: F401
from grokjax.norm_interventions import norm_interventions  # noqa: F401
