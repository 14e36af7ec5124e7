"""`facetracker live` end to end with a real trained FaceTracker (the small one of tests/conftest.py, until the new
bundled model ships): real video files written from the real data sets, a real video of two real people crossing,
a real MJPEG HTTP stream paced like a camera, a camera index that does not exist, Ctrl-C in a real subprocess, and a
real window under Xvfb."""

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
from facetracker.camera import FrameReader, open_source
from facetracker.live import STATUS_REFRESH_SECONDS, LiveStats, _frame_preparer, _Loop, run_live
from facetracker.recording import VideoRecorder, count_video_frames
from streams import TruthDetector, ids_by_person, iou, mjpeg_camera, two_people_clip
from xdisplay import gui_command, press_to_quit, virtual_display, wait_for_window, x_env

runner = CliRunner()


@pytest.fixture(scope="module")
def detector(tiny_exports) -> Detector:
    """A really trained FaceTracker, exported to TFLite: the compiled runtime `live` uses by default."""
    return Detector.load(tiny_exports("tflite").path)


@pytest.fixture(scope="module")
def tiny_tflite(tiny_exports) -> str:
    return str(tiny_exports("tflite").path)


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


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def best_track(tracks, truth_box):
    """The shown track overlapping `truth_box` most, or None."""
    return max(tracks, key=lambda t: iou(t.box, truth_box), default=None)


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

    # The tracked boxes are where the labelme boxes are (each frame is a new picture: the person moves) ...
    labels = {s.image.stem: s.box for s in scan(datasets_dir / "webcam-a" / "images",
                                                  datasets_dir / "webcam-a" / "labels").samples}
    stems = [p.stem for p in webcam_images(datasets_dir, count=20)]
    faces = [(tracks, labels[stem]) for tracks, stem in zip(stats.tracks, stems) if labels.get(stem)]
    found = [iou(best_track(tracks, truth).box, truth) for tracks, truth in faces if tracks]
    assert len(found) >= 0.6 * len(faces), f"face tracked in only {len(found)} of {len(faces)} labelled frames"
    assert np.median(found) > 0.4, f"median IoU with the labels {np.median(found):.2f}"
    assert stats.faces == sum(bool(t) for t in stats.tracks) and stats.tracks_seen >= 1

    # ... and drawn there in the recording: the box outline changed the picture, just inside it did not.
    recorded, source = read_all(out), read_all(video)
    for i, tracks in enumerate(stats.tracks):
        for track in tracks:
            on, inside = outline_difference(recorded[i], source[i], track.box)
            assert on > 40, f"frame {i}: outline change {on:.0f}"
            if len(tracks) == 1:  # (another box may cross this one's inside)
                assert inside < 15, f"frame {i}: inside change {inside:.0f}"


