"""Text that reaches terminals, figures and XML: which characters are refused, and safe echoes.

Control characters (C0 but tab and newline, DEL, C1), Unicode bidirectional controls (the
"Trojan Source" characters, CVE-2021-42574), lone surrogates and the non-characters U+FFFE and
U+FFFF are refused in every string read from evidence, models and CSV files: they are invalid in
XML (so an SVG holding one no longer opens), they can rewrite a terminal (ANSI escapes), and bidi
controls make text display differently from what it is. :func:`printable` escapes them when a
value must be echoed in a message.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["unsafe_character", "printable", "terminal_safe", "UNSAFE"]

#: Characters refused in text read from files (see the module docstring).
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)

#: Characters escaped when a value is echoed on one line: the refused ones, tab and newline.
_ECHO = re.compile(UNSAFE.pattern[:-1] + "\t\n]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def _describe(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        kind = "lone surrogate"
    elif unicodedata.category(char) == "Cf":
        kind = f"bidirectional control {unicodedata.name(char, '')}".rstrip()
    elif code in (0xFFFE, 0xFFFF):
        kind = "non-character"
    else:
        kind = "control character"
    return f"U+{code:04X} ({kind})"


def unsafe_character(text: str) -> str | None:
    """A description of the first refused character in ``text`` and its position, or ``None``."""
    match = UNSAFE.search(text)
    if match is None:
        return None
    return f"{_describe(match.group())} at character {match.start() + 1}"


def printable(value: object, limit: int = 80) -> str:
    """``repr``-like quoting of ``value`` with every refused character escaped, shortened to ``limit``."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    escaped = _ECHO.sub(_escape, text.replace("\\", "\\\\"))
    return "'" + escaped.replace("'", "\\'") + "'"


def terminal_safe(text: str) -> str:
    """``text`` with every refused character escaped (lines and tabs kept): for messages that
    may quote what a user typed (an option value, a file name) before they reach a terminal."""
    return UNSAFE.sub(_escape, text)
