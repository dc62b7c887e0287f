"""What the tests that run a whole DAG (``dag.test()`` in a child process, as ``make demo`` runs DAGs) share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def dag_file_loader(name: str) -> str:
    """Source for ``python -c``: load ``dags/<name>.py`` (its path is ``sys.argv[1]``) as ``module``, the way
    the DAG processor imports a DAG file (by path, not as a package); ``json``, ``sys`` imported."""
    return (
        "import importlib.util, json, sys\n"
        f'spec = importlib.util.spec_from_file_location("{name}_dagfile", sys.argv[1])\n'
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
    )


def dag_test_runner(name: str) -> str:
    """Source for ``python -c``: load ``dags/<name>.py`` (path in ``sys.argv[1]``), run its ``<name>_dag.test()``
    and print ``RESULT {"state": …, "tasks": {task id: state}}`` as the last line."""
    return dag_file_loader(name) + (
        f"run = module.{name}_dag.test()\n"
        'print("RESULT " + json.dumps({"state": str(run.state), '
        '"tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}))\n'
    )


def run_dag_test(name: str, env: dict[str, str], root: Path, timeout: float = 300) -> dict[str, Any]:
    """Run ``dags/<name>.py``'s ``dag.test()`` in a child process with ``env``; its ``RESULT`` (state, tasks),
    with the child's output in the assertion message when it failed or printed none."""
    done = subprocess.run([sys.executable, "-c", dag_test_runner(name), str(root / "dags" / f"{name}.py")], env=env,
                          cwd=root, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result
