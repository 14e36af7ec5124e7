"""predict: JSONL with every face and annotated copies for real images, folders and a real video; bad input
handled."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker import config
from facetracker.boxes import box_iou, tiles
from facetracker.cli import app
from facetracker.draw import FACE_COLOUR
from facetracker.errors import FacetrackerError
from facetracker.inference import Detection, Detector
from facetracker.labels import scan
from facetracker.predict import predict
from facetracker.recording import count_video_frames


@pytest.fixture(scope="module")
def detector(tiny_exports):
    return Detector.load(tiny_exports("tflite").path)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_row(row: dict, width: int, height: int, threshold: float) -> None:
    """The JSONL contract: "faces" at or above the threshold, best first, boxes inside the original image;
    "score"/"box" repeat the best face (the score even below the threshold, the box only at or above it)."""
    assert {"image", "score", "box", "faces"} <= set(row) and 0.0 <= row["score"] <= 1.0
    scores = [face["score"] for face in row["faces"]]
    assert scores == sorted(scores, reverse=True) and all(score >= threshold for score in scores)
    for face in row["faces"]:
        assert set(face) == {"score", "box"}  # per-frame detections: no track ids
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    if row["faces"]:
        assert (row["score"], row["box"]) == (scores[0], row["faces"][0]["box"])
    else:
        assert row["box"] is None and row["score"] < threshold


class FixedDetector:
    """The same hand-made detections for every frame: predict's output for several faces at once, exactly known."""

    def __init__(self, detections: list[Detection]):
        self.detections = detections

    def detect(self, frame, min_score: float = config.MIN_SCORE) -> list[Detection]:
        return [d for d in self.detections if d.score >= min_score]


def test_jsonl_boxes_follow_the_labels(dataset_copy, trained_model, tmp_path):
    # The 12 faces + 4 negatives the tiny model trained on for only 240 steps: its boxes follow the faces
    # (a fixed box cannot: it does not move at all) without fitting them tightly yet.
    data = dataset_copy("webcam-a", limit=12, negatives=4)
    detector = Detector.load(trained_model)
    summary = predict([data / "images"], detector, threshold=0.5, out_dir=tmp_path / "out",
                      jsonl=tmp_path / "pred.jsonl")
    rows = read_jsonl(tmp_path / "pred.jsonl")
    assert summary.images == 16 and len(rows) == 16 and not summary.skipped
    truth = {s.image.name: s for s in scan(data / "images", data / "labels").samples}
    assert [r["image"] for r in rows] == sorted(truth)
    for row in rows:
        check_row(row, 640, 480, threshold=0.5)
        assert set(row) == {"image", "score", "box", "faces"}
    assert summary.faces == sum(bool(r["faces"]) for r in rows)
    assert summary.face_boxes == sum(len(r["faces"]) for r in rows)
    faces = [r for r in rows if truth[r["image"]].has_face]
    labelled = np.array([truth[r["image"]].box for r in faces])
    predicted = np.array([r["box"] or [0, 0, 0, 0] for r in faces])
    centre_x = np.corrcoef(labelled[:, [0, 2]].mean(axis=1), predicted[:, [0, 2]].mean(axis=1))[0, 1]
    assert centre_x > 0.6, centre_x  # the face moves from left to right across these images; so do the boxes
    assert box_iou(labelled, predicted).mean() > 0.2
    # Negatives get low scores, faces high ones.
    assert min(r["score"] for r in faces) > max(r["score"] for r in rows if not truth[r["image"]].has_face)
    # One annotated copy per image, same size as the original.
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == sorted(truth)
    assert cv2.imread(str(written[0])).shape == (480, 640, 3)


