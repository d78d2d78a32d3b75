"""Sphinx configuration: the documentation site, built from the docstrings and the pages
in docs/ (``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html``)."""
project = "fastnn"
author = "fastnn developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "bench/*.md", "bench/summarize.py"]
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
autodoc_member_order = "bysource"
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]
html_theme = "alabaster"
