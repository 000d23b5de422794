"""What is wrong with the data and where: :class:`Problem` (file, row, column, message),
:class:`DataError` (the data stage's error a user can fix), and :class:`Dropped` (the rows removed
for one reason, counted in the data report with a few examples).

Rows are numbered as a spreadsheet shows them (the header is row 1); for JSONL the line, for
Parquet and Hugging Face data sets the record number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import SttuneError

MAX_LISTED_PROBLEMS = 10
EXAMPLES_PER_REASON = 3


@dataclass
class Problem:
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class DataError(SttuneError, ValueError):
    """The data cannot be used as it is; ``problems`` lists what is wrong and where."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(file="data", row=None, column=None, message=problems)]
        self.problems = problems
        lines = [str(p) for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        super().__init__("\n".join(lines))


@dataclass
class Dropped:
    """Rows removed from one split for one reason, with a few examples for the report."""

    split: str
    reason: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, example: dict[str, Any]) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_PER_REASON:
            self.examples.append(example)
