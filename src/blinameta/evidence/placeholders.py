"""Placeholder texts of the ``blinameta new`` template, which a filled-in file must not keep.

``blinameta new ID`` writes a template whose example values are valid YAML of the right types, so
that the file loads; :func:`placeholder_fields` finds the values a curator has not replaced yet so
that ``validate`` fails with a message naming each field, until every placeholder is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["PLACEHOLDERS", "placeholder_fields"]

#: Texts of the template (templates/publication.yaml) that mark a value still to be filled in.
PLACEHOLDERS: tuple[str, ...] = (
    "Surname AB",
    "Title of the publication",
    "Journal name",
    "10.0000/example",
    "Who was treated: age range, disease status, inclusion period, centres.",
    "Results, first paragraph",
    "10 patients were treated",
    "Results, Table 2",
    "5 (50%) achieved CR",
    "REPLACE ME",
)


def placeholder_fields(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Yield ``(field path, placeholder)`` for every string that still holds a template text."""
    if isinstance(value, str):
        for text in PLACEHOLDERS:
            if text in value:
                yield loc, text
                return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from placeholder_fields(item, (*loc, key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from placeholder_fields(item, (*loc, i))
