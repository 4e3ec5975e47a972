"""A Griffe extension of the docs site: reStructuredText roles in docstrings as Markdown code.

The docstrings name other objects as Sphinx does (``:class:`~agents.task.TaskConfig```), which
Markdown would show as it is; mkdocstrings loads this file (``extensions`` in ``mkdocs.yml``)
and every role becomes inline code of the name shown: ``TaskConfig`` for ``~a.b.TaskConfig``,
the title of ``title <target>``.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:py:)?[a-z]+:`([^`]+)`")


def _shown(match: re.Match[str]) -> str:
    text = match.group(1)
    titled = re.fullmatch(r"(.*?)\s*<[^>]*>", text, flags=re.S)
    if titled:
        text = titled.group(1)
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


class RstRoles(Extension):
    """Rewrite each docstring's roles once the object tree is built."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        """Replace the roles of ``obj``'s docstring."""
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_shown, obj.docstring.value)