def test_any_size_and_aspect(datasets_dir, detector, tmp_path):
    original = cv2.imread(str(sorted((datasets_dir / "webcam-c" / "images").glob("*.jpg"))[0]))
    portrait = np.ascontiguousarray(original[:, 200:470])  # 270 x 480
    big = cv2.resize(original, (1280, 720))
    cv2.imwrite(str(tmp_path / "portrait.png"), portrait)
    cv2.imwrite(str(tmp_path / "big.jpg"), big)
    predict([tmp_path / "portrait.png", tmp_path / "big.jpg"], detector, threshold=0.0, out_dir=tmp_path / "out",
            jsonl=tmp_path / "p.jsonl")
    rows = {r["image"]: r for r in read_jsonl(tmp_path / "p.jsonl")}
    for name, (width, height) in {"portrait.png": (270, 480), "big.jpg": (1280, 720)}.items():
        check_row(rows[name], width, height, threshold=0.0)
        assert rows[name]["faces"], "threshold 0: every detection the model returned is a face"
        assert cv2.imread(str(tmp_path / "out" / name)).shape == (height, width, 3)
    # A photo is seen as a still image: as it is and mirrored, and this 1280 px one in tiles too, in its own pixels.
    big = cv2.imread(str(tmp_path / "big.jpg"))  # as predict decoded it (JPEG is lossy)
    assert tiles(1280, 720), "big enough for tiles"
    still = detector.detect_still(big, min_score=config.MIN_SCORE)
    assert [f["score"] for f in rows["big.jpg"]["faces"]] == pytest.approx([d.score for d in still], abs=1e-4)
    np.testing.assert_allclose([f["box"] for f in rows["big.jpg"]["faces"]], [d.box for d in still], atol=0.06)


def test_every_face_in_the_jsonl_and_on_the_copy(datasets_dir, tmp_path):
    image = cv2.imread(str(sorted((datasets_dir / "webcam-b" / "images").glob("*.jpg"))[0]))
    for name in ("two.png", "faint.png", "none.png"):
        cv2.imwrite(str(tmp_path / name), image)  # PNG: the annotated copy keeps exact colours
    left, right, faint = (40.04, 60.0, 200.0, 260.0), (380.0, 80.0, 560.0, 300.06), (250.0, 100.0, 330.0, 200.0)
    two = FixedDetector([Detection(0.9, left), Detection(0.3, faint), Detection(0.7, right)])
    predict([tmp_path / "two.png"], two, threshold=0.5, out_dir=tmp_path / "out", jsonl=tmp_path / "two.jsonl")
    (row,) = read_jsonl(tmp_path / "two.jsonl")
    assert row == {"image": "two.png", "score": 0.9, "box": [40.0, 60.0, 200.0, 260.0],
                   "faces": [{"score": 0.9, "box": [40.0, 60.0, 200.0, 260.0]},
                             {"score": 0.7, "box": [380.0, 80.0, 560.0, 300.1]}]}
    drawn = cv2.imread(str(tmp_path / "out" / "two.png"))
    for x1, y1, x2, y2 in (left, right):  # both boxes drawn: their left edges are green half-way down
        assert tuple(drawn[int((y1 + y2) / 2), int(x1)]) == FACE_COLOUR
    assert (drawn[150, 250:330] == image[150, 250:330]).all(), "a face below the threshold is not drawn"

    predict([tmp_path / "faint.png"], FixedDetector([Detection(0.3, faint)]), threshold=0.5,
            jsonl=tmp_path / "faint.jsonl")
    assert read_jsonl(tmp_path / "faint.jsonl") == [{"image": "faint.png", "score": 0.3, "box": None, "faces": []}]
    summary = predict([tmp_path / "none.png"], FixedDetector([]), threshold=0.5, jsonl=tmp_path / "none.jsonl")
    assert read_jsonl(tmp_path / "none.jsonl") == [{"image": "none.png", "score": 0.0, "box": None, "faces": []}]
    assert (summary.faces, summary.face_boxes) == (0, 0)


