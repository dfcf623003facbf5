"""The package's shape, as docs/architecture.md draws it: folders as layers, each importing
only the layers above it in LAYERS, no private name imported from another module, and no
module too long to read."""

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "grokjax")
LAYERS = ("problems", "engine", "analysis", "harness", "experiments", "paper", "cli", "__main__")


def _modules():
  for path in sorted(glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True)):
    rel = os.path.relpath(path, PACKAGE)
    if rel != "__init__.py":  # the public face imports from every layer
      yield rel, rel.split(os.sep)[0].removesuffix(".py"), ast.parse(open(path).read())


def _imports(tree):
  """(layer imported, name imported) of every grokjax import, at the top or in a function."""
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "grokjax":
      parts = node.module.split(".")
      for alias in node.names:
        yield (parts[1] if len(parts) > 1 else alias.name), alias.name
    elif isinstance(node, ast.Import):
      for alias in node.names:
        parts = alias.name.split(".")
        if parts[0] == "grokjax":
          yield (parts[1] if len(parts) > 1 else "__init__"), parts[-1]
    elif (isinstance(node, ast.Call) and node.args
          and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
      # importlib.import_module("grokjax.x.y") or f"grokjax.x.{name}": the literal prefix
      arg = node.args[0]
      head = arg.value if isinstance(arg, ast.Constant) else (
          arg.values[0].value if isinstance(arg, ast.JoinedStr) and arg.values
          and isinstance(arg.values[0], ast.Constant) else "")
      parts = str(head).split(".")
      if parts[0] == "grokjax" and len(parts) > 1 and parts[1]:
        yield parts[1], parts[-1] or "*"


def test_each_layer_imports_only_the_layers_above_it():
  assert sorted(LAYERS[:6]) == sorted(d for d in os.listdir(PACKAGE)
                                       if os.path.isfile(os.path.join(PACKAGE, d, "__init__.py")))
  upward = []
  for rel, layer, tree in _modules():
    for target, name in _imports(tree):
      if target == "__version__":
        continue  # the package's version, read when a results folder records it
      if target not in LAYERS or LAYERS.index(target) > LAYERS.index(layer):
        upward.append(f"{rel} imports {target}.{name}")
  assert not upward, upward


def test_the_tests_mirror_the_package_folders():
  folders = {d for d in os.listdir(os.path.join(ROOT, "tests"))
             if os.path.isdir(os.path.join(ROOT, "tests", d)) and not d.startswith((".", "_"))}
  assert folders <= set(LAYERS[:6]), folders - set(LAYERS[:6])
  top = [f for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith(".py")]
  assert sorted(top) == ["test_docs_pages.py", "test_layout.py", "test_readme.py"], top


def test_an_import_by_name_is_seen_as_an_import():
  tree = ast.parse("import importlib\n"
                   "importlib.import_module(f'grokjax.paper.{name}')\n"
                   "from importlib import import_module\n"
                   "import_module('grokjax.cli')\n")
  assert sorted(_imports(tree)) == [("cli", "cli"), ("paper", "*")]


def test_no_private_name_crosses_a_module_and_no_module_is_too_long():
  users = [(os.path.relpath(path, ROOT), ast.parse(open(path).read()))
           for folder in ("tests", "benchmarks", "tools")
           for path in sorted(glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True))]
  private = [f"{rel}: {name}" for rel, _, tree in _modules() for _, name in _imports(tree)
             if name.startswith("_") and not name.startswith("__")]
  private += [f"{rel}: {name}" for rel, tree in users for _, name in _imports(tree)
              if name.startswith("_") and not name.startswith("__")]
  assert not private, private
  long = {rel: n for rel, _, _ in _modules()
          if (n := len(open(os.path.join(PACKAGE, rel)).read().splitlines())) > 400}
  assert not long, long
