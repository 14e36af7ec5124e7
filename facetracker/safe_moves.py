"""Moving image + label pairs so that no file is ever lost and a pair is never torn apart.

Why a journal AND a deferred Ctrl-C (the two failure modes need different answers):
- Ctrl-C: SIGINT is held back while one pair moves, so the pair finishes and the run stops between pairs.
  Every pair is then either wholly in its old place or wholly in its new one, right away.
- A hard stop (kill -9, power cut, full disk) can still land between the image and its label. Before the
  first move the whole plan is written to a journal; the next run replays it (a move whose source is gone
  and destination present is done, otherwise it is redone), so the split finishes exactly as planned instead
  of leaving an image without its label, which would silently turn a face into a negative.
Moves within one file system are renames (atomic, no copy). Across file systems a file is copied to a
temporary name beside the destination, renamed into place, and only then is the source deleted.
The Ctrl-C latches here also serve augment (publishing its output) and train (CtrlCWatch).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from facetracker.errors import FacetrackerError
from facetracker.files import atomic_path, write_json_atomic

JOURNAL_NAME = ".split-journal.json"


@dataclass(frozen=True)
class PairMove:
    """Move an image and (when it has one) its label; paths are relative to the data folder."""

    image_src: str
    image_dst: str
    label_src: str | None = None
    label_dst: str | None = None

    def steps(self) -> list[tuple[str, str]]:
        steps = [(self.image_src, self.image_dst)]
        if self.label_src is not None and self.label_dst is not None:
            steps.append((self.label_src, self.label_dst))
        return steps


class InterruptLatch:
    """The SIGINT handler of the blocks below: remembers a Ctrl-C, for `raise_if_pending` at a safe point.
    raise_at_once: also raises it where it lands, as Python's own handler does."""

    def __init__(self, raise_at_once: bool = False):
        self.pending = False
        self.raise_at_once = raise_at_once

    def __call__(self, signum, frame):
        self.pending = True
        if self.raise_at_once:
            raise KeyboardInterrupt

    def raise_if_pending(self):
        if self.pending:
            raise KeyboardInterrupt


@contextmanager
def _latched(latch: InterruptLatch, only_in_place_of_default: bool) -> Iterator[InterruptLatch]:
    """`latch` handles SIGINT inside the block; the previous handler is put back after it. Signal handlers live in
    the main thread only; elsewhere the latch just never fires."""
    if threading.current_thread() is not threading.main_thread() or \
            (only_in_place_of_default and signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield latch
        return
    previous = signal.signal(signal.SIGINT, latch)
    try:
        yield latch
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def deferred_interrupt() -> Iterator[InterruptLatch]:
    """Hold back SIGINT inside the block; the caller checks `latch.raise_if_pending()` at safe points.

    A Ctrl-C that arrives during the block is raised when the block ends at the latest."""
    with _latched(InterruptLatch(), only_in_place_of_default=False) as latch:
        yield latch
    latch.raise_if_pending()


def watched_interrupt():
    """Ctrl-C raises KeyboardInterrupt at once, as usual, and is also remembered: `latch.raise_if_pending()` at the
    next safe point raises it again. Python raises it wherever the main thread is when the signal arrives; in a
    finalizer (a `__del__`, of which saving a model and TensorFlow run many) it is printed as "Exception ignored"
    and lost, and the program goes on as if nothing happened (train.CtrlCWatch checks at every batch).

    Only in place of Python's own handler: a process started with Ctrl-C ignored (nohup, a background job) or with
    a handler of its own keeps it."""
    return _latched(InterruptLatch(raise_at_once=True), only_in_place_of_default=True)


def move_file(src: Path, dst: Path) -> None:
    """Rename src to dst (refusing to overwrite); copy + rename + delete across file systems."""
    if dst.exists():
        raise FacetrackerError("a file is already at the destination", dst, "move or rename it, then run again")
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise FacetrackerError(f"cannot move file ({exc.strerror})", src, "check the folder permissions") from None
        with atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)
        src.unlink()


def move_pair(root: Path, move: PairMove) -> None:
    """Move the image, then its label; if the label cannot move, put the image back so the pair stays together."""
    done: list[tuple[Path, Path]] = []
    try:
        for src, dst in move.steps():
            move_file(root / src, root / dst)
            done.append((root / src, root / dst))
    except FacetrackerError:
        for src, dst in reversed(done):
            os.rename(dst, src)
        raise


def run_moves(root: Path, moves: list[PairMove], on_done: Callable[[], None] | None = None) -> None:
    """Journal the plan, move every pair with Ctrl-C held back per pair, then drop the journal."""
    journal = root / JOURNAL_NAME
    write_json_atomic(journal, {"moves": [m.__dict__ for m in moves]})
    with deferred_interrupt() as latch:
        for move in moves:
            move_pair(root, move)
            if on_done:
                on_done()
            latch.raise_if_pending()
    journal.unlink()


def pending_journal(root: Path) -> Path | None:
    journal = Path(root) / JOURNAL_NAME
    return journal if journal.exists() else None


def replay_journal(root: Path) -> tuple[int, list[str]]:
    """Finish the moves of an interrupted run. Returns (pairs moved now, warnings)."""
    journal = Path(root) / JOURNAL_NAME
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("moves"), list):
        raise FacetrackerError("unreadable journal of an interrupted split", journal,
                               "check that every image in data/*/images has its label, then delete the journal")
    moves = [PairMove(**m) for m in data["moves"]]
    moved, warnings = 0, []
    with deferred_interrupt() as latch:
        for move in moves:
            steps = [(root / s, root / d) for s, d in move.steps()]
            todo = [(s, d) for s, d in steps if s.exists() and not d.exists()]
            warnings.extend(f"file missing, neither at {s} nor at {d}" for s, d in steps
                            if not s.exists() and not d.exists())
            conflicts = [d for s, d in steps if s.exists() and d.exists()]
            if conflicts:
                raise FacetrackerError("interrupted split left a file in both places", conflicts[0],
                                       "keep the right copy, delete the other, then run split again")
            for src, dst in todo:
                move_file(src, dst)
            moved += bool(todo)
            latch.raise_if_pending()
    journal.unlink()
    return moved, warnings
