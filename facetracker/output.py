"""Plain one-line messages on a rich console."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

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


@contextmanager
def quiet_native_stderr():
    """Silence C++ chatter written straight to file descriptor 2 (TFLite's "INFO: Created TensorFlow Lite
    XNNPACK delegate", the converter's "fully_quantize: ..."), which TF_CPP_MIN_LOG_LEVEL does not reach.
    Failures still surface: the Python exceptions carry their own messages."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly():
    """Import TensorFlow and Keras with fd 2 silenced, and return tensorflow.

    TF 2.21 logs "oneDNN custom operations are on" through absl before TF_CPP_MIN_LOG_LEVEL applies
    (tensorflow/tensorflow#100442): four lines that would precede every command's one-line error."""
    if "keras" not in sys.modules:
        with quiet_native_stderr():
            import keras  # noqa: F401  (loads tensorflow too)
    import tensorflow

    return tensorflow
