#!/usr/bin/env bash
# The documentation site as CI builds it: from scratch, warnings as errors, every notebook
# executed (pip install -e ".[docs]" first). The site lands in docs/_build/html.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/_build docs/_generated
python -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "docs: built docs/_build/html"
