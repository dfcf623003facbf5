"""Sphinx configuration of grokjax's documentation: `pip install -e ".[docs]"`, then
`sphinx-build -W -b html docs docs/_build/html` (tools/build_docs.sh does both checks)."""

import os
import sys

sys.path.insert(0, os.path.abspath("_ext"))
os.environ.setdefault("GROKJAX_CPU_DEVICES", "1")  # notebooks: one CPU device, as in Colab

project = "grokjax"
author = "the grokjax developers"
copyright = "2026, the grokjax developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "grokjax_pages",
]

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # every notebook runs at every build: none can rot
nb_execution_timeout = 600
nb_execution_raise_on_error = True

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
# reproduction_notes.md is part of reproduction.md (the report appends it)
exclude_patterns = ["_build", "results/**", "_ext", "**/.ipynb_checkpoints", "README.md",
                    "reproduction_notes.md", "jupyter_execute"]

# The objects these pages link to in jax, optax and flax, from inventories written here
# (grokjax_pages.INVENTORIES): the build is the same offline, in CI and anywhere else.
import grokjax_pages  # noqa: E402

_inv = grokjax_pages.write_inventories(os.path.join(os.path.dirname(__file__), "_generated", "inv"))
intersphinx_mapping = {
    "jax": ("https://docs.jax.dev/en/latest", _inv["jax"]),
    "optax": ("https://optax.readthedocs.io/en/latest", _inv["optax"]),
    "flax": ("https://flax.readthedocs.io/en/latest", _inv["flax"]),
}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True

html_theme = "sphinx_book_theme"
html_title = "grokjax"
html_theme_options = {
    "repository_url": "https://github.com/grokjax/grokjax",
    "use_repository_button": False,
    "show_toc_level": 2,
}
smartquotes = False  # "--flag" stays two hyphens
