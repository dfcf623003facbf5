"""The results folder every experiment shares.

  config, flags     the resolved `Config`, the presets' shared bases, the flag types
  session           one results folder: config.json, resume, phases, the lock
  grids, estimate   the runs of a phase, the plan line and the memory check
  summaries         the statistics applied as a Config asks (W_c, delay-law fits)
  io, results       runs.csv and its manifest, `grokjax.load`
  plots             figures
"""
