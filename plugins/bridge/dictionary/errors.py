"""Configuration errors of the data dictionary and the permission policy.

A data owner edits ``include/*.yaml`` by hand; when the file is wrong, the
loader collects *every* problem (not only the first) and raises one error
whose lines each say the file, the line, the entity/role/field and what to
change. Messages are Chinese (data owners read them) with the YAML keys in
plain identifiers so they can be searched in the file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong in a configuration file."""

    file: str
    line: int | None
    message: str
    entity: str | None = None
    field: str | None = None
    role: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = []
        if self.role:
            parts.append(f"角色 {self.role}")
        if self.entity:
            parts.append(f"实体 {self.entity}")
        if self.field:
            parts.append(f"字段 {self.field}")
        scope = (" " + " ".join(parts)) if parts else ""
        return f"{where}{scope}: {self.message}"


class ConfigError(ValueError):
    """A configuration file that cannot be used; ``issues`` lists every problem found."""

    kind = "配置文件"

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        head = f"{self.kind}有 {len(self.issues)} 处错误，请逐条修正后重新运行 `bridge dictionary check`:"
        super().__init__("\n".join([head, *("  - " + str(i) for i in self.issues)]))


class DictionaryError(ConfigError):
    """``include/dictionary.yaml`` is invalid."""

    kind = "数据字典"


class PolicyError(ConfigError):
    """``include/permissions.yaml`` is invalid, or a role/entity/field unknown to it was asked for."""

    kind = "权限策略"
