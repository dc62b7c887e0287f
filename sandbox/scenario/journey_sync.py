"""The demo's journey_sync run (issue 20): 客服部 and 人力资源部 drop their spreadsheets, the DAG stages them.

``before`` drops the two files of :func:`sandbox.scenario.journey.drop_files` in the import folder
(``<demo>/journey_import``, the default ``journey.import_dir`` under the demo's data folder); the DAG then
reads every journey source and the folder as it does every hour; ``after`` says what it staged per entity,
what it quarantined and where the files went — read from the hub and the folder the DAG wrote — then
:func:`sandbox.scenario.journey.story`: one customer's timeline from a campaign touch to the won deal and a
satisfaction answer (from the marts, as 管理层 sees it), and the people × satisfaction rows as 人力资源部 sees
them beside the groups an employee sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.scenario import journey


def before(sims: Any, demo_dir: Path) -> list[str]:
    folder = journey.drop_files(sims, demo_dir, journey._hub(demo_dir))
    names = "、".join(sorted(p.name for p in folder.iterdir() if p.is_file()))
    return [f"客服部、人力资源部把表格放进导入目录 {folder}：{names}"]


def after(sims: Any, demo_dir: Path) -> list[str]:
    """What the run staged, then one customer's journey and the people × satisfaction table (HR vs employee)."""
    return [*journey.report(demo_dir), *journey.story(demo_dir)]
