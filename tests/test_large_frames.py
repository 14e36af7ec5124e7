"""Full-HD webcams and phones: 1920x1080 and portrait 1080x1920 frames through label --check, split, augment,
evaluate and predict.

The shared 960x540 sets were scaled down from such cameras; here real frames of two of them are scaled back up
to 1920x1080, and some are also turned to portrait, with their labelme rectangles transformed the same way. The
same frames at their stored size (landscape 960x540, portrait 540x960) are the reference: a command that cares
about the frame size gives different answers for the two."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from clihelp import cli
from conftest import copy_dataset
from facetracker import config

PARTS = ("train", "val", "test")
LANDSCAPE = ("webcam-l", 6, 2)  # data set, faces, negatives: 960x540 frames -> 1920x1080
PORTRAIT = ("webcam-o", 4, 1)  # 960x540 -> 1920x1080, turned a quarter clockwise -> 1080x1920
FACES, NEGATIVES = LANDSCAPE[1] + PORTRAIT[1], LANDSCAPE[2] + PORTRAIT[2]


def transform_label(label: dict, scale: float, rotate: bool, size: tuple[int, int]) -> dict:
    """The labelme file of the frame scaled by `scale` (then turned clockwise), for the new (width, height)."""
    height_before_turn = size[0] if rotate else size[1]
    for shape in label["shapes"]:
        points = [(x * scale, y * scale) for x, y in shape["points"]]
        # Clockwise quarter turn of a W x H frame: (x, y) -> (H - y, x), in the new H x W frame.
        shape["points"] = [[height_before_turn - y, x] if rotate else [x, y] for x, y in points]
    label.update(imageWidth=size[0], imageHeight=size[1], imageData=None)
    return label


def write_frames(src: Path, dest: Path, scale: float, rotate: bool) -> None:
    """Every image of src/ (data layout) scaled (and turned), with its label transformed, into dest/."""
    for folder in ("images", "labels"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    for image_path in sorted((src / "images").glob("*.jpg")):
        image = cv2.imread(str(image_path))
        if scale != 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        if rotate:
            image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
        cv2.imwrite(str(dest / "images" / image_path.name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        label_path = src / "labels" / f"{image_path.stem}.json"
        if label_path.exists():
            label = transform_label(json.loads(label_path.read_text()), scale, rotate,
                                    (image.shape[1], image.shape[0]))
            (dest / "labels" / label_path.name).write_text(json.dumps(label))


@pytest.fixture(scope="module")
def frames(tmp_path_factory, datasets_dir) -> dict[str, Path]:
    """{"big": folder of 1920x1080 + 1080x1920 frames, "small": the same at 960x540 + 540x960} (data layout),
    and "sizes": {image name: (width, height) of its big frame}."""
    root = tmp_path_factory.mktemp("large-frames")
    folders = {"big": root / "big", "small": root / "small"}
    for (name, faces, negatives), rotate in ((LANDSCAPE, False), (PORTRAIT, True)):
        source = copy_dataset(name, root / f"source-{name}", limit=faces, negatives=negatives)
        write_frames(source, folders["big"], 2.0, rotate)
        write_frames(source, folders["small"], 1.0, rotate)
    return folders


def frame_sizes(images: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (cv2.imread(str(p)).shape[1], cv2.imread(str(p)).shape[0]) for p in sorted(images.glob("*.jpg"))}


def boxes_in(record, key: str = "") -> list[list[float]]:
    """Every [x1, y1, x2, y2] held under a key naming a box ("box", "bbox", "boxes"...) anywhere in a JSON
    record: one box per image today, several per image once the model finds several faces."""
    if isinstance(record, dict):
        return [box for name, value in record.items() for box in boxes_in(value, name)]
    if isinstance(record, list):
        if "box" in key and len(record) == 4 and all(isinstance(v, (int, float)) for v in record):
            return [record]
        return [box for value in record for box in boxes_in(value, key)]
    return []


def test_the_frames_are_what_the_test_says(frames):
    sizes = frame_sizes(frames["big"] / "images")
    assert sorted(set(sizes.values())) == [(1080, 1920), (1920, 1080)]
    assert list(sizes.values()).count((1080, 1920)) == PORTRAIT[1] + PORTRAIT[2]
    for label_path in (frames["big"] / "labels").glob("*.json"):
        label = json.loads(label_path.read_text())
        width, height = sizes[f"{label_path.stem}.jpg"]
        assert (label["imageWidth"], label["imageHeight"]) == (width, height)
        for shape in label["shapes"]:
            assert all(-2 <= x <= width + 2 and -2 <= y <= height + 2 for x, y in shape["points"])


def test_label_check_counts_big_frames(frames):
    big = frames["big"]
    result = cli("label", "--check", "--images", str(big / "images"), "--labels", str(big / "labels"))
    assert result.exit_code == 0, result.output
    assert f"usable: {FACES} images with a face and {NEGATIVES} negatives" in result.stdout
    for quirk in ("labels whose image size differs", "boxes with no area"):
        row = next(line for line in result.stdout.splitlines() if quirk in line)
        assert row.rstrip(" │").endswith(" 0"), row  # the transformed labels match their big frames


def test_split_then_augment_big_frames(frames, tmp_path):
    data = Path(shutil.copytree(frames["big"], tmp_path / "data"))
    sizes = frame_sizes(data / "images")
    result = cli("split", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert not list((data / "images").iterdir())
    placed = {p.name: part for part in PARTS for p in (data / part / "images").glob("*.jpg")}
    assert sorted(placed) == sorted(sizes)
    assert sum(len(list((data / part / "labels").glob("*.json"))) for part in PARTS) == FACES
    assert all(frame_sizes(data / part / "images").items() <= sizes.items() for part in PARTS)  # moved untouched

    out = tmp_path / "aug"
    result = cli("augment", "--data", str(data), "--out", str(out), "--variants", "2", "--workers", "1",
                 "--background-crops", "1", "--pastes", "1")
    assert result.exit_code == 0, result.output
    side = config.AUG_IMAGE_SIZE
    for name, part in placed.items():
        stem = Path(name).stem
        for k in range(2):  # both variants of every big frame, each a square of the training size
            image = cv2.imread(str(out / part / "images" / f"{stem}.{k}.jpg"))
            assert image is not None and image.shape == (side, side, 3), (name, k)
    labels = [json.loads(p.read_text()) for p in out.glob("*/labels/*.json")]
    assert len(labels) == len(list(out.glob("*/images/*.jpg"))) >= 2 * len(sizes)
    face_boxes = [box for label in labels if label.get("class", 1) for box in boxes_in(label)]
    assert len(face_boxes) >= FACES  # most variants keep their face; every pasted copy has one
    for x1, y1, x2, y2 in face_boxes:  # normalised to the square, whatever the frame was
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


def evaluate(folder: Path, out: Path) -> dict:
    result = cli("evaluate", "--data", str(folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    return json.loads((out / "evaluation.json").read_text())


def test_evaluate_big_frames_like_the_small_ones(frames, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models/facetracker.keras here: the bundled model runs
    big = evaluate(frames["big"], tmp_path / "big")
    small = evaluate(frames["small"], tmp_path / "small")
    assert (big["images"], big["faces"], big["negatives"]) == (FACES + NEGATIVES, FACES, NEGATIVES)
    assert 0.0 <= big["ap50"] <= 1.0
    # The model sees the same picture in both, squashed to its input size: the same faces are found (small
    # differences from resampling, and from the tiles every still image of 1000 px or more is also seen in, which
    # add a few detections to the ranking of the big ones). Truth boxes read in the wrong scale would find none.
    assert big["true_positives"] == pytest.approx(small["true_positives"], abs=1)
    assert big["ap50"] > 0.5 and small["ap50"] > 0.5


def predict_rows(images: Path, out: Path) -> list[dict]:
    result = cli("predict", str(images), "--out", str(out / "annotated"), "--jsonl", str(out / "boxes.jsonl"),
                 "--threshold", "0.3")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (out / "boxes.jsonl").read_text().splitlines()]


def test_predict_boxes_lie_in_the_big_frames(frames, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sizes = frame_sizes(frames["big"] / "images")
    big = predict_rows(frames["big"] / "images", tmp_path / "big")
    small = predict_rows(frames["small"] / "images", tmp_path / "small")
    assert sorted(row["image"] for row in big) == sorted(sizes)
    found = 0
    for row, reference in zip(big, small):
        width, height = sizes[row["image"]]
        boxes = boxes_in(row)
        for x1, y1, x2, y2 in boxes:  # pixels of the big frame, landscape or portrait
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height, (row, width, height)
        found += bool(boxes)
        # The same frame at half the size: the same boxes at half the coordinates (within 3% of the frame).
        if len(boxes) == 1 and len(boxes_in(reference)) == 1:
            scaled = np.array(boxes_in(reference)[0]) * 2
            assert np.abs(np.array(boxes[0]) - scaled).max() <= 0.03 * max(width, height), (row, reference)
    assert found >= 1
    for name, (width, height) in sizes.items():  # annotated copies keep the frame's size
        assert cv2.imread(str(tmp_path / "big" / "annotated" / name)).shape == (height, width, 3)
