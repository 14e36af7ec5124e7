"""`facetracker collect` on real video files (written from the real data sets), a real MJPEG HTTP stream,
a camera index that does not exist and read-only folders."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker.camera import SourceEnded
from facetracker.cli import app
from facetracker.collect import collect_frames
from facetracker.errors import FacetrackerError
from streams import mjpeg_camera
from xdisplay import gui_command, press_to_quit, screenshot, virtual_display, wait_for_window

runner = CliRunner()


def saved_frames(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def assert_uuid1_jpegs(paths: list[Path], size=(640, 480)) -> None:
    for path in paths:
        assert uuid.UUID(path.stem).version == 1, path.name
        image = cv2.imread(str(path))
        assert image is not None and (image.shape[1], image.shape[0]) == size
    assert not list(paths[0].parent.glob(".*.tmp*")) if paths else True  # no temp files left behind


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# ---------------------------------------------------------------- saving frames from a video file


def test_saves_count_frames_with_uuid1_names(video_of, tmp_path):
    video = video_of("webcam-a", frames=12)
    out = tmp_path / "data" / "images"  # does not exist yet: created

    result = collect_frames(str(video), count=5, interval=0, out_dir=out, preview=False)

    frames = saved_frames(out)
    assert len(frames) == 5 and sorted(result.saved) == frames
    assert_uuid1_jpegs(frames)
    assert not result.video_ended and not result.quit_by_user


def test_interval_follows_the_file_timeline(video_of, datasets_dir, tmp_path):
    # 10 fps video of 10 different real images: interval 0.3 s on the file's clock -> frames 0, 3, 6, 9,
    # however fast the decoding runs.
    video = video_of("webcam-b", frames=10, fps=10.0, size=(160, 120))
    images = sorted((datasets_dir / "webcam-b" / "images").glob("*.jpg"))[:10]
    originals = [cv2.resize(cv2.imread(str(p)), (160, 120)).astype(np.float32) for p in images]

    started = time.monotonic()
    result = collect_frames(str(video), count=4, interval=0.3, out_dir=tmp_path / "out", preview=False)
    assert time.monotonic() - started < 0.9  # faster than the 0.9 s the wall clock would need

    picked = []
    for path in result.saved:  # in the order they were saved
        frame = cv2.imread(str(path)).astype(np.float32)
        picked.append(int(np.argmin([np.abs(frame - original).mean() for original in originals])))
    assert picked == [0, 3, 6, 9]


def test_video_shorter_than_count_keeps_what_it_has_and_warns(video_of, tmp_path):
    video = video_of("webcam-c", frames=6)
    out = tmp_path / "out"

    cli = runner.invoke(app, ["collect", "--camera", str(video), "--count", "10", "--interval", "0",
                              "--out", str(out), "--no-preview"])

    assert cli.exit_code == 0, cli.output
    assert len(saved_frames(out)) == 6
    assert "warning:" in cli.stderr and "ended after 6 of 10 frames" in cli.stderr
    assert "saved 6 frames" in cli.stdout


def test_cli_summary_line(video_of, tmp_path):
    video = video_of("webcam-a", frames=4, size=(320, 240))
    cli = runner.invoke(app, ["collect", "--camera", str(video), "--count", "3", "--interval", "0",
                              "--out", str(tmp_path / "out"), "--no-preview"])
    assert cli.exit_code == 0, cli.output
    assert cli.stderr == ""
    assert f"saved 3 frames from {video} to {tmp_path / 'out'}" in cli.stdout
    assert_uuid1_jpegs(saved_frames(tmp_path / "out"), size=(320, 240))


# ---------------------------------------------------------------- sources that cannot be opened


def test_missing_video_file(tmp_path):
    with pytest.raises(FacetrackerError, match="video file not found"):
        collect_frames(str(tmp_path / "nope.avi"), count=3, out_dir=tmp_path / "out", preview=False)
    assert saved_frames(tmp_path / "out") == []


def test_camera_index_that_does_not_exist(tmp_path):
    cli = runner.invoke(app, ["collect", "--camera", "9", "--count", "3", "--out", str(tmp_path / "out")])
    assert cli.exit_code == 2
    line = one_error_line(cli)
    assert line.startswith("error: cannot open video source: camera 9")
    assert saved_frames(tmp_path / "out") == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_url_that_cannot_be_opened(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there: connection refused
    cli = runner.invoke(app, ["collect", "--camera", url, "--count", "3", "--out", str(tmp_path / "out")])
    assert cli.exit_code == 2
    assert one_error_line(cli).startswith(f"error: cannot open video source: {url}")


def test_file_that_is_not_a_video(tmp_path):
    bogus = tmp_path / "notes.avi"
    bogus.write_text("this is not a video\n")
    with pytest.raises(FacetrackerError, match="cannot open video source|no frame could be read"):
        collect_frames(str(bogus), count=3, out_dir=tmp_path / "out", preview=False)


# ---------------------------------------------------------------- sources that die mid-way


def mjpeg_stream(images: list[Path], loops: int = 1, gap: float = 0.01):
    """A real MJPEG HTTP stream, one frame every `gap` seconds, that drops after `images` x `loops` frames."""
    return mjpeg_camera(images, fps=1.0 / gap, frames=len(images) * loops)


def test_stream_that_dies_mid_way_keeps_saved_frames(datasets_dir, tmp_path):
    images = sorted((datasets_dir / "webcam-a" / "images").glob("*.jpg"))[:6]
    out = tmp_path / "out"
    with mjpeg_stream(images) as url:
        cli = runner.invoke(app, ["collect", "--camera", url, "--count", "20", "--interval", "0",
                                  "--out", str(out), "--no-preview"])
    assert cli.exit_code == 3, cli.output
    line = one_error_line(cli)
    assert "stopped delivering frames (saved 6 of 20)" in line and url in line
    frames = saved_frames(out)
    assert len(frames) == 6
    assert_uuid1_jpegs(frames)


def test_live_stream_interval_is_wall_clock(datasets_dir, tmp_path):
    images = sorted((datasets_dir / "webcam-a" / "images").glob("*.jpg"))[:12]
    with mjpeg_stream(images, gap=0.1) as url:  # 12 frames over ~1.2 s of wall clock
        with pytest.raises(SourceEnded):
            collect_frames(url, count=12, interval=0.5, out_dir=tmp_path / "out", preview=False)
    # saves at ~0 s, ~0.5 s and ~1.0 s; the stream's own clock (25 fps says FFmpeg: 0.48 s) would give 1
    assert 2 <= len(saved_frames(tmp_path / "out")) <= 3


def test_truncated_video_file_is_an_error_and_keeps_saved_frames(video_of, tmp_path):
    video = video_of("webcam-a", frames=20)
    data = video.read_bytes()
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(data[: len(data) // 2])  # an interrupted copy: the header still says 20 frames

    with pytest.raises(SourceEnded, match=r"stopped at frame \d+ of the 20 its header promises") as caught:
        collect_frames(str(truncated), count=30, interval=0, out_dir=tmp_path / "out", preview=False)
    frames = saved_frames(tmp_path / "out")
    assert 0 < len(frames) < 20 and f"(saved {len(frames)} of 30)" in str(caught.value)
    assert_uuid1_jpegs(frames)


# ---------------------------------------------------------------- output folders


@contextmanager
def read_only(folder: Path):
    """Make a folder really read-only, also for root (who ignores permission bits): immutable attribute."""
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"x")  # the setup really is read-only
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_read_only_output_folder(video_of, tmp_path):
    video = video_of("webcam-a", frames=3, size=(160, 120))
    out = tmp_path / "locked"
    out.mkdir()
    with read_only(out):
        cli = runner.invoke(app, ["collect", "--camera", str(video), "--count", "2", "--interval", "0",
                                  "--out", str(out), "--no-preview"])
        assert cli.exit_code == 2
        line = one_error_line(cli)
        assert "not writable" in line and str(out) in line
        assert list(out.iterdir()) == []


def test_output_path_that_cannot_be_created(video_of, tmp_path):
    video = video_of("webcam-a", frames=3, size=(160, 120))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cli = runner.invoke(app, ["collect", "--camera", str(video), "--count", "2", "--out", str(blocker / "images")])
    assert cli.exit_code == 2
    line = one_error_line(cli)
    assert "cannot create folder" in line and str(blocker / "images") in line


def test_existing_frames_are_never_touched(video_of, tmp_path):
    video = video_of("webcam-a", frames=3, size=(160, 120))
    out = tmp_path / "out"
    collect_frames(str(video), count=2, interval=0, out_dir=out, preview=False)
    before = {p.name: p.read_bytes() for p in saved_frames(out)}
    collect_frames(str(video), count=2, interval=0, out_dir=out, preview=False)
    after = {p.name: p.read_bytes() for p in saved_frames(out)}
    assert len(after) == 4 and all(after[name] == data for name, data in before.items())


# ---------------------------------------------------------------- preview window


def test_preview_without_a_display_is_skipped_with_a_note(video_of, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = video_of("webcam-a", frames=3, size=(160, 120))
    cli = runner.invoke(app, ["collect", "--camera", str(video), "--count", "2", "--interval", "0",
                              "--out", str(tmp_path / "out")])  # preview is on by default
    assert cli.exit_code == 0, cli.output
    assert cli.stderr == ""
    assert cli.stdout.startswith("note: no preview window: no display (neither DISPLAY nor WAYLAND_DISPLAY is set)\n")
    assert len(saved_frames(tmp_path / "out")) == 2


def test_preview_window_q_stops_early_and_keeps_frames(datasets_dir, tmp_path):
    images = sorted((datasets_dir / "webcam-a" / "images").glob("*.jpg"))[:10]
    out = tmp_path / "out"
    with mjpeg_stream(images, loops=100) as url, virtual_display() as display:  # ~20 s of live stream
        with gui_command(["collect", "--camera", url, "--count", "5", "--interval", "60", "--out", str(out)],
                         display) as process:
            window = wait_for_window(display, "^facetracker collect", timeout=20, process=process)
            screenshot(display, tmp_path / "collect-preview.png")
            stdout, stderr = press_to_quit(display, window, process, "q", timeout=20)
    assert process.returncode == 0, stderr
    assert stderr == ""
    assert "saved 1 frame from" in stdout and "(stopped with q)" in stdout
    assert_uuid1_jpegs(saved_frames(out))
    assert len(saved_frames(out)) == 1  # interval 60 s: only the first frame was due before q
