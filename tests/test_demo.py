"""`facetracker demo` (what `make demo` runs): a built-in clip with two faces tracked by the bundled model, no camera,
no download.

The tests marked `bundled` need the new multi-face bundled model in facetracker/assets/; the others drive the same
demo with a detector replaying the clip's true boxes, so the clip, the tracker and the recording are checked today."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker import config
from facetracker.cli import app
from facetracker.demo import CLIP_NAME, RESULT_NAME, demo_truth, run_demo
from facetracker.recording import count_video_frames
from streams import TruthDetector

runner = CliRunner()
FRAMES = round(config.DEMO_SECONDS * config.DEMO_FPS)


def true_boxes() -> list[list[tuple]]:
    """[astronaut, mirrored copy] true boxes of every demo frame."""
    return [demo_truth(i / FRAMES) for i in range(FRAMES)]


def held_ids(stats) -> list[list]:
    """Per face, the id of the track holding it in every frame (the track whose box contains the face centre and
    overlaps it most), None when no track holds it."""
    per_face = [[], []]
    for boxes, tracks in zip(true_boxes(), stats.tracks):
        for face, (x1, y1, x2, y2) in enumerate(boxes):
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            holding = [t for t in tracks if t.box[0] <= cx <= t.box[2] and t.box[1] <= cy <= t.box[3]]
            per_face[face].append(min(holding, key=lambda t: abs(t.box[2] - t.box[0] - (x2 - x1))).id
                                  if holding else None)
    return per_face


def check_both_held_without_id_switch(stats, min_held: tuple[float, float]) -> None:
    """min_held: the share of frames the astronaut and her copy must each be held in."""
    ids = held_ids(stats)
    for face, (name, least) in enumerate(zip(("the astronaut", "her mirrored copy"), min_held)):
        held = [i for i in ids[face] if i is not None]
        assert len(held) >= least * FRAMES, f"{name} is held in only {len(held)} of {FRAMES} frames"
        assert len(set(held)) == 1, f"{name} changed id: {ids[face]}"
    assert set(ids[0]) - {None} != set(ids[1]) - {None}, "the two faces have different ids"


@pytest.fixture(scope="module")
def replayed_run(tmp_path_factory):
    """The demo driven by the clip's own true boxes plus noise, in place of a model."""
    rng = np.random.default_rng(0)
    detections = []
    for boxes in true_boxes():
        found = []
        for x1, y1, x2, y2 in boxes:
            noise = rng.normal(0, 0.03, 4) * [x2 - x1, y2 - y1, x2 - x1, y2 - y1]
            found.append((float(rng.uniform(0.6, 0.98)), tuple(np.array([x1, y1, x2, y2]) + noise)))
        detections.append(found)
    out = tmp_path_factory.mktemp("demo-replayed") / "demo_out"
    stats, clip = run_demo(out, detector=TruthDetector(detections))
    return out, stats, clip


def test_demo_clip_has_two_faces_and_is_tracked_recorded_and_playable(replayed_run):
    out, stats, clip = replayed_run
    assert stats.frames == stats.recorded_frames == FRAMES and stats.stop_reason == "end of video"
    assert clip == out / CLIP_NAME and count_video_frames(clip) == FRAMES
    assert count_video_frames(out / RESULT_NAME) == FRAMES and not list(out.glob(".*.tmp*"))
    boxes = np.array(true_boxes())  # (frames, 2, 4)
    assert (boxes[:, :, 2] <= config.DEMO_SIZE[0]).all() and (boxes[:, :, 0] >= 0).all(), "both faces in frame"
    assert (boxes[:, 0, 2] < boxes[:, 1, 0]).all(), "side by side, never overlapping"
    heights = boxes[:, :, 3] - boxes[:, :, 1]
    assert (heights[:, 1] < heights[:, 0]).all(), "the copy is the smaller face"
    check_both_held_without_id_switch(stats, min_held=(0.95, 0.95))
    assert stats.most_faces == 2 and stats.tracks_seen == 2


def test_demo_clip_shows_the_faces_where_the_truth_says(replayed_run):
    """The pixels agree with demo_truth: the second face is the astronaut's mirrored head, pasted where it says."""
    import cv2
    from skimage import data

    _, _, clip = replayed_run
    capture = cv2.VideoCapture(str(clip))
    ok, frame = capture.read()
    capture.release()
    assert ok
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    main, copy = (tuple(int(round(v)) for v in box) for box in demo_truth(0.0))
    face = cv2.resize(photo[28:182, 168:282], (64, 86), interpolation=cv2.INTER_AREA).astype(float)
    seen_main = cv2.resize(frame[main[1]:main[3], main[0]:main[2]], (64, 86), interpolation=cv2.INTER_AREA)
    seen_copy = cv2.resize(frame[copy[1]:copy[3], copy[0]:copy[2]], (64, 86), interpolation=cv2.INTER_AREA)
    assert np.abs(seen_main - face).mean() < 20
    # The copy's centre is the mirrored face (its oval edge blends into the background, so compare the middle).
    middle = (slice(20, 66), slice(16, 48))
    assert np.abs(seen_copy[middle] - face[:, ::-1][middle]).mean() < 25


def test_demo_command_refuses_an_output_folder_it_cannot_create(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["demo", "--out", str(blocker / "demo_out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create folder" in lines[0] and str(blocker / "demo_out") in lines[0]


# ---------------------------------------------------------------- with the bundled model (make demo)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo run with the bundled model, into a folder holding an older demo.mp4 (the demo replaces it)."""
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    out.mkdir()
    (out / RESULT_NAME).write_bytes(b"an older demo run")
    stats, clip = run_demo(out)
    return out, stats, clip


def test_demo_runs_end_to_end_and_writes_a_playable_video(demo_run):
    out, stats, clip = demo_run
    assert stats.frames == stats.recorded_frames == FRAMES and stats.stop_reason == "end of video"
    assert stats.record == str(out / RESULT_NAME) and count_video_frames(out / RESULT_NAME) == FRAMES
    assert clip == out / CLIP_NAME and count_video_frames(clip) == FRAMES
    assert stats.runtime == "tflite" and stats.fps > 0 and stats.dropped == 0  # the bundled TFLite export
    assert not list(out.glob(".*.tmp*"))


def test_demo_holds_both_faces_and_no_id_switches(demo_run):
    """A regression check of the shipped model on a person it never saw, twice in the frame. Inference is
    deterministic, so this does not flake. The bundled model (the blazeface backbone) holds the astronaut and her
    smaller pasted copy in 99 of 100 frames each (the compact bundle before it: 100 and 66; docs/quality.md, "The
    bundled model"). The bars leave room for other CPUs' float rounding, while a broken preprocessing, export or
    tracker lands far below."""
    _, stats, _ = demo_run
    check_both_held_without_id_switch(stats, min_held=(0.95, 0.9))
