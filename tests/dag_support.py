"""What the tests that run a whole DAG (``dag.test()`` in a child process, as ``make demo`` runs DAGs) share."""

from __future__ import annotations


def dag_file_loader(name: str) -> str:
    """Source for ``python -c``: load ``dags/<name>.py`` (its path is ``sys.argv[1]``) as ``module``, the way
    the DAG processor imports a DAG file (by path, not as a package); ``json``, ``sys`` imported."""
    return (
        "import importlib.util, json, sys\n"
        f'spec = importlib.util.spec_from_file_location("{name}_dagfile", sys.argv[1])\n'
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
    )
