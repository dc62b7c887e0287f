"""Hub files for the tests: a SQLite hub migrated once per session, which each test copies."""

from __future__ import annotations

import shutil
from pathlib import Path

from bridge.hub import engine as hub_engine


def migrated_sqlite_hub(path: Path) -> Path:
    """``path``, a new SQLite hub upgraded to the head revision (its engine disposed: the file can be copied)."""
    url = f"sqlite:///{path}"
    hub_engine.upgrade(url)
    hub_engine.get_engine(url).dispose()
    return path


def hub_copy(template: Path, target: Path) -> str:
    """A copy of a migrated hub ``template`` at ``target`` (a hub of one test's own); its URL."""
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


class HubCopies:
    """Numbered copies of a migrated hub template in ``folder``: a hub of its own for each example a
    state machine plays."""

    def __init__(self, template: Path, folder: Path) -> None:
        self.template = template
        self.folder = folder
        self.made = 0

    def next_url(self) -> str:
        self.made += 1
        return hub_copy(self.template, self.folder / f"hub{self.made}.sqlite")
