"""The paper's experiments as library code, one concern per module; this module gathers
their names for scripts and notebooks that want one import.

- `grokjax.config`: presets, `Config`, `resolve`;
- `grokjax.session`: the results folder (`Session`), cached phases, resume;
- `grokjax.grids`: the runs of a phase, runs.csv / curves.npz / timing.json;
- `grokjax.stats`: censored cell summaries, W_c, the delay-law fits;
- `grokjax.estimate`: time and memory before a run;
- one module per experiment: `free_training`, `pinned_norm`, `norm_vs_lr`,
  `layernorm_ablation`, `norm_interventions`, `free_norm_delay`, `sparse_parity`, each
  with its function of the same name, its flags (`add_flags`), checks (`check`) and
  output file (`OUTPUT`).
"""

from grokjax.config import (EXPERIMENTS, PRESETS, PROBLEM_PRESETS,  # noqa: F401
                            TRANSFORMER, Config, resolve)
from grokjax.estimate import (PRIOR_FRACTION, available_memory, eta_update,  # noqa: F401
                              expected_run_steps, grid_cells, hms, largest_fitting,
                              measure_rate, memory_needed, plan, plan_line, state_size,
                              training_seconds)
from grokjax.free_norm_delay import free_norm_delay  # noqa: F401
from grokjax.free_training import free_training  # noqa: F401
from grokjax.grids import (WC_FIELDS, clamp_phase, clamp_runs, free_phase, free_runs,  # noqa: F401
                           load_wc, phase_rows, run_table, wc_by_lr, wc_source_mismatch,
                           write_tables)
from grokjax.layernorm_ablation import layernorm_ablation  # noqa: F401
from grokjax.norm_interventions import norm_interventions  # noqa: F401
from grokjax.norm_vs_lr import norm_vs_lr  # noqa: F401
from grokjax.pinned_norm import pinned_norm  # noqa: F401
from grokjax.session import (ConfigMismatch, Session, load_result, same_runs,  # noqa: F401
                             save_result, say)
from grokjax.sparse_parity import sparse_parity  # noqa: F401
from grokjax.stats import (SENSITIVITY_THRESHOLDS, cell_summary, censored_median,  # noqa: F401
                           checked_wc, critical_norm, cv, delay_fits, fit_arrays, grok_rule,
                           print_delay_summary, wc_by_threshold)
from grokjax.spec import CURVES  # noqa: F401

# the names these had before the split
_cell_summary, _same_runs = cell_summary, same_runs
