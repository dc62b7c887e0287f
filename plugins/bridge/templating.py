"""The one way the bridge's HTML pages are rendered: a strict Jinja environment over a template folder.

Strict undefined variables, so a template that names a value the view does not give fails in tests
rather than rendering an empty cell; escaping on, so a record's text never becomes markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jinja2


def template_environment(folder: Path, *, escape: Literal["all", "html"] = "all") -> jinja2.Environment:
    """A Jinja environment over ``folder``; callers add their own filters and globals.

    ``escape="html"`` escapes ``.html`` templates and strings only (pages that also render plain-text
    templates, e.g. a CSV or a mail body); ``"all"`` escapes every template.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=escape == "all"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
