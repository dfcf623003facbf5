"""One module per experiment, each ending in `EXPERIMENT = registry.Experiment(...)`, and
the table that finds them by name (`registry`: `get`, `names`, `register`, `resolve`); the
layers above (the CLI, the reproduction) read it, the harness below never does. The scripts in
the top-level experiments/ run them (`cli.main(NAME)`)."""
