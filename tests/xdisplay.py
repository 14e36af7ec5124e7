"""A real X server for GUI tests: Xvfb on a free display number, plus xdotool/xwininfo helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

TOOLS = ("Xvfb", "xdotool", "xwininfo")  # installed by `make test` (.ci/system-packages: xvfb, xdotool, x11-utils)


@contextmanager
def virtual_display(width: int = 1280, height: int = 800):
    """Start `Xvfb` on a display number it picks itself (-displayfd: no race with other tests); yield ":N"."""
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run .ci/system-packages as root "
                    "(or apt-get install xvfb x11-utils xdotool)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
                               "-nolisten", "tcp", "-noreset"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number:
            pytest.fail(f"Xvfb did not start (exit status {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def x_env(display: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env.update(DISPLAY=display, **extra)
    return env


def find_windows(display: str, pattern: str, by: str = "name") -> list[str]:
    """Ids of visible windows whose title (by="name", WM_NAME) or class (by="class") matches the regex.

    Qt dialogs set only _NET_WM_NAME, which xdotool's --name does not read: find those by class."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", f"--{by}", pattern], env=x_env(display),
                           capture_output=True, text=True)
    return found.stdout.split()


def wait_for_window(display: str, pattern: str, timeout: float = 30.0, process=None, by: str = "name",
                    other_than: tuple[str, ...] = ()) -> str:
    """The first visible window matching `pattern` (see find_windows) that is not in `other_than`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        windows = [w for w in find_windows(display, pattern, by) if w not in other_than]
        if windows:
            return windows[0]
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"process exited with {process.returncode} before its window appeared:\n{out}\n{err}")
        time.sleep(0.2)
    pytest.fail(f"no window with {by} {pattern!r} on {display} after {timeout} s:\n"
                + subprocess.run(["xwininfo", "-root", "-tree"], env=x_env(display), capture_output=True,
                                 text=True).stdout)


def window_title(display: str, window: str) -> str:
    return subprocess.run(["xdotool", "getwindowname", window], env=x_env(display), capture_output=True,
                          text=True, check=True).stdout.strip()


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env=x_env(display), check=True)


def grab(display: str):
    """The whole screen of `display` as an RGB uint8 array (Pillow's ImageGrab talks to the X server itself)."""
    import numpy as np
    from PIL import ImageGrab

    return np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))


def screenshot(display: str, path: Path) -> Path:
    """Save the whole screen as an image (for assertions, and for people debugging a failure)."""
    from PIL import Image

    Image.fromarray(grab(display)).save(path)
    return path


@contextmanager
def gui_command(args: list[str], display: str, home: Path | None = None, **popen):
    """Start `python -m facetracker ARGS` on the display (HOME in `home`, so labelme's files stay in tmp); yield the
    process, and kill it on the way out if a failed assertion left it running."""
    extra = {"HOME": str(home), "XDG_RUNTIME_DIR": str(home)} if home is not None else {}
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
    env = popen.pop("env", None) or x_env(display, **extra)
    process = subprocess.Popen([sys.executable, "-m", "facetracker", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def press_to_quit(display: str, window: str, process, key: str, timeout: float = 30.0) -> tuple[str, str]:
    """Focus the window, press `key` (q, ctrl+q) as the user would to quit, and wait for the process: (stdout,
    stderr)."""
    xdotool(display, "windowfocus", "--sync", window)
    xdotool(display, "key", key)
    return process.communicate(timeout=timeout)
