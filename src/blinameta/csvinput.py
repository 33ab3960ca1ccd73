"""Read numeric columns from a user's CSV file, with errors that name the row and column.

Used by the commands that take a CSV (``pool``, ``bayes``). Row numbers are the file's line
numbers as a spreadsheet shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blinameta.errors import UserError
from blinameta.io import read_regular_file
from blinameta.text import printable, unsafe_character

__all__ = ["CsvTable", "read_csv", "check_effect_sizes", "neutralise_formulas", "MAX_ABS_EFFECT", "VARIANCE_RANGE"]

_MAX_BYTES = 50 * 1024 * 1024
#: A number as people type it: ASCII digits, an optional point and exponent. Not Python's wider
#: float() syntax ("1_0", "nan", "infinity", Arabic-Indic or full-width digits).
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
#: Largest |effect size| accepted on the analysis scale (log, logit): e^1000 is no ratio anyone reports.
MAX_ABS_EFFECT = 1e3
#: Sampling variances accepted; outside this range the weights overflow or underflow.
VARIANCE_RANGE = (1e-12, 1e12)


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
                f"{self.path}: no column {printable(column)}; the columns are: "
                f"{', '.join(printable(h) for h in self.header)}"
            ) from None

    def text(self, column: str) -> list[str]:
        """The column's cells as stripped text (for labels and categorical moderators)."""
        j = self._index(column)
        out = []
        for row, line in zip(self.rows, self.line_numbers):
            cell = row[j].strip() if j < len(row) else ""
            if cell == "":
                raise UserError(f"{self.path}: row {line}, column {column!r}: empty cell")
            problem = unsafe_character(cell)
            if problem is not None:
                raise UserError(f"{self.path}: row {line}, column {column!r}: {problem} is not allowed in text")
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
            if not _NUMBER.fullmatch(cell):
                raise UserError(f"{where}: {printable(cell)} is not a number (write ASCII digits, e.g. 12 or 0.5)")
            value = float(cell)
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
    try:
        raw = read_regular_file(path, _MAX_BYTES)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(text.splitlines())
    header: tuple[str, ...] | None = None
    rows: list[tuple[str, ...]] = []
    lines: list[int] = []
    try:
        numbered = list(enumerate(reader, start=1))
    except csv.Error as exc:  # e.g. a cell longer than csv.field_size_limit()
        raise UserError(f"{path}: row {reader.line_num}: {exc} ({csv.field_size_limit()} characters)") from None
    for line_number, row in numbered:
        if not row or all(cell.strip() == "" for cell in row):
            continue
        if header is None:
            header = tuple(cell.strip() for cell in row)
            for cell in header:
                if unsafe_character(cell):
                    raise UserError(f"{path}: row {line_number}: column name {printable(cell)}: "
                                    f"{unsafe_character(cell)} is not allowed")
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


def check_effect_sizes(table: CsvTable, yi_col: str, vi_col: str, yi: np.ndarray, vi: np.ndarray) -> None:
    """Refuse effect sizes and variances no meta-analysis can weigh (naming row and column).

    ``|yi| <= MAX_ABS_EFFECT`` and ``VARIANCE_RANGE[0] <= vi <= VARIANCE_RANGE[1]``; beyond these
    the inverse-variance weights overflow or cancel (1e-300 or 1e300 in the audit).
    """
    lo, hi = VARIANCE_RANGE
    bad = np.flatnonzero((np.abs(yi) > MAX_ABS_EFFECT) | ~((vi >= lo) & (vi <= hi)))
    for i in bad[:1]:
        if abs(yi[i]) > MAX_ABS_EFFECT:
            raise UserError(f"{table.path}: row {table.row_of(i)}, column {yi_col!r}: {yi[i]:g} is out of range; "
                            f"effect sizes are on the log or logit scale, |yi| <= {MAX_ABS_EFFECT:g}")
        if not lo <= vi[i] <= hi:
            raise UserError(f"{table.path}: row {table.row_of(i)}, column {vi_col!r}: variance {vi[i]:g} is out of "
                            f"range; sampling variances must lie between {lo:g} and {hi:g}")


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame):
    """A copy of the pandas ``frame`` in which no text cell can run as a spreadsheet formula.

    Every text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets
    a leading single quote, as the OWASP CSV-injection guidance recommends; numbers (also
    negative logits and log ratios in numeric columns) are written untouched.
    """
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype.kind != "O" and str(out[column].dtype) not in ("string", "str"):
            continue
        out[column] = out[column].map(
            lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v)
    return out
