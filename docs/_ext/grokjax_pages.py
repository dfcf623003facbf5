"""The documentation pages grokjax generates at build time, from the code that owns them:
the experiments (each one's presets and flags, from its registry record and parser) and
the runs.csv columns (from `grokjax.harness.io.RUNS_COLUMNS`). Imported by conf.py as a
Sphinx extension; `experiments_page` and `runs_columns_page` need no Sphinx (tested)."""

from __future__ import annotations

import os

GENERATED = "_generated"  # under the docs source folder; not tracked


def _cell(text) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def _value(v) -> str:
  if isinstance(v, dict):
    return ", ".join(f"{k}: {_value(x)}" for k, x in v.items())
  if isinstance(v, (list, tuple)):
    return ", ".join(_value(x) for x in v) if v else "none"
  return f"{v:g}" if isinstance(v, float) else str(v)


def experiments_page() -> str:
  """One section per registered experiment: its docstring, its command, what each preset
  sets beyond the shared base, and every flag with its help."""
  from grokjax import cli
  from grokjax.harness import config
  from grokjax.experiments import registry
  bases = {"paper": config.PAPER, "quick": config.QUICK, "smoke": config.SMOKE}
  out = ["# The experiments", "",
         "Generated from each experiment's registry record (`grokjax.experiments.registry`) and "
         "its command-line parser when the documentation is built. Every experiment writes a "
         "results folder (see {doc}`/results`); `python experiments/NAME.py --help` prints "
         "the same flags.", ""]
  for name in registry.names():
    exp = registry.get(name)
    out += [f"## {name}", "", exp.doc.strip(), "",
            f"```bash\npython experiments/{name}.py --preset smoke\n```", "",
            f"Its summary file: `{exp.output}`.", "", "### Presets", "",
            "| preset | sets (beyond the shared base) |", "|---|---|"]
    for preset, values in exp.presets.items():
      base = bases.get(preset, {})
      own = {k: v for k, v in values.items() if base.get(k, object()) != v}
      out.append(f"| {preset} | {_cell(_value(own)) or '(the shared base)'} |")
    out += ["", "### Flags", "", "| flag | what it does |", "|---|---|"]
    for action in cli.build_parser(name)._actions:
      if not action.option_strings or action.help is None:
        continue
      flag = ", ".join(f"`{o}`" for o in action.option_strings)
      out.append(f"| {flag} | {_cell(action.help)} |")
    out.append("")
  return "\n".join(out)


def runs_columns_page() -> str:
  """The runs.csv columns, from the one schema the reader uses."""
  from grokjax.harness.io import RUNS_COLUMNS
  out = ["| column | type | meaning |", "|---|---|---|"]
  out += [f"| `{k}` | {t} | {_cell(d)} |" for k, (t, d) in RUNS_COLUMNS.items()]
  return "\n".join(out) + "\n"


def write(srcdir: str) -> list[str]:
  folder = os.path.join(srcdir, GENERATED)
  os.makedirs(folder, exist_ok=True)
  paths = []
  for name, text in (("experiments.md", experiments_page()),
                     ("runs_columns.md", runs_columns_page())):
    path = os.path.join(folder, name)
    old = open(path).read() if os.path.exists(path) else None
    if old != text:  # unchanged pages keep their time stamp: no needless rebuild
      with open(path, "w") as f:
        f.write(text)
    paths.append(path)
  return paths


def setup(app):
  app.connect("builder-inited", lambda app: write(app.srcdir))
  return {"parallel_read_safe": True, "version": "1"}


# The objects of jax, optax and flax these pages link to, with their pages on those projects'
# sites: an inventory per project that intersphinx reads before the network (builds are the
# same offline, in CI and on a laptop). (name, role, page#anchor or page)
INVENTORIES = {
    "jax": [("jax.jit", "function", "_autosummary/jax.jit.html"),
            ("jax.vmap", "function", "_autosummary/jax.vmap.html"),
            ("jax.lax.scan", "function", "_autosummary/jax.lax.scan.html"),
            ("jax.sharding.NamedSharding", "class", "jax.sharding.html#jax.sharding.NamedSharding"),
            ("jax.distributed.initialize", "function",
             "_autosummary/jax.distributed.initialize.html")],
    "optax": [("optax.GradientTransformation", "class",
               "api/transformations.html#optax.GradientTransformation"),
              ("optax.chain", "function", "api/combining_optimizers.html#optax.chain"),
              ("optax.adamw", "function", "api/optimizers.html#optax.adamw"),
              ("optax.projections.projection_l2_sphere", "function",
               "api/projections.html#optax.projections.projection_l2_sphere")],
    "flax": [("flax.nnx.Module", "class", "api_reference/flax.nnx/module.html#flax.nnx.Module")],
}


def write_inventories(folder: str) -> dict[str, str]:
  """One Sphinx objects.inv (version 2) per project of INVENTORIES, under `folder`."""
  import zlib
  os.makedirs(folder, exist_ok=True)
  paths = {}
  for project, objects in INVENTORIES.items():
    body = "".join(f"{name} py:{role} 1 {uri} -\n" for name, role, uri in objects)
    head = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
            "# The remainder of this file is compressed using zlib.\n")
    paths[project] = os.path.join(folder, f"{project}.inv")
    with open(paths[project], "wb") as f:
      f.write(head.encode() + zlib.compress(body.encode()))
  return paths