def test_video_one_line_per_frame(video_of, detector, tmp_path):
    video = video_of("webcam-a", frames=12)
    summary = predict([video], detector, threshold=0.5, out_dir=tmp_path / "out", jsonl=tmp_path / "v.jsonl")
    rows = read_jsonl(tmp_path / "v.jsonl")
    assert summary.frames == 12 and summary.images == 0
    assert [r["frame"] for r in rows] == list(range(12))
    assert {r["image"] for r in rows} == {video.name}
    for row in rows:  # per-frame detections, each frame on its own (no track ids)
        check_row(row, 640, 480, threshold=0.5)
    assert summary.face_boxes == sum(len(r["faces"]) for r in rows)
    annotated = tmp_path / "out" / f"{video.stem}.avi"
    assert count_video_frames(annotated) == 12
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_corrupt_files_skipped_and_counted(dataset_copy, detector, tmp_path):
    data = dataset_copy("webcam-c", limit=3, negatives=0)
    images = sorted((data / "images").glob("*.jpg"))
    (data / "images" / "truncated.jpg").write_bytes(images[0].read_bytes()[:5000])
    (data / "images" / "not-an-image.jpg").write_text("hello")
    warnings = []
    summary = predict([data / "images"], detector, out_dir=tmp_path / "out", jsonl=tmp_path / "p.jsonl",
                      warn=warnings.append)
    assert summary.images == 3 and len(summary.skipped) == 2 and len(warnings) == 2
    assert any("truncated.jpg" in w for w in warnings) and any("not-an-image.jpg" in w for w in warnings)
    assert len(read_jsonl(tmp_path / "p.jsonl")) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in images)


def test_refuses_to_overwrite(dataset_copy, detector, tmp_path):
    data = dataset_copy("webcam-c", limit=2, negatives=0)
    predict([data / "images"], detector, out_dir=tmp_path / "out", jsonl=tmp_path / "p.jsonl")
    before = (tmp_path / "p.jsonl").read_bytes()
    with pytest.raises(FacetrackerError, match="already exist"):
        predict([data / "images"], detector, out_dir=tmp_path / "out2", jsonl=tmp_path / "p.jsonl")
    with pytest.raises(FacetrackerError, match="already exist"):
        predict([data / "images"], detector, out_dir=tmp_path / "out")
    assert (tmp_path / "p.jsonl").read_bytes() == before and not (tmp_path / "out2").exists()
    predict([data / "images"], detector, out_dir=tmp_path / "out", jsonl=tmp_path / "p.jsonl", force=True)
    originals = {p.name: p.read_bytes() for p in (data / "images").iterdir()}
    with pytest.raises(FacetrackerError, match="replace an input"):
        predict([data / "images"], detector, out_dir=data / "images", force=True)
    assert {p.name: p.read_bytes() for p in (data / "images").iterdir()} == originals


def test_cli_predict(dataset_copy, tiny_exports, trained_model, tmp_path):
    runner = CliRunner()
    data = dataset_copy("webcam-c", limit=3, negatives=1)
    (data / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out, jsonl = tmp_path / "out", tmp_path / "p.jsonl"
    ok = runner.invoke(app, ["predict", str(data / "images"), "--model", str(tiny_exports("onnx").path),
                             "--out", str(out), "--jsonl", str(jsonl)])
    assert ok.exit_code == 0, ok.output
    assert "4 images" in ok.output and "1 skipped" in ok.output and "broken.jpg" in ok.output
    rows = read_jsonl(jsonl)
    assert len(rows) == 4 and all("faces" in row for row in rows)
    assert f"{sum(len(row['faces']) for row in rows)} faces in" in ok.output

    unreadable = runner.invoke(app, ["predict", str(data / "images" / "broken.jpg"), "--model",
                                     str(tiny_exports("onnx").path), "--out", str(tmp_path / "out3")])
    assert unreadable.exit_code == 2, unreadable.output  # nothing read: a failure, not "0 images"
    assert unreadable.output.strip().splitlines()[-1].startswith("error: none of the 1 inputs could be read")

    missing = runner.invoke(app, ["predict", str(tmp_path / "nope.jpg"), "--model", str(trained_model)])
    assert missing.exit_code == 2 and "source not found" in missing.output
    assert len(missing.output.strip().splitlines()) == 1

    bad_model = runner.invoke(app, ["predict", str(data / "images"), "--model", str(tmp_path / "none.keras"),
                                    "--out", str(tmp_path / "o2")])
    assert bad_model.exit_code == 2 and "not found" in bad_model.output
    assert len(bad_model.output.strip().splitlines()) == 1

    legacy = tmp_path / "old.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    h5 = runner.invoke(app, ["predict", str(data / "images"), "--model", str(legacy), "--out", str(tmp_path / "o3")])
    assert h5.exit_code == 2 and "--unsafe" in h5.output and len(h5.output.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
