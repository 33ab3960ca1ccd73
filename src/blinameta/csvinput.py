"""Read numeric columns from a user's CSV file, with errors that name the row and column.

Used by the commands that take a CSV (``pool``, ``bayes``). Row numbers are the file's line
numbers as a spreadsheet shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blinameta.errors import UserError

__all__ = ["CsvTable", "read_csv"]

_MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class CsvTable:
    """The cells of a CSV file as text, with the header and where each row stood."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    line_numbers: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def _index(self, column: str) -> int:
        try:
            return self.header.index(column)
        except ValueError:
            raise UserError(
                f"{self.path}: no column {column!r}; the columns are: {', '.join(self.header)}"
            ) from None

    def text(self, column: str) -> list[str]:
        """The column's cells as stripped text (for labels and categorical moderators)."""
        j = self._index(column)
        out = []
        for row, line in zip(self.rows, self.line_numbers):
            cell = row[j].strip() if j < len(row) else ""
            if cell == "":
                raise UserError(f"{self.path}: row {line}, column {column!r}: empty cell")
            out.append(cell)
        return out

    def numeric(
        self,
        column: str,
        *,
        integer: bool = False,
        nonnegative: bool = False,
        positive: bool = False,
    ) -> np.ndarray:
        """The column as a float array; every cell must be a finite number."""
        j = self._index(column)
        values = np.empty(len(self.rows), dtype=float)
        for i, (row, line) in enumerate(zip(self.rows, self.line_numbers)):
            cell = row[j].strip() if j < len(row) else ""
            where = f"{self.path}: row {line}, column {column!r}"
            if cell == "":
                raise UserError(f"{where}: empty cell")
            try:
                value = float(cell)
            except ValueError:
                raise UserError(f"{where}: {cell!r} is not a number") from None
            if not math.isfinite(value):
                raise UserError(f"{where}: {cell!r} is not a finite number")
            if integer and value != int(value):
                raise UserError(f"{where}: {cell!r} is not a whole number")
            if nonnegative and value < 0:
                raise UserError(f"{where}: {cell!r} is negative")
            if positive and value <= 0:
                raise UserError(f"{where}: {cell!r} must be greater than 0")
            values[i] = value
        return values

    def row_of(self, index: int) -> int:
        """The file row (header = 1) of the data row at 0-based ``index``."""
        return self.line_numbers[index]


def read_csv(path: str | Path) -> CsvTable:
    """Read a comma-separated file with a header row; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.stat().st_size > _MAX_BYTES:
        raise UserError(f"{path}: file is larger than {_MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(text.splitlines())
    header: tuple[str, ...] | None = None
    rows: list[tuple[str, ...]] = []
    lines: list[int] = []
    for line_number, row in enumerate(reader, start=1):
        if not row or all(cell.strip() == "" for cell in row):
            continue
        if header is None:
            header = tuple(cell.strip() for cell in row)
            if len(set(header)) != len(header):
                raise UserError(f"{path}: row {line_number}: duplicate column names in header")
            continue
        if len(row) > len(header):
            raise UserError(
                f"{path}: row {line_number}: {len(row)} cells but the header has {len(header)}"
            )
        rows.append(tuple(row))
        lines.append(line_number)
    if header is None:
        raise UserError(f"{path}: the file is empty")
    if not rows:
        raise UserError(f"{path}: no data rows below the header")
    return CsvTable(path=path, header=header, rows=tuple(rows), line_numbers=tuple(lines))
