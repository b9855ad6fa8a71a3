"""Human output never carries the terminal's control sequences from data.

Ids, properties and reasons come from upstream systems; printed raw, an id
holding ``ESC [ 2 J`` clears the operator's screen, and OSC sequences can set
the window title or plant hyperlinks. Every string the CLI's consoles render
goes through ``printable``; JSON output needs none of this (JSON escapes
control characters itself).
"""

from __future__ import annotations

import unicodedata
from typing import Any, Final

from rich.console import Console
from rich.text import Text

_SAFE: Final = frozenset("\n\t")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1; newline and tab
    kept) and bidi/format character shown as a visible escape."""
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if ch not in _SAFE and unicodedata.category(ch) in ("Cc", "Cf") else ch
        for ch in text
    )


class SafeConsole(Console):
    """A rich Console whose rendered strings (plain prints, table cells,
    titles) are made printable first."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable(text), **kwargs)
