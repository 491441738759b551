"""Machinery a project rarely edits: how the lifecycle runs, not what it decides.

- ``run_step``: the command of every DVC stage; runs a step's notebook with papermill.
- ``warm_kernels``: kernels (and step processes) forked from a server that imported the stack once.
- ``report``: the executed notebooks as one HTML report (``make report``).
- ``readiness``: the ML Test Score from this run's evidence (``make readiness``).

The lifecycle code you adapt lives one level up, in the package's other modules.
Template updates (``cruft update``) keep these files current; edit them only to change
how steps run.
"""

from __future__ import annotations


def skip_iri_format_checker() -> None:
    """Keep jsonschema from building its IRI checker when nbformat imports it.

    JupyterLab installs ``rfc3987-syntax``; when it is importable, ``import jsonschema``
    compiles dozens of Lark grammars for the ``iri`` format (about 3 s per process).
    Notebook validation never checks that format, so the commands that run or render
    notebooks (one process per step) block the module before importing nbformat; jsonschema
    then leaves the ``iri`` format unchecked. Kernels and Jupyter servers are unaffected.
    """
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
