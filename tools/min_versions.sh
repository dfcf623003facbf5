#!/usr/bin/env bash
# The oldest versions pyproject.toml admits, installed in a fresh venv, against the tests
# that cover the engine, the optimiser, the models, the fits, the report and one whole
# experiment (about 2 minutes of tests on a 2-core CPU; not part of the default suite).
#   bash tools/min_versions.sh [VENV_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$(mktemp -d)/venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q "jax==0.8.0" "jaxlib==0.8.0" "flax==0.12.0" "optax==0.2.4" \
  "numpy==2.0.2" "chex==0.1.88" "orbax-checkpoint==0.12.0" "matplotlib==3.9.0" "tqdm==4.66.0" \
  "scipy==1.14.1" "pytest==8.0.0" "pytest-xdist==3.5.0"
"$venv/bin/pip" list 2>/dev/null | grep -iE "^(jax|jaxlib|flax|optax|numpy|orbax-checkpoint|scipy|matplotlib|chex|tqdm) "
cd "$root"
PYTHONPATH="$root" "$venv/bin/python" -m pytest -q -n 0 -p no:cacheprovider \
  tests/engine/test_optim.py tests/problems/test_models.py tests/problems/test_transformer.py tests/analysis/test_fit.py \
  tests/engine/test_reduce.py tests/analysis/test_compare.py tests/paper/test_reproduce.py \
  "tests/engine/test_train.py::test_batch_equals_each_run_alone" \
  "tests/engine/test_train.py::test_a_damaged_or_foreign_checkpoint_is_refused_in_one_line" \
  "tests/engine/test_train.py::test_overlapped_checkpoint_resume_equals_uninterrupted" \
  "tests/experiments/test_experiments.py::test_pinned_norm_smoke" \
  "tests/experiments/test_experiments.py::test_load_joins_runs_and_curves_by_run_and_refuses_a_misaligned_folder"
