"""One module per experiment, each ending in `EXPERIMENT = registry.Experiment(...)`; the
scripts in the top-level experiments/ run them (`cli.main(NAME)`)."""
