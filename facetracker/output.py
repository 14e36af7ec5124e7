"""Plain one-line messages on a rich console."""

from __future__ import annotations

from rich.console import Console


def say(console: Console, line: str) -> None:
    """Print one plain line: no markup (paths may hold [brackets]) and no wrapping (people and tools grep it)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)
