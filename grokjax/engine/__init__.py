"""The device side: a grid in (`spec.Task`, `spec.Runs`), curves out (`spec.SweepResult`).

  spec         the grid: Task (static, one program), Runs (one row per run), SweepResult
  optim        the optax transforms: AdamW on the matrices, the norm clamp, the kick
  program      the pure per-run program (init, step, evaluate) and its compiled chunks
  reduce       grok times from curves
  runtime      devices, the compile cache, several processes
  checkpoints  the host loop's state on disk
  train        the host loop: retire runs as they grok, rebalance, checkpoint
No results folder and no printing beyond a progress bar.
"""
