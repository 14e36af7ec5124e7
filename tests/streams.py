"""Test sources: a real MJPEG-over-HTTP camera (what IP cameras serve, from real JPEG files), and real videos of two
real people composed from the shared data sets, with their true boxes and a detector that replays detections."""

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


# ---------------------------------------------------------------- two real people composed into a video

PEOPLE = ("webcam-d", "webcam-e")  # a bearded man and a woman with a headset, from two different shared sets
BACKGROUND = "webcam-s"  # its face-free frames: an empty room with a chair


def background_frame(datasets_dir: Path, name: str = BACKGROUND, size: tuple[int, int] = (640, 480)):
    """The first face-free image of a shared set, resized to `size`."""
    import cv2

    from facetracker.labels import scan

    found = scan(datasets_dir / name / "images", datasets_dir / name / "labels")
    negative = next(s for s in found.samples if not s.has_face)
    return cv2.resize(cv2.imread(str(negative.image)), size, interpolation=cv2.INTER_AREA)


def two_people_clip(datasets_dir: Path, path: Path, frames: int = 240, size: tuple[int, int] = (640, 480),
                    absence: float = 0.2, fps: float = 30.0, people: tuple[str, str] = PEOPLE):
    """A real video (MJPG .avi) of two real people's faces, cut from their labelled photos, crossing over a real room
    (facetracker.demo.crossing_routes: they cross, then the second leaves and comes back after `absence` of the
    clip). Returns the true faces of every frame."""
    from facetracker.demo import compose_clip, crossing_routes, sprites_from_labelme

    sprites = [sprites_from_labelme(datasets_dir / name) for name in people]
    return compose_clip(path, background_frame(datasets_dir, size=size), sprites, crossing_routes(size, absence),
                        frames, fps)


class TruthDetector:
    """A detector that "finds" precomputed detections, one list per real frame in order (e.g. the composed ground
    truth plus noise: facetracker.demo.detections_from_truth). The live loop's warm-up frames (all black) get none."""

    runtime_name = "truth"

    def __init__(self, per_frame):
        self.per_frame, self.calls = list(per_frame), 0

    def detect(self, frame):
        from facetracker.inference import Detection

        if not frame.any():
            return []
        found = self.per_frame[self.calls] if self.calls < len(self.per_frame) else []
        self.calls += 1
        return [Detection(score, box) for score, box in found]


def ids_by_person(truth, tracks_per_frame, min_visible: float = 0.5, min_iou: float = 0.5) -> dict[int, list]:
    """For each composed person, the id of the track on its face in every frame (Hungarian matching at IoU >=
    min_iou), None when no track is on it, "hidden" when less than `min_visible` of it shows."""
    from scipy.optimize import linear_sum_assignment

    from facetracker.boxes import iou_matrix

    out: dict[int, list] = {}
    for faces, tracks in zip(truth, tracks_per_frame):
        for face in faces:
            out.setdefault(face.person, [])
        shown = [f for f in faces if f.visible >= min_visible]
        for face in faces:
            if face.visible < min_visible:
                out[face.person].append("hidden")
        if not shown:
            continue
        overlap = iou_matrix([f.box for f in shown], [t.box for t in tracks])
        ids = {f.person: None for f in shown}
        if tracks:
            for r, c in zip(*linear_sum_assignment(-overlap)):
                if overlap[r, c] >= min_iou:
                    ids[shown[r].person] = tracks[c].id
        for face in shown:
            out[face.person].append(ids[face.person])
    return out


def iou(a, b) -> float:
    """IoU of two [x1, y1, x2, y2] boxes (facetracker.boxes.box_iou, checked by hand in tests/test_evaluate.py)."""
    from facetracker.boxes import box_iou

    return float(box_iou([a], [b])[0])
