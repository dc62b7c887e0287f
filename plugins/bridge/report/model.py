"""The shapes the marts hand to the renderers: tables with typed columns, sections, charts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

ColumnKind = Literal["text", "int", "cny", "pct", "share", "hours", "days", "minutes", "date", "datetime", "score"]


@dataclass(frozen=True)
class Column:
    key: str  # column of the frame
    label: str  # Chinese header
    kind: ColumnKind = "text"


@dataclass
class Table:
    """One table of the report: an HTML table and one XLSX sheet."""

    key: str  # stable English id (tests, XLSX sheet order)
    title: str  # Chinese title; also the sheet name (shortened)
    columns: list[Column]
    frame: pd.DataFrame
    note: str | None = None
    html_rows: int | None = None  # rows shown in the mail/HTML; the XLSX has them all

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip([c.key for c in self.columns], row, strict=True))
                for row in self.frame[[c.key for c in self.columns]].itertuples(index=False, name=None)]


@dataclass
class Chart:
    key: str
    title: str
    png: bytes
    alt: str


@dataclass
class Section:
    key: str
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    chart_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Marts:
    """All tables of one report, in display order, with the headline figures."""

    sections: list[Section]
    headline: dict[str, Any]
    series: dict[str, pd.DataFrame] = field(default_factory=dict)  # chart data not shown as a table

    def table(self, key: str) -> Table:
        for section in self.sections:
            for table in section.tables:
                if table.key == key:
                    return table
        raise KeyError(key)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables]
