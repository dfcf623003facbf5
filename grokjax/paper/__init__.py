"""The paper, reproduced: every claim's experiment at the paper preset, then one table.

`experiments/reproduce.py` trains (or loads, or resumes) each claim's results folder,
copies its small outputs to `docs/results/<name>/`, and compares every paper number with
ours. The table is always recomputed from the runs.csv files, never from a stored fit, so
a change to the statistics changes the table without re-training.

Verdicts (`grokjax.analysis.compare`), per row with a number on both sides, and the ratio
ours / paper with our CI divided by the paper's number:
  CIs overlap / differs                  the paper's 95 % CI against ours (interval);
  consistent (point) / differs (point)   a paper number alone, counted as the values that
                                         round to it (0.994 as [0.9935, 0.9945]), against
                                         our CI: the weakest check, the paper's scatter
                                         unknown.
With `--reference DIR` (the authors' per-seed data) every cell both sides ran is also
compared sample against sample (`like_for_like`): the ratio of medians with a bootstrap CI
and a rank test, read "agrees" inside a 10 % equivalence margin, "differs" when the test
rejects outside it, else "inconclusive".
Qualitative claims ("saturates", "slows rather than prevents") read `agrees` or
`differs`, and a row without a paper number (new ground) reads `new`.
Our CIs are 95 % percentile bootstraps over seeds (a seed brings its runs in every cell).

The modules, each importing only those above it in this list:
  numbers     what the paper reports (the other column of the table; never fitted to)
  reference   the authors' per-seed data, read from a checkout the user supplies
  claims      the catalogue: each claim's results folders (`Part`) and their flags
  table       a finished folder (`Folder`), the statistics of its rows, a row and its verdict
  mlp_claims  the rows of the MLP claims; attention: the attention-model claim's rows;
  prediction  the user's moduli, predicted from the moduli scan before training
  report      the whole table, as text or as docs/reproduction.md
  runner      training what the results lack
"""