def test_json_line_mirror_and_tracks_file_through_the_cli(video_of, tiny_tflite, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = video_of("webcam-b", frames=8)
    result = runner.invoke(app, ["live", "--camera", str(video), "--model", tiny_tflite, "--no-show", "--max-frames",
                                 "6", "--mirror", "--smooth", "ema", "--tracks", "tracks.jsonl", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(one_line(result.stdout))
    assert stats["frames"] == 6 and stats["stop_reason"] == "max frames" and stats["dropped"] == 0
    assert stats["fps"] > 0 and stats["latency_p95_ms"] >= stats["latency_p50_ms"] > 0
    assert stats["runtime"] == "tflite" and stats["exit_code"] == 0
    assert stats["tracks_file"] == "tracks.jsonl" and isinstance(stats["tracks_seen"], int)
    lines = read_jsonl(tmp_path / "tracks.jsonl")
    assert [line["frame"] for line in lines] == list(range(6))
    assert [line["time"] for line in lines] == pytest.approx([i / 10.0 for i in range(6)])  # the video's 10 FPS
    ids = {t["id"] for line in lines for t in line["tracks"]}
    assert len(ids) == stats["tracks_seen"]
    for line in lines:
        assert set(line) == {"frame", "time", "tracks"}
        for track in line["tracks"]:
            assert set(track) == {"id", "score", "box"} and 0 <= track["score"] <= 1
            x1, y1, x2, y2 = track["box"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480, "pixels of the 640x480 frame"
    # The file is never overwritten without --force.
    again = runner.invoke(app, ["live", "--camera", str(video), "--model", tiny_tflite, "--no-show",
                                "--tracks", "tracks.jsonl"])
    assert again.exit_code == 2 and "tracks file already exists" in one_line(again.stderr)


def test_the_reader_thread_prepares_mirrored_frames_exactly_as_detect_would(detector, video_of):
    """live letterboxes (and mirrors) each frame in the reader thread while the model runs on the previous one: the
    faces found must be those of detect() on the mirrored frame, frame by frame."""
    video = video_of("webcam-b", frames=6)
    originals = read_all(video)
    with FrameReader(open_source(video), video, prepare=_frame_preparer(detector, mirror=True)) as reader:
        frames = [reader.read() for _ in originals]
        assert reader.read() is None
    for frame, original in zip(frames, originals):
        assert np.array_equal(frame.image, cv2.flip(original, 1))
        from_reader = detector.detect_prepared(*frame.prepared, min_score=0.0)
        direct = detector.detect(cv2.flip(original, 1), min_score=0.0)
        assert [d.score for d in from_reader] == pytest.approx([d.score for d in direct])
        assert np.allclose([d.box for d in from_reader], [d.box for d in direct])


def test_an_error_while_preparing_a_frame_reaches_the_loop(video_of):
    def broken(image):
        raise FacetrackerError("cannot prepare the frame")

    video = video_of("webcam-b", frames=3)
    with FrameReader(open_source(video), video, prepare=broken) as reader:
        with pytest.raises(FacetrackerError, match="cannot prepare the frame"):
            reader.read()


def test_without_smoothing_the_box_is_the_raw_detection(detector, video_of):
    video = video_of("webcam-a", frames=12)
    stats = run_live(video, detector=detector, show=False, smooth="none", keep_tracks=True)
    shown = [t for tracks in stats.tracks for t in tracks if not t.missed]
    assert shown and all(np.allclose(t.box, t.raw_box) for t in shown)


# ---------------------------------------------------------------- several faces


def test_two_real_people_crossing_in_a_video_keep_their_ids_in_the_live_loop(datasets_dir, tmp_path):
    """The whole live loop — reader thread, tracker, drawing, recording, --tracks — on a real composed video, with a
    detector replaying the true boxes plus noise (the tracker is what is tested; see test_tracking.py)."""
    from facetracker.demo import detections_from_truth

    video = tmp_path / "crossing.avi"
    truth = two_people_clip(datasets_dir, video, frames=150, absence=0.2)  # the second leaves at frame 75
    out, log = tmp_path / "out.mp4", tmp_path / "tracks.jsonl"
    stats = run_live(video, detector=TruthDetector(detections_from_truth(truth, seed=7)), show=False, record=out,
                     tracks=log, keep_tracks=True)
    assert stats.frames == 150 and stats.stop_reason == "end of video" and count_video_frames(out) == 150
    ids = ids_by_person(truth, stats.tracks)
    first = set(ids[0][2:]) - {None, "hidden"}
    before = set(ids[1][2:60]) - {None, "hidden"}
    assert len(first) == 1 and len(before) == 1 and first != before, (first, before)
    assert stats.most_faces == 2 and 3 <= stats.tracks_seen <= 4  # the second person came back as a new track
    lines = read_jsonl(log)
    assert len(lines) == 150 and [[t["id"] for t in line["tracks"]] for line in lines] == \
        [[t.id for t in tracks] for tracks in stats.tracks]
    # The face leaving through the left edge: its smoothed box stops at the edge, never past it.
    boxes = np.array([t["box"] for line in lines for t in line["tracks"]])
    assert boxes[:, 0].min() == 0 and (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 640).all() \
        and (boxes[:, 3] <= 480).all()
    # Each face is drawn in its own colour: the recording differs from the source on both boxes.
    recorded, source = read_all(out), read_all(video)
    both = next(i for i, tracks in enumerate(stats.tracks) if len(tracks) == 2)
    for track in stats.tracks[both]:
        on, inside = outline_difference(recorded[both], source[both], track.box)
        assert on > 40, f"box of track {track.id} not drawn"


# ---------------------------------------------------------------- detection workers


def test_detection_workers_give_every_frame_in_order_with_the_loops_own_tracks(detector, video_of, tmp_path):
    """Two one-thread copies of the model run the next frames while the loop tracks and draws this one: the same
    frames, in the same order, with the same tracks as the loop running the model itself."""
    video = video_of("webcam-a", frames=24)
    logs = {workers: tmp_path / f"workers-{workers}.jsonl" for workers in (1, 2)}
    runs = {workers: run_live(video, detector=detector, show=False, keep_tracks=True, workers=workers,
                              tracks=logs[workers]) for workers in (1, 2)}
    assert (runs[1].workers, runs[2].workers) == (1, 2)
    assert runs[2].indices == runs[1].indices == list(range(24)) and runs[2].stop_reason == "end of video"
    assert runs[1].face_boxes > 12, "the tiny model tracks the face it was trained on"
    assert read_jsonl(logs[2]) == read_jsonl(logs[1])
    stopped = run_live(video, detector=detector, show=False, keep_tracks=True, max_frames=5)
    assert stopped.workers == 2 and stopped.indices == list(range(5)) and stopped.stop_reason == "max frames"


def test_detection_workers_on_a_live_source_keep_the_newest_frames_in_order(detector, video_of):
    video = video_of("webcam-a", frames=40)
    stats = run_live(video, detector=detector, show=False, live=True, keep_tracks=True)
    assert stats.workers == 2 and stats.frames + stats.dropped == 40
    assert stats.indices == sorted(set(stats.indices)), "never a frame twice, never out of order"


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_a_detector_copy_runs_the_same_file_in_a_runtime_of_its_own(fmt, tiny_exports, trained_model, datasets_dir):
    frame = cv2.imread(str(webcam_images(datasets_dir)[0]))
    detector = Detector.load(tiny_exports(fmt).path)
    copy = detector.copy(threads=1)
    assert copy.runtime is not detector.runtime and copy.source == detector.source
    mine, theirs = copy.detect(frame), detector.detect(frame)
    assert len(mine) == len(theirs) > 0  # one thread or two: the same faces, to rounding
    assert np.allclose([[d.score, *d.box] for d in mine], [[d.score, *d.box] for d in theirs], atol=1e-3)
    assert Detector.load(trained_model).copy() is None, "a .keras model runs on TensorFlow's own threads"


class FixedFaces:
    """A detector that finds the same five faces in every frame."""

    runtime_name = "fixed"
    boxes = [(20.0 + 120 * k, 100.0, 110.0 + 120 * k, 200.0) for k in range(5)]

    def detect(self, frame, min_score=0.0):
        from facetracker.inference import Detection

        return [Detection(0.9 - 0.05 * k, box) for k, box in enumerate(self.boxes)]


def test_max_faces_holds(video_of, tmp_path):
    video = video_of("webcam-a", frames=12)
    log = tmp_path / "tracks.jsonl"
    stats = run_live(video, detector=FixedFaces(), show=False, max_faces=2, tracks=log, keep_tracks=True)
    assert stats.most_faces == 2 and stats.tracks_seen == 2
    assert max(len(line["tracks"]) for line in read_jsonl(log)) == 2
    unlimited = run_live(video, detector=FixedFaces(), show=False, keep_tracks=True)
    assert unlimited.most_faces == 5


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
def test_ctrl_c_or_kill_during_a_recording_leaves_a_playable_file_and_valid_tracks(signum, said, status, datasets_dir,
                                                                                   tiny_tflite, tmp_path):
    out, log = tmp_path / "out.mp4", tmp_path / "tracks.jsonl"
    with mjpeg_camera(webcam_images(datasets_dir)) as url:  # a camera that never ends
        process = subprocess.Popen(live_command("--camera", url, "--model", tiny_tflite, "--no-show", "--record",
                                                str(out), "--tracks", str(log), "--json"),
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
    lines = read_jsonl(log)  # every line complete JSON, one per frame processed, in order, on the run's clock
    indices = [line["frame"] for line in lines]
    assert len(lines) == stats["frames"] and indices == sorted(set(indices))
    times = [line["time"] for line in lines]
    assert times[0] == 0 and times == sorted(times)


# ---------------------------------------------------------------- the window


def test_show_without_a_display_says_use_no_show(video_of, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = runner.invoke(app, ["live", "--camera", str(video_of("webcam-a", frames=2)), "--show"])
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert line.startswith("error: cannot show a window: no display") and "--no-show" in line


def test_window_under_a_real_x_server_quits_on_q(datasets_dir, tiny_tflite, tmp_path):
    with mjpeg_camera(webcam_images(datasets_dir)) as url, virtual_display() as display:
        env = x_env(display)
        env.pop("FACETRACKER_DEBUG", None)
        # No --show: a display exists, so the window opens by default.
        with gui_command(["live", "--camera", url, "--model", tiny_tflite, "--json"], display, env=env,
                         cwd=tmp_path) as process:
            window = wait_for_window(display, "^facetracker$", timeout=60, process=process)
            time.sleep(0.5)
            stdout, stderr = press_to_quit(display, window, process, "q")
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
    (["--max-faces", "0"], "--max-faces"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--tracks", "."], "tracks path is a folder"),
])
def test_bad_options_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["live", "--no-show", *args])
    assert result.exit_code == 2
    assert message in one_line(result.stderr)



def test_on_screen_fps_shows_from_the_third_frame_then_holds_between_refreshes():
    """The FPS caption needs two finished frames; it must not stay at 0 for a whole refresh period after the first."""
    loop = _Loop(None, None, show=False, stats=LiveStats(source="clip", runtime="tflite"), keep_tracks=False)
    now, shown = 1000.0, []
    for _ in range(10):  # frames 5 ms apart: 200 FPS, all well inside one refresh period
        shown.append(loop._status(now, dropped=0)[0])
        loop.done_times.append(now + 0.004)
        now += 0.005
    assert 10 * 0.005 < STATUS_REFRESH_SECONDS
    assert shown[0] == shown[1] == 0 and shown[2] == pytest.approx(200, rel=0.01)
    assert set(shown[2:]) == {shown[2]}, "held until the next refresh, so the number is readable"


def test_background_recorder_writes_every_frame_in_order(datasets_dir, tmp_path):
    frames = [cv2.resize(cv2.imread(str(p)), (320, 240)) for p in webcam_images(datasets_dir, count=10)] * 5
    with VideoRecorder(tmp_path / "out.avi", 25.0, background=True, queue_frames=2) as recorder:
        for frame in frames:
            recorder.write(frame)
    written = read_all(tmp_path / "out.avi")
    assert recorder.frames == len(written) == 50 and no_temp_files(tmp_path)
    assert all(np.abs(a.astype(int) - b).mean() < 8 for a, b in zip(written, frames)), "same frames, same order"


def test_a_keras_model_runs_live_through_its_tflite_export_made_once(trained_model, video_of, datasets_dir,
                                                                      tmp_path, monkeypatch, capsys):
    """Your trained .keras model runs in `live` as the bundled one does: exported to TFLite fitted to the frames
    (about four times the frame rate of tf.function, docs/benchmarks.md), in the detection workers, with the
    faces the Keras model itself finds. The export is made on the first run and kept for the next ones."""
    from facetracker.export import live_export_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    video = video_of("webcam-a", frames=12)
    frame = cv2.imread(str(webcam_images(datasets_dir, count=1)[0])).shape[1::-1]
    exported = live_export_path(trained_model, frame)
    assert exported.parent.parent == tmp_path / "cache" / "facetracker" / "live-exports" and not exported.exists()
    assert exported.name == f"{trained_model.stem}-{frame[0]}x{frame[1]}.tflite"  # as `export --frame` names it

    stats = run_live(video, model=trained_model, show=False, keep_tracks=True)
    assert f"exporting {trained_model} to TFLite for {frame[0]}x{frame[1]} frames" in capsys.readouterr().err
    assert stats.runtime == "tflite" and Path(stats.model) == exported and exported.is_file() and stats.workers == 2
    keras = run_live(video, detector=Detector.load(trained_model, frame=frame), show=False, keep_tracks=True)
    assert keras.runtime == "keras" and keras.face_boxes == stats.face_boxes > 0
    for mine, theirs in zip(stats.tracks, keras.tracks):
        assert [t.id for t in mine] == [t.id for t in theirs]
        assert np.allclose([t.box for t in mine], [t.box for t in theirs], atol=0.5), "the same faces, to rounding"

    made = exported.stat().st_mtime_ns
    again = run_live(video, model=trained_model, show=False)
    assert Path(again.model) == exported and exported.stat().st_mtime_ns == made, "kept, not made again"
    assert "exporting" not in capsys.readouterr().err


def test_a_keras_model_without_a_writable_cache_still_runs_live_with_a_warning(trained_model, video_of, tmp_path,
                                                                                monkeypatch, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    stats = run_live(video_of("webcam-a", frames=4), model=trained_model, show=False)
    assert stats.runtime == "keras" and Path(stats.model) == trained_model and stats.frames == 4
    warning = one_line(capsys.readouterr().err.split("warning: ", 1)[1])
    assert f"no TFLite export of {trained_model}" in warning and "about four times slower" in warning


def test_with_no_model_live_runs_the_bundled_file_fitted_to_the_sources_frames(video_of, tmp_path, monkeypatch):
    """A 640x480 source gets the bundled model's 192x160 export (the same faces as the square file, a sixth less to
    compute; docs/benchmarks.md), and it finds the face of a real webcam clip."""
    from facetracker.inference import bundled_model_path

    monkeypatch.chdir(tmp_path)  # no models/facetracker.keras here
    video = video_of("webcam-a", frames=20)
    stats = run_live(video, show=False)
    assert Path(stats.model).name == "facetracker-192x160.tflite" and stats.runtime == "tflite"
    assert json.loads(stats.to_json())["model"] == stats.model
    square = run_live(video, model=bundled_model_path(fast=True), show=False)
    assert Path(square.model).name == "facetracker.tflite"
    assert stats.frames == square.frames == 20 and stats.faces >= square.faces - 1 >= 12, (stats.faces, square.faces)
