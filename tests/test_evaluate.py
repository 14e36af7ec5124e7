"""evaluate: metrics on hand-computed cases (no model), COCO agreement, then a real labelme folder end to end."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker.cli import app
from facetracker.draw import FACE_COLOUR, MISS_COLOUR
from facetracker.errors import FacetrackerError
from facetracker.boxes import box_iou, iou_matrix
from facetracker.evaluate import (TRUTH_ORANGE, _tile_order, average_precision, coco_average_precision, draw_row,
                                  evaluate_folder, match_detections, metrics, precision_recall_curve, write_report)
from facetracker.inference import Detector
from facetracker.labels import resolve_face_labels, scan

# ---------------------------------------------------------------- metrics by hand


def test_box_iou_hand_computed_pixels():
    truth = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [100, 100, 300, 200]]
    pred = [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [150, 100, 300, 200]]
    # half overlap: 50 / (100 + 100 - 50); identical; disjoint; 150x100 inside 200x100
    np.testing.assert_allclose(box_iou(truth, pred), [1 / 3, 1.0, 0.0, 0.75], atol=1e-6)
    # Every pair: rows are the first argument's boxes. A box without area overlaps nothing.
    np.testing.assert_allclose(iou_matrix(truth[:2], pred[:3]), [[1 / 3, 1, 0], [1 / 3, 1, 0]], atol=1e-6)
    assert iou_matrix([[5, 5, 5, 5]], [[5, 5, 5, 5]])[0, 0] == 0.0
    assert iou_matrix([], [[0, 0, 1, 1]]).shape == (0, 1)


def test_greedy_matching_one_face_once_best_score_first():
    faces = [[0, 0, 10, 10], [12, 0, 22, 10]]
    # d0 (0.6) overlaps face 0 fully; d1 (0.9) overlaps face 0 at 90/110 and face 1 not at all;
    # d2 (0.8) is a second detection of face 0 (IoU 0.8); d3 (0.7) hits face 1 at IoU 0.5 exactly.
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 8], [12, 0, 22, 5]]
    scores = [0.6, 0.9, 0.8, 0.7]
    # Score order d1, d2, d3, d0: d1 takes face 0; d2 and d0 find it taken (duplicates: false positives) even
    # though d0 overlaps it better; d3 takes face 1 (IoU >= 0.5 counts).
    np.testing.assert_array_equal(match_detections(faces, scores, boxes), [False, True, False, True])
    # A detection takes the free face it overlaps most, not the first one listed.
    np.testing.assert_array_equal(match_detections([[0, 0, 10, 10], [2, 0, 12, 10]], [0.9, 0.8],
                                                   [[2, 0, 12, 10], [0, 0, 10, 10]]), [True, True])
    assert match_detections([], [0.9], [[0, 0, 1, 1]]).tolist() == [False]  # a negative image
    assert match_detections(faces, [], []).shape == (0,)


def test_average_precision_hand_computed_ranking():
    # Ranked: TP, FP, TP, FP, TP with 4 faces (one never found).
    # precision 1, 1/2, 2/3, 2/4, 3/5 at recall 1/4, 1/4, 2/4, 2/4, 3/4.
    # Interpolated (best precision at this recall or beyond): 1, 2/3, 2/3, 3/5, 3/5.
    # AP = 1/4 * 1 + 1/4 * 2/3 + 1/4 * 3/5 = 17/30.
    scores = [0.5, 0.9, 0.6, 0.8, 0.7]  # given unsorted on purpose
    correct = [True, True, False, False, True]
    assert average_precision(scores, correct, faces=4) == pytest.approx(17 / 30)
    curve = precision_recall_curve(scores, correct, faces=4)
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(curve.recall, [1 / 4, 1 / 4, 2 / 4, 2 / 4, 3 / 4])
    np.testing.assert_allclose(curve.scores, [0.9, 0.8, 0.7, 0.6, 0.5])


def test_average_precision_edge_cases():
    assert average_precision([0.9, 0.1], [True, True], faces=2) == pytest.approx(1.0)
    assert average_precision([0.9, 0.1], [False, False], faces=2) == 0.0
    assert average_precision([], [], faces=2) == 0.0  # faces but no detection at all
    # A false positive ranked above both true positives: precision 1/2 then 2/3 at recall 1/2 and 1;
    # interpolation lifts the first to 2/3, so AP = 1/2 * 2/3 + 1/2 * 2/3.
    assert average_precision([0.9, 0.8, 0.7], [False, True, True], faces=2) == pytest.approx(2 / 3)
    assert average_precision([0.5], [False], faces=0) is None  # only negatives: AP is undefined


# Four images, several faces each, checked by hand below.
FACES_A, FACES_B = [[0, 0, 10, 10], [20, 0, 30, 10]], [[0, 0, 10, 10]]
HAND_TRUTHS = [FACES_A, FACES_B, [], [[50, 50, 60, 60]]]  # image 3 is a negative, image 4's face is never found
HAND_SCORES = [[0.9, 0.8, 0.6], [0.7, 0.3], [0.5], []]
HAND_BOXES = [
    [[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 8]],  # face A exactly; A again (IoU 0.82, A taken); B at IoU 0.8
    [[5, 0, 15, 10], [0, 0, 10, 8]],  # the face at IoU 1/3 (too low); the face at IoU 0.8
    [[0, 0, 10, 10]],  # anything on a negative is a false positive
    [],
]


def test_multi_face_metrics_hand_computed():
    report = metrics(HAND_TRUTHS, HAND_SCORES, HAND_BOXES, threshold=0.5)
    # All six detections ranked: 0.9 TP, 0.8 FP (duplicate), 0.7 FP (IoU 1/3), 0.6 TP, 0.5 FP (negative), 0.3 TP.
    # 4 faces. precision 1, 1/2, 1/3, 2/4, 2/5, 3/6 at recall 1/4, 1/4, 1/4, 2/4, 2/4, 3/4.
    # Interpolated (best precision at this recall or beyond): 1, 1/2, 1/2, 1/2, 1/2, 1/2.
    # AP = 1/4 * 1 (recall 0 -> 1/4) + 1/4 * 1/2 (1/4 -> 2/4) + 1/4 * 1/2 (2/4 -> 3/4) = 1/2.
    assert report["ap50"] == pytest.approx(0.5)
    # At threshold 0.5 (>= counts): 0.9 TP, 0.8 FP, 0.7 FP, 0.6 TP, 0.5 FP; the 0.3 detection does not count.
    assert (report["true_positives"], report["false_positives"], report["false_negatives"]) == (2, 3, 2)
    assert report["recall"] == pytest.approx(2 / 4)
    assert report["precision"] == pytest.approx(2 / 5)
    assert report["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert report["fp_per_image"] == pytest.approx(3 / 4)
    assert report["fp_rate_negatives"] == pytest.approx(1.0)  # the one negative has a detection >= 0.5
    # Mean IoU of faces found at the threshold: A 1.0 and B 0.8; image 2's face has only IoU 1/3 above the
    # threshold (its 0.8 detection scores 0.3), image 4's none: neither counts.
    assert report["mean_iou"] == pytest.approx(0.9)
    assert (report["faces"], report["images"], report["negatives"], report["detections"]) == (4, 4, 1, 6)

    # A lower threshold lets the 0.3 detection in: image 2's face is found (IoU 0.8 is its best now).
    low = metrics(HAND_TRUTHS, HAND_SCORES, HAND_BOXES, threshold=0.3)
    assert (low["true_positives"], low["recall"]) == (3, pytest.approx(3 / 4))
    assert low["mean_iou"] == pytest.approx((1.0 + 0.8 + 0.8) / 3)
    assert low["ap50"] == report["ap50"]  # AP does not depend on the threshold


def test_threshold_metrics_nothing_flagged():
    report = metrics([[[0, 0, 10, 10]], []], [[0.1], [0.2]], [[[0, 0, 10, 10]], [[0, 0, 5, 5]]], threshold=0.5)
    assert report["precision"] is None  # no detection at all: precision is undefined, not 0 or 1
    assert report["recall"] == 0.0
    assert report["f1"] is None
    assert report["mean_iou"] is None  # no face found
    assert report["fp_per_image"] == 0.0 and report["fp_rate_negatives"] == 0.0
    only_faces = metrics([[[0, 0, 10, 10]]], [[0.9]], [[[0, 0, 10, 10]]], threshold=0.5)
    assert only_faces["fp_rate_negatives"] is None  # no negatives: the rate is undefined


# ---------------------------------------------------------------- COCO AP (pycocotools) agrees


def test_coco_ap_is_one_on_perfect_detections_and_quiet(capsys):
    perfect_boxes = [FACES_A, FACES_B, [], [[50, 50, 60, 60]]]
    coco = coco_average_precision(HAND_TRUTHS, [[0.9, 0.8], [0.7], [], [0.6]], perfect_boxes)
    assert coco["ap50_95"] == pytest.approx(1.0) and coco["ap50"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # pycocotools' progress lines and table are swallowed
    assert coco_average_precision([[]], [[0.9]], [[[0, 0, 1, 1]]])["ap50"] is None  # no faces: undefined
    assert coco_average_precision([FACES_A], [[]], [[]])["ap50_95"] == 0.0  # faces, nothing detected


def test_ap50_agrees_with_pycocotools_on_real_labels(datasets_dir):
    """Real face boxes (webcam-f has images with two faces), detections that jitter them, duplicate them and
    add false positives: our AP@0.5 and COCO's differ only by COCO's 101-point interpolation."""
    rng = np.random.default_rng(0)
    names, _ = resolve_face_labels(datasets_dir / "webcam-f" / "labels")
    every = scan(datasets_dir / "webcam-f" / "images", datasets_dir / "webcam-f" / "labels", names).samples
    samples = every[:59] + [next(s for s in every[59:] if len(s.boxes) > 1)]  # the man and the child at the edge
    assert any(len(s.boxes) > 1 for s in samples) and any(not s.has_face for s in samples)
    truths, scores, boxes = [], [], []
    for sample in samples:
        faces = np.asarray(sample.boxes, np.float64).reshape(-1, 4)
        sizes = np.tile(faces[:, 2:] - faces[:, :2], 2)
        found = faces + rng.normal(0, 0.15, faces.shape) * sizes
        again = faces + rng.normal(0, 0.1, faces.shape) * sizes  # second detections of the same faces
        stray = rng.uniform(0, 500, (rng.poisson(0.5), 2))
        truths.append(faces)
        boxes.append(np.concatenate([found, again[: rng.integers(0, 2)], np.hstack([stray, stray + 90])]))
        scores.append(rng.uniform(0.05, 1.0, len(boxes[-1])))
    ours = metrics(truths, scores, boxes)["ap50"]
    coco = coco_average_precision(truths, scores, boxes)
    assert 0.3 < ours < 0.95  # a case where the interpolation could matter
    assert ours == pytest.approx(coco["ap50"], abs=0.02)
    assert coco["ap50_95"] < coco["ap50"]


# ---------------------------------------------------------------- drawing


def test_grid_draws_labels_orange_and_detections_by_match():
    row = {"image": "x.jpg", "truth": [[10, 10, 60, 60]], "face_ious": [0.9], "faces_found": 1,
           "detections": [{"score": 0.9, "box": [12, 12, 60, 60], "iou": 0.9, "matched": True},
                          {"score": 0.7, "box": [100, 100, 150, 150], "iou": 0.0, "matched": False},
                          {"score": 0.2, "box": [160, 20, 190, 50], "iou": 0.0, "matched": False}]}
    frame = draw_row(np.zeros((200, 200, 3), np.uint8), row, threshold=0.5)
    assert tuple(frame[35, 10]) == TRUTH_ORANGE  # left edge of the label
    assert tuple(frame[30, 12]) == FACE_COLOUR
    assert tuple(frame[125, 100]) == MISS_COLOUR  # a detection matching no face
    assert not frame[20:50, 158:192].any()  # below the threshold: not drawn
    # Mistakes (a missed face, a false positive) come first in the grid, then folder order.
    clean = {**row, "detections": row["detections"][:1]}
    missed = {**clean, "faces_found": 0, "detections": []}
    rows = [clean, row, missed, clean]
    order = _tile_order({"per_image": rows, "threshold": 0.5})
    assert [rows.index(r) for r in order[:2]] == [1, 2] and order[2:] == [clean, clean]


# ---------------------------------------------------------------- a real folder end to end


@pytest.fixture
def eval_folder(dataset_copy):
    """12 real webcam-b images (incl. 2 negatives), one with a second face, plus labelme quirks."""
    data = dataset_copy("webcam-b", limit=10, negatives=2)
    images = sorted((data / "images").glob("*.jpg"))
    # A face label with reversed corners (as in the real webcam-b data) and a corrupt image.
    label_path = data / "labels" / f"{images[0].stem}.json"
    label = json.loads(label_path.read_text())
    (a, b) = label["shapes"][0]["points"]
    label["shapes"][0]["points"] = [b, a]
    label_path.write_text(json.dumps(label))
    (data / "images" / "broken.jpg").write_bytes(images[1].read_bytes()[:3000])
    # A second face box in one image (another image's face box: the detector is not expected to find it).
    label_path = data / "labels" / f"{images[3].stem}.json"
    label = json.loads(label_path.read_text())
    label["shapes"].append({**label["shapes"][0], "points": [[500, 20], [620, 150]]})
    label_path.write_text(json.dumps(label))
    # A portrait image of another size whose label box is still in its own pixels.
    portrait = cv2.imread(str(images[2]))[:, 160:480]
    cv2.imwrite(str(data / "images" / "portrait.jpg"), portrait)
    shutil.copy(data / "labels" / f"{images[2].stem}.json", data / "labels" / "portrait.json")
    label = json.loads((data / "labels" / "portrait.json").read_text())
    label["imageWidth"], label["imageData"] = 320, None
    label["shapes"][0]["points"] = [[max(0, x - 160), y] for x, y in label["shapes"][0]["points"]]
    (data / "labels" / "portrait.json").write_text(json.dumps(label))
    return data


def test_evaluate_folder_on_real_data(eval_folder, tiny_exports, tmp_path):
    detector = Detector.load(tiny_exports("tflite").path)
    report = evaluate_folder(detector, eval_folder / "images", eval_folder / "labels", ("face",), threshold=0.5)

    # 11 face images (one with two faces) + 2 negatives; broken.jpg skipped and reported
    assert (report["images"], report["face_images"], report["faces"], report["negatives"]) == (13, 11, 12, 2)
    assert len(report["skipped"]) == 1 and "broken.jpg" in report["skipped"][0]
    assert report["runtime"] == "tflite" and report["image_size"] == 64
    assert report["latency_ms"] > 0
    for key in ("ap50", "ap50_95", "mean_iou", "recall", "precision", "f1", "fp_per_image", "fp_rate_negatives"):
        assert report[key] is None or 0.0 <= report[key] <= (1.0 if key != "fp_per_image" else 32), key

    # The summary is exactly what the metric functions give on the detector's own detections of every image, each
    # seen as a still image (as it is and mirrored), as predict sees a photo.
    samples = scan(eval_folder / "images", eval_folder / "labels").samples
    found = [detector.detect_still(cv2.imread(str(s.image))) for s in samples]
    again = metrics([s.boxes for s in samples], [[d.score for d in f] for f in found],
                    [[d.box for d in f] for f in found], threshold=0.5)
    for key, value in again.items():
        assert report[key] == pytest.approx(value, abs=1e-4), key
    assert report["detections"] == sum(len(f) for f in found)
    assert report["ap50"] == pytest.approx(report["coco_ap50"], abs=0.02)

    # The rows hold every detection at/above the threshold, so the threshold counts are recomputable from them.
    rows = report["per_image"]
    flagged = [d for r in rows for d in r["detections"] if d["score"] >= 0.5]
    assert report["true_positives"] == sum(r["faces_found"] for r in rows) == sum(d["matched"] for d in flagged)
    assert report["false_positives"] == sum(not d["matched"] for d in flagged)
    assert report["negatives_flagged"] == sum(1 for r in rows if not r["truth"] and any(
        d["score"] >= 0.5 for d in r["detections"]))
    # Boxes are in pixels of each image, truth too (reversed corners normalised), IoUs recomputable from them.
    for row in rows:
        width = 320 if row["image"] == "portrait.jpg" else 640
        assert len(row["detections"]) >= min(3, len(found[[s.image.name for s in samples].index(row["image"])]))
        assert len(row["face_ious"]) == len(row["truth"])
        for tx1, ty1, tx2, ty2 in row["truth"]:
            assert tx1 < tx2 and ty1 < ty2 and tx2 <= width
        for d in row["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= 480
            best = iou_matrix(row["truth"], [d["box"]]).max() if row["truth"] else 0.0
            assert d["iou"] == pytest.approx(best, abs=1e-3)
        at_threshold = [d["box"] for d in row["detections"] if d["score"] >= 0.5]
        for truth, iou in zip(row["truth"], row["face_ious"]):
            assert iou == pytest.approx(iou_matrix([truth], at_threshold).max() if at_threshold else 0.0, abs=1e-3)
    assert [len(r["truth"]) for r in rows].count(2) == 1

    paths = write_report(report, tmp_path / "reports")
    assert json.loads(paths["json"].read_text())["ap50"] == report["ap50"]
    curve = cv2.imread(str(paths["curve"]))
    grid = cv2.imread(str(paths["grid"]))
    assert curve is not None and curve.shape[0] > 100
    assert grid is not None and grid.shape[1] == 4 * 240  # 13 images -> 4 columns of 240 px tiles
    with pytest.raises(FacetrackerError, match="already exists"):
        write_report(report, tmp_path / "reports")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted(p.name for p in paths.values())


def test_evaluate_cli(eval_folder, tiny_exports, tmp_path):
    runner = CliRunner()
    model = str(tiny_exports("onnx").path)
    out = tmp_path / "reports"
    result = runner.invoke(app, ["evaluate", "--model", model, "--data", str(eval_folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for word in ("AP@0.5", "AP@[.5:.95]", "mean IoU", "precision", "recall", "F1", "false positives", "per image",
                 "latency"):
        assert word in result.output
    assert "Average Precision" not in result.output and "index created" not in result.output  # pycocotools quiet
    report = json.loads((out / "evaluation.json").read_text())
    assert report["runtime"] == "onnx" and report["images"] == 13 and report["faces"] == 12

    again = runner.invoke(app, ["evaluate", "--model", model, "--data", str(eval_folder), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output and len(again.output.strip().splitlines()) == 1
    forced = runner.invoke(app, ["evaluate", "--model", model, "--data", str(eval_folder), "--out", str(out),
                                 "--force"])
    assert forced.exit_code == 0, forced.output

    missing = runner.invoke(app, ["evaluate", "--model", model, "--data", str(tmp_path / "nope"),
                                  "--out", str(tmp_path / "r2")])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
    assert "not found" in missing.output
