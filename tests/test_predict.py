"""predict: JSONL and annotated copies for real images, folders and a real video; bad input handled."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker.cli import app
from facetracker.errors import FacetrackerError
from facetracker.evaluate import box_iou
from facetracker.inference import Detector
from facetracker.labels import scan
from facetracker.predict import predict
from facetracker.recording import count_video_frames


@pytest.fixture(scope="module")
def detector(tiny_exports):
    return Detector.load(tiny_exports("tflite").path)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_boxes_follow_the_labels(dataset_copy, trained_model, tmp_path):
    # The 12 faces + 4 negatives the tiny model trained on for only 30 steps: its boxes follow the faces
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
        assert set(row) == {"image", "score", "box"} and 0.0 <= row["score"] <= 1.0
        if row["box"] is not None:  # pixels of the 640x480 original, x1 <= x2, y1 <= y2
            x1, y1, x2, y2 = row["box"]
            assert 0 <= x1 <= x2 <= 640 and 0 <= y1 <= y2 <= 480
        else:
            assert row["score"] < 0.5
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
        x1, y1, x2, y2 = rows[name]["box"]  # threshold 0: always a box
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        assert cv2.imread(str(tmp_path / "out" / name)).shape == (height, width, 3)
    # The box is the model's normalised box scaled to each image's own size.
    big = cv2.imread(str(tmp_path / "big.jpg"))  # as predict decoded it (JPEG is lossy)
    scores, boxes = detector.raw(detector.prepare([big]))
    np.testing.assert_allclose(rows["big.jpg"]["box"], boxes[0] * [1280, 720, 1280, 720], atol=0.06)


def test_video_one_line_per_frame(video_of, detector, tmp_path):
    video = video_of("webcam-a", frames=12)
    summary = predict([video], detector, threshold=0.5, out_dir=tmp_path / "out", jsonl=tmp_path / "v.jsonl")
    rows = read_jsonl(tmp_path / "v.jsonl")
    assert summary.frames == 12 and summary.images == 0
    assert [r["frame"] for r in rows] == list(range(12))
    assert {r["image"] for r in rows} == {video.name}
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
    assert len(read_jsonl(jsonl)) == 4

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
