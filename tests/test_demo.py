"""`facetracker demo` (what `make demo` runs): a built-in clip tracked by the bundled model, no camera, no download."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker import config
from facetracker.cli import app
from facetracker.demo import CLIP_NAME, FACE_CENTRE, RESULT_NAME, camera_path, run_demo
from facetracker.recording import count_video_frames

runner = CliRunner()


def face_centre_in_frame(t: float) -> tuple[float, float]:
    """Where the astronaut's head is in the demo frame at time t (the clip's own camera path, inverted)."""
    width, height = config.DEMO_SIZE
    cx, cy, view_width = camera_path(t, 512, width / height)
    scale = width / view_width
    return width / 2 + scale * (FACE_CENTRE[0] - cx), height / 2 + scale * (FACE_CENTRE[1] - cy)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo run shared by the tests below, into a folder holding an older demo.mp4 (the demo replaces it)."""
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    out.mkdir()
    (out / RESULT_NAME).write_bytes(b"an older demo run")
    stats, clip = run_demo(out)
    return out, stats, clip


def test_demo_runs_end_to_end_and_writes_a_playable_video(demo_run):
    out, stats, clip = demo_run
    frames = round(config.DEMO_SECONDS * config.DEMO_FPS)
    assert stats.frames == stats.recorded_frames == frames and stats.stop_reason == "end of video"
    assert stats.record == str(out / RESULT_NAME) and count_video_frames(out / RESULT_NAME) == frames
    assert clip == out / CLIP_NAME and count_video_frames(clip) == frames
    assert stats.runtime == "tflite" and stats.fps > 0 and stats.dropped == 0  # the bundled TFLite export
    assert not list(out.glob(".*.tmp*"))


def test_demo_box_follows_the_face_as_the_camera_pans_and_zooms(demo_run):
    _, stats, _ = demo_run
    times = np.arange(stats.frames) / stats.frames
    inside = [track.visible and track.box[0] <= x <= track.box[2] and track.box[1] <= y <= track.box[3]
              for track, (x, y) in zip(stats.tracks, map(face_centre_in_frame, times))]
    # A regression check of the shipped model on a person it never saw. Inference is deterministic, so this does not
    # flake: the bundled model holds her face centre in 80 % of the frames (docs/quality.md says why not more);
    # 0.75 leaves room for other CPUs' float rounding, while a broken preprocessing, export or tracker lands far below.
    assert np.mean(inside) >= 0.75, f"the box holds the face centre in only {np.mean(inside):.0%} of the frames"


def test_demo_command_refuses_an_output_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["demo", "--out", str(blocker / "demo_out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create folder" in lines[0] and str(blocker / "demo_out") in lines[0]
