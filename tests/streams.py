"""A real MJPEG-over-HTTP camera for tests: what IP cameras serve, from real JPEG files."""

from __future__ import annotations

import http.server
import itertools
import threading
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def mjpeg_camera(images: list[Path], fps: float = 30.0, frames: int | None = None, stall_after: int | None = None):
    """A real multipart MJPEG HTTP stream (what IP cameras serve) paced at `fps`.

    frames: the connection drops after that many (None: streams until the client leaves).
    stall_after: after that many frames, send nothing more but keep the connection open (a frozen camera)."""
    jpegs = [p.read_bytes() for p in images]
    done = threading.Event()
    sent = itertools.count()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for i in itertools.count():
                    if (frames is not None and i >= frames) or done.is_set():
                        return  # the connection drops, like a camera unplugged from the network
                    if stall_after is not None and i >= stall_after:
                        done.wait()
                        return
                    jpeg = jpegs[i % len(jpegs)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(jpeg), jpeg))
                    self.wfile.flush()
                    next(sent)
                    done.wait(1.0 / fps)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client stopped reading

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    finally:
        done.set()
        server.shutdown()
        server.server_close()
