"""Can this process open a window? Answered before any GUI call, because Qt aborts the whole
process (no exception to catch) when it cannot reach a display."""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

_X_DISPLAY = re.compile(r"^(?P<host>[^:]*):(?P<number>\d+)(\.\d+)?$")
HOW_TO_GET_ONE = "run it on a desktop session, with `ssh -X`, or under a virtual display: xvfb-run -a facetracker ..."


def display_problem(env: Mapping[str, str] | None = None, wayland_ok: bool = True) -> str | None:
    """None when a window can be shown, otherwise a short reason.

    `wayland_ok=False` for OpenCV windows: the opencv-python wheel ships only Qt's X11 (xcb) plugin,
    so it needs DISPLAY (XWayland) even on a Wayland desktop."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None  # Windows and macOS always have a window server for a desktop user
    x_display = env.get("DISPLAY", "")
    if x_display:
        return None if _x_server_answers(x_display) else f"no X server answers on DISPLAY={x_display}"
    wayland = env.get("WAYLAND_DISPLAY", "")
    if wayland and wayland_ok:
        return None if _wayland_socket(wayland, env).exists() else f"no Wayland socket for WAYLAND_DISPLAY={wayland}"
    if wayland:
        return f"only Wayland is available (WAYLAND_DISPLAY={wayland}) and OpenCV windows need X11 (DISPLAY)"
    return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def _x_server_answers(x_display: str) -> bool:
    match = _X_DISPLAY.match(x_display)
    if not match:
        return False
    host, number = match["host"], int(match["number"])
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        # Linux X servers also listen on the abstract socket of the same name (works inside sandboxes).
        return any(_connects(socket.AF_UNIX, address) for address in (path, "\0" + path))
    return _connects(socket.AF_INET, (host, 6000 + number))  # `ssh -X` forwarding: localhost:10.0


def _connects(family: int, address) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
        return True
    except OSError:
        return False


def _wayland_socket(name: str, env: Mapping[str, str]) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(env.get("XDG_RUNTIME_DIR", "/run/user/%d" % os.getuid())) / name
