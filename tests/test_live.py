"""`facetracker live` end to end with the real bundled FaceTracker model: real video files written from the real
data sets, a real MJPEG HTTP stream paced like a camera, a camera index that does not exist, Ctrl-C in a real
subprocess, and a real window under Xvfb."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker.cli import app
from facetracker.errors import FacetrackerError
from facetracker.haar import HaarDetector
from facetracker.inference import Detector
from facetracker.labels import scan
from facetracker.live import STATUS_REFRESH_SECONDS, LiveStats, _Loop, run_live
from facetracker.recording import count_video_frames
from streams import mjpeg_camera
from xdisplay import virtual_display, wait_for_window, x_env, xdotool

runner = CliRunner()


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The model bundled in the package, through the compiled runtime that `live` uses."""
    return Detector.load(None)


def read_all(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            capture.release()
            return frames
        frames.append(frame)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def no_temp_files(folder: Path) -> bool:
    return not list(folder.glob(".*.tmp*"))


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def outline_difference(recorded: np.ndarray, source: np.ndarray, box) -> tuple[float, float]:
    """Mean pixel change on the outline of `box` and on a same-shaped outline 8 px inside it (nothing drawn)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    change = np.abs(recorded.astype(np.int16) - source.astype(np.int16)).mean(axis=2)
    on, inside = np.zeros(change.shape, np.uint8), np.zeros(change.shape, np.uint8)
    cv2.rectangle(on, (x1, y1), (x2, y2), 1, 2)
    cv2.rectangle(inside, (x1 + 8, y1 + 8), (x2 - 8, y2 - 8), 1, 2)
    return float(change[on > 0].mean()), float(change[inside > 0].mean())


def webcam_images(datasets_dir: Path, name: str = "webcam-a", count: int = 10) -> list[Path]:
    return sorted((datasets_dir / name / "images").glob("*.jpg"))[:count]


def live_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "facetracker", "live", *args]


# ---------------------------------------------------------------- a video file, headless, recorded


def test_video_file_is_tracked_and_recorded_playable_with_the_box_on_the_face(detector, video_of, datasets_dir,
                                                                              tmp_path):
    video = video_of("webcam-a", frames=24)
    out = tmp_path / "out.mp4"

    stats = run_live(video, detector=detector, record=out, show=False, max_frames=20, keep_tracks=True)

    assert (stats.frames, stats.stop_reason, stats.dropped) == (20, "max frames", 0)
    assert stats.indices == list(range(20)), "a file is processed frame by frame, in order"
    assert stats.record == str(out) and stats.recorded_frames == 20
    assert count_video_frames(out) == 20 and no_temp_files(tmp_path)
    assert stats.fps > 0 and 0 < stats.latency_p50_ms <= stats.latency_p95_ms

    # The tracked boxes are where the labelme boxes are ...
    labels = {s.image.stem: s.box for s in scan(datasets_dir / "webcam-a" / "images",
                                                  datasets_dir / "webcam-a" / "labels").samples}
    stems = [p.stem for p in webcam_images(datasets_dir, count=20)]
    faces = [(track, labels[stem]) for track, stem in zip(stats.tracks, stems) if labels.get(stem)]
    found = [iou(track.box, truth) for track, truth in faces if track.visible]
    assert len(found) >= 0.8 * len(faces), f"face tracked in only {len(found)} of {len(faces)} labelled frames"
    assert np.median(found) > 0.5, f"median IoU with the labels {np.median(found):.2f}"

    # ... and drawn there in the recording: the box outline changed the picture, just inside it did not.
    recorded, source = read_all(out), read_all(video)
    for i, track in enumerate(stats.tracks):
        if track.visible:
            on, inside = outline_difference(recorded[i], source[i], track.box)
            assert on > 40 and inside < 15, f"frame {i}: outline change {on:.0f}, inside {inside:.0f}"


def test_json_line_and_mirror_through_the_cli(video_of, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models/facetracker.keras here: the bundled model runs
    video = video_of("webcam-b", frames=8)
    result = runner.invoke(app, ["live", "--camera", str(video), "--no-show", "--max-frames", "6", "--mirror",
                                 "--smooth", "ema", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(one_line(result.stdout))
    assert stats["frames"] == 6 and stats["stop_reason"] == "max frames" and stats["dropped"] == 0
    assert stats["fps"] > 0 and stats["latency_p95_ms"] >= stats["latency_p50_ms"] > 0
    assert stats["runtime"] == "tflite" and stats["exit_code"] == 0  # the bundled TFLite export by default


def test_without_smoothing_the_box_is_the_raw_detection(detector, video_of):
    video = video_of("webcam-c", frames=6)
    stats = run_live(video, detector=detector, show=False, smooth="none", keep_tracks=True)
    visible = [t for t in stats.tracks if t.visible]
    assert visible and all(np.allclose(t.box, t.raw_box) for t in visible)


# ---------------------------------------------------------------- newest frame, not every frame, when live


def test_a_slow_detector_on_a_live_source_drops_frames_instead_of_lagging(video_of):
    video = video_of("webcam-a", frames=40)
    # Haar takes ~50 ms a frame while the reader decodes a frame in ~2 ms: most frames must be skipped.
    stats = run_live(video, detector=HaarDetector(), show=False, live=True, keep_tracks=True)
    assert stats.stop_reason == "source stopped"  # a live source that ends has been disconnected
    assert stats.dropped > 0 and stats.frames + stats.dropped == 40
    assert stats.indices == sorted(set(stats.indices)) and stats.indices[-1] - stats.indices[0] >= stats.frames
    assert np.diff(stats.indices).max() > 1, "skipped frames show as gaps in the frame indices"


def test_a_slow_detector_on_a_file_still_gets_every_frame_in_order(video_of):
    video = video_of("webcam-a", frames=6, size=(320, 240))
    stats = run_live(video, detector=HaarDetector(), show=False, keep_tracks=True)
    assert stats.indices == list(range(6)) and stats.dropped == 0 and stats.stop_reason == "end of video"


# ---------------------------------------------------------------- sources that are missing or stop


def test_camera_not_found_is_one_line_and_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    done = subprocess.run(live_command("--camera", "9", "--no-show", "--record", str(out)), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith("error: cannot open video source: camera 9 — ") and "another index" in line
    assert list(tmp_path.iterdir()) == []


def test_stream_that_disconnects_keeps_a_complete_recording(detector, datasets_dir, tmp_path):
    out = tmp_path / "out.avi"
    with mjpeg_camera(webcam_images(datasets_dir), frames=45) as url:
        stats = run_live(url, detector=detector, record=out, show=False)
    assert stats.stop_reason == "source stopped" and stats.exit_code == 3
    assert stats.message.startswith(f"the source stopped delivering frames: {url}")
    assert 0 < stats.frames <= 45 and stats.frames + stats.dropped <= 45
    assert count_video_frames(out) == stats.recorded_frames == stats.frames and no_temp_files(tmp_path)


def test_frozen_stream_counts_as_disconnected_after_the_stall_time(detector, datasets_dir, tmp_path):
    out = tmp_path / "out.mp4"
    with mjpeg_camera(webcam_images(datasets_dir), stall_after=10) as url:
        started = time.monotonic()
        stats = run_live(url, detector=detector, record=out, show=False, stall_seconds=1.0)
        elapsed = time.monotonic() - started
    assert stats.stop_reason == "source stopped" and stats.exit_code == 3
    assert "no frame for 1 s" in stats.message and elapsed < 10
    assert 0 < stats.frames <= 10 and count_video_frames(out) == stats.recorded_frames == stats.frames


@pytest.mark.parametrize("signum, said, status", [(signal.SIGINT, "Ctrl-C", 130), (signal.SIGTERM, "SIGTERM", 143)])
def test_ctrl_c_or_kill_during_a_recording_leaves_a_playable_file(signum, said, status, datasets_dir, tmp_path):
    out = tmp_path / "out.mp4"
    with mjpeg_camera(webcam_images(datasets_dir)) as url:  # a camera that never ends
        process = subprocess.Popen(live_command("--camera", url, "--no-show", "--record", str(out), "--json"),
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not list(tmp_path.glob(".out.mp4.*")) and time.monotonic() < deadline:  # recording started
                assert process.poll() is None, process.communicate()
                time.sleep(0.1)
            time.sleep(0.5)
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill() if process.poll() is None else None
    assert process.returncode == status, stderr
    stats = json.loads(one_line(stdout))
    assert stats["stop_reason"] == "interrupted" and stats["frames"] > 0
    assert one_line(stderr) == f"stopped: stopped by {said}; recording kept: {out} ({stats['recorded_frames']} frames)"
    assert count_video_frames(out) == stats["recorded_frames"] == stats["frames"]
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------- the window


def test_show_without_a_display_says_use_no_show(video_of, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = runner.invoke(app, ["live", "--camera", str(video_of("webcam-a", frames=2)), "--show"])
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith("error: cannot show a window: no display") and "--no-show" in line


def test_window_under_a_real_x_server_quits_on_q(datasets_dir, tmp_path):
    with mjpeg_camera(webcam_images(datasets_dir)) as url, virtual_display() as display:
        env = x_env(display)
        env.pop("FACETRACKER_DEBUG", None)
        # No --show: a display exists, so the window opens by default.
        process = subprocess.Popen(live_command("--camera", url, "--json"), cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            window = wait_for_window(display, "^facetracker$", timeout=60, process=process)
            time.sleep(0.5)
            xdotool(display, "windowfocus", "--sync", window)
            xdotool(display, "key", "q")
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill() if process.poll() is None else None
    assert process.returncode == 0, stderr
    stats = json.loads(one_line(stdout))
    assert stats["stop_reason"] == "quit key" and stats["frames"] > 0


# ---------------------------------------------------------------- bad options, refused before anything opens


def test_recording_never_overwrites_without_force(video_of, tmp_path):
    video = video_of("webcam-a", frames=3, size=(160, 120))
    existing = tmp_path / "kept.mp4"
    existing.write_bytes(b"precious")
    with pytest.raises(FacetrackerError, match="already exists.*--force"):
        run_live(video, detector=HaarDetector(), record=existing, show=False)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(FacetrackerError, match=r"cannot record '\.txt' videos"):
        run_live(video, detector=HaarDetector(), record=tmp_path / "out.txt", show=False)
    stats = run_live(video, detector=HaarDetector(), record=existing, show=False, force=True)
    assert count_video_frames(existing) == stats.frames == 3


@pytest.mark.parametrize("args, message", [
    (["--threshold", "1.5"], "threshold must be between 0 and 1"),
    (["--smooth", "median"], "unknown smoothing 'median'"),
    (["--camera", "missing.avi"], "video file not found: missing.avi"),
])
def test_bad_options_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["live", "--no-show", *args])
    assert result.exit_code == 2
    assert message in one_line(result.stderr)



def test_on_screen_fps_shows_from_the_third_frame_then_holds_between_refreshes():
    """The FPS caption needs two finished frames; it must not stay at 0 for a whole refresh period after the first."""
    loop = _Loop(None, None, mirror=False, show=False, stats=LiveStats(source="clip", runtime="tflite"),
                 keep_tracks=False)
    now, shown = 1000.0, []
    for _ in range(10):  # frames 5 ms apart: 200 FPS, all well inside one refresh period
        shown.append(loop._status(now, dropped=0)[0])
        loop.done_times.append(now + 0.004)
        now += 0.005
    assert 10 * 0.005 < STATUS_REFRESH_SECONDS
    assert shown[0] == shown[1] == 0 and shown[2] == pytest.approx(200, rel=0.01)
    assert set(shown[2:]) == {shown[2]}, "held until the next refresh, so the number is readable"
