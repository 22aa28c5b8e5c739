"""docs/errors.md as data: the tests take each case's message and exit status from the table,
so the table cannot drift from what the CLI does.

A row: | ID | command | case | message | exit |. In the message, ``<...>`` stands for text that
varies (a temporary path, a library's detail); everything else must match exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
# Lines that are not ours: TensorFlow's C++ start-up notes and rich progress bars.
NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on", "━")


@dataclass(frozen=True)
class Row:
    id: str
    command: str
    case: str
    message: str
    exit: int

    def pattern(self) -> re.Pattern:
        parts = re.split(r"<[^>]*>", self.message)
        return re.compile(".+?".join(re.escape(part) for part in parts))


def rows() -> dict[str, Row]:
    table = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"`[a-z0-9-]+`", cells[0]):
            continue
        ident = cells[0].strip("`")
        assert ident not in table, f"docs/errors.md lists {ident} twice"
        table[ident] = Row(ident, cells[1], cells[2], cells[3].strip("`"), int(cells[4]))
    return table


def our_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not any(n in line for n in NOISE)]


def check(case_id: str, code, stderr: str, *named) -> str:
    """Assert the documented exit status and one-line message; return the line.

    ``named``: what the line must name (the file or option at fault).
    """
    row = rows()[case_id]
    assert "Traceback" not in stderr, stderr
    lines = our_lines(stderr)
    assert code == row.exit, (case_id, code, stderr)
    assert len(lines) == 1, (case_id, stderr)
    assert row.pattern().fullmatch(lines[0]), f"{case_id}:\n  documented: {row.message}\n  printed:    {lines[0]}"
    for name in named:
        assert str(name) in lines[0], (case_id, name, lines[0])
    return lines[0]
