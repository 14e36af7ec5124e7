"""Plain one-line messages on a rich console."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

MAX_WARNINGS = 20  # longer lists of warnings are cut, with a count of the rest


def say(console: Console, line: str) -> None:
    """Print one plain line: no markup (paths may hold [brackets]) and no wrapping (people and tools grep it)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def warn(console: Console, lines: list[str]) -> None:
    """One yellow `warning:` line each, at most MAX_WARNINGS of them, then how many more there were."""
    for line in lines[:MAX_WARNINGS]:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if len(lines) > MAX_WARNINGS:
        console.print(f"[yellow]warning:[/] ... and {len(lines) - MAX_WARNINGS} more")
