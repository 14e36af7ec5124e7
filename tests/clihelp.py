"""Running the real Typer app in-process and checking the one-line error contract (shared by the test modules)."""

from __future__ import annotations

from typer.testing import CliRunner

from facetracker.cli import app


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(result, *words: str) -> None:
    """Exit code 2 and exactly one line, `error: ...`, holding every word; never a traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def table_row(output: str, what: str) -> int:
    """The count in the rich table row whose label starts with `what` (label --check's table)."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0].startswith(what):
            return int(cells[1])
    raise AssertionError(f"no row {what!r} in:\n{output}")
