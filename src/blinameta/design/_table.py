"""Plain-text tables (Markdown pipe tables) that paste into a protocol."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table", "runs", "check_probability", "check_n"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown pipe table with columns padded to equal width."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def runs(looks: Sequence[int], cells: Sequence[object]) -> list[tuple[str, object]]:
    """Consecutive looks with equal cells merged: ``[("4-5", cell), ("6", other), ...]``."""
    out: list[tuple[str, object]] = []
    start = None
    for i, (n, cell) in enumerate(zip(looks, cells)):
        start = n if start is None else start
        if i + 1 == len(cells) or cells[i + 1] != cell:
            out.append((str(start) if start == n else f"{start}-{n}", cell))
            start = None
    return out


def check_probability(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` strictly inside ``(low, high)``, else a user error naming the valid range."""
    from blinameta.errors import UserError

    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number in ({low:g}, {high:g}) (got {value!r})") from None
    if not low < value < high:
        raise UserError(f"{name} must be in ({low:g}, {high:g}) (got {value:g})")
    return value


def check_n(name: str, value: int, low: int = 1) -> int:
    """An integer at least ``low``, else a user error naming the valid range."""
    from blinameta.errors import UserError

    if isinstance(value, bool) or int(value) != value or value < low:
        raise UserError(f"{name} must be a whole number >= {low} (got {value})")
    return int(value)
