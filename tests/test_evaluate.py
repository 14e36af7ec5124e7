"""evaluate: metrics on hand-computed cases (no model), then a real labelme folder end to end."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker.cli import app
from facetracker.errors import FacetrackerError
from facetracker.evaluate import (average_precision, box_iou, evaluate_folder, metrics, precision_recall_curve,
                                  threshold_counts, write_report)
from facetracker.inference import Detector

# ---------------------------------------------------------------- metrics by hand


def test_box_iou_hand_computed_pixels():
    truth = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [100, 100, 300, 200]]
    pred = [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [150, 100, 300, 200]]
    # half overlap: 50 / (100 + 100 - 50); identical; disjoint; 150x100 inside 200x100
    np.testing.assert_allclose(box_iou(truth, pred), [1 / 3, 1.0, 0.0, 0.75], atol=1e-6)


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
    # A false positive ranked above both true positives: precision 1/2 then 2/3 at recall 1/2 and 1;
    # interpolation lifts the first to 2/3, so AP = 1/2 * 2/3 + 1/2 * 2/3.
    assert average_precision([0.9, 0.8, 0.7], [False, True, True], faces=2) == pytest.approx(2 / 3)
    assert average_precision([0.5], [False], faces=0) is None  # only negatives: AP is undefined


def test_threshold_metrics_hand_computed():
    # 4 face images + 2 negatives, one detection each.
    scores = [0.9, 0.8, 0.7, 0.3, 0.6, 0.2]
    has_face = [True, True, True, True, False, False]
    ious = [0.8, 0.3, 0.6, 0.9, np.nan, np.nan]
    counts = threshold_counts(scores, has_face, ious, threshold=0.5)
    # flagged: 0.9 (TP), 0.8 (IoU 0.3: FP, and its face a FN), 0.7 (TP), 0.6 (negative: FP); 0.3 face missed (FN)
    assert (counts.true_pos, counts.false_pos, counts.false_neg) == (2, 2, 2)
    assert counts.precision == pytest.approx(0.5)
    assert counts.recall == pytest.approx(0.5)
    assert counts.f1 == pytest.approx(0.5)
    assert counts.false_positive_rate == pytest.approx(0.5)  # 1 of 2 negatives above threshold

    report = metrics(scores, has_face, ious, threshold=0.5)
    # ranking: 0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP, 0.3 TP (IoU 0.9 counts for AP, below threshold or not), 0.2 FP
    # precision 1, 1/2, 2/3, 1/2, 3/5 at recall 1/4, 1/4, 2/4, 2/4, 3/4 -> AP 17/30 as above
    assert report["ap50"] == pytest.approx(17 / 30)
    assert report["mean_iou"] == pytest.approx((0.8 + 0.3 + 0.6 + 0.9) / 4)
    assert report["negatives_flagged"] == 1


def test_threshold_metrics_nothing_flagged():
    counts = threshold_counts([0.1, 0.2], [True, False], [0.9, np.nan], threshold=0.5)
    assert counts.precision is None  # no prediction at all: precision is undefined, not 0 or 1
    assert counts.recall == 0.0
    assert counts.f1 is None
    assert counts.false_positive_rate == 0.0


# ---------------------------------------------------------------- a real folder end to end


@pytest.fixture
def eval_folder(dataset_copy):
    """12 real webcam-b images (incl. 2 negatives), plus the labelme quirks evaluate must cope with."""
    data = dataset_copy("webcam-b", limit=10, negatives=2)
    images = sorted((data / "images").glob("*.jpg"))
    # A face label with reversed corners (as in the real webcam-b data) and a corrupt image.
    label_path = data / "labels" / f"{images[0].stem}.json"
    label = json.loads(label_path.read_text())
    (a, b) = label["shapes"][0]["points"]
    label["shapes"][0]["points"] = [b, a]
    label_path.write_text(json.dumps(label))
    (data / "images" / "broken.jpg").write_bytes(images[1].read_bytes()[:3000])
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

    # 10 faces + the portrait + 2 negatives; broken.jpg skipped and reported
    assert (report["images"], report["faces"], report["negatives"]) == (13, 11, 2)
    assert len(report["skipped"]) == 1 and "broken.jpg" in report["skipped"][0]
    assert report["runtime"] == "tflite" and report["image_size"] == 64
    assert report["latency_ms_median"] > 0
    # The summary numbers are exactly what the metric functions give on the per-image rows.
    rows = report["per_image"]
    again = metrics([r["score"] for r in rows], [r["has_face"] for r in rows],
                    [np.nan if r["iou"] is None else r["iou"] for r in rows], threshold=0.5)
    for key in ("true_positives", "false_positives", "false_negatives", "negatives_flagged"):
        assert report[key] == again[key]
    assert report["ap50"] == pytest.approx(again["ap50"], abs=1e-4)
    assert report["true_positives"] + report["false_negatives"] == report["faces"]
    # Boxes are in pixels of each image, truth too (reversed corners normalised), IoU recomputable from them.
    for row in rows:
        width = 320 if row["image"] == "portrait.jpg" else 640
        x1, y1, x2, y2 = row["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= 480
        if row["has_face"]:
            tx1, ty1, tx2, ty2 = row["truth"]
            assert tx1 < tx2 and ty1 < ty2 and tx2 <= width
            assert row["iou"] == pytest.approx(float(box_iou([row["truth"]], [row["box"]])[0]), abs=1e-3)
        else:
            assert row["truth"] is None and row["iou"] is None

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
    for word in ("AP@0.5", "mean IoU", "precision", "recall", "F1", "false positives", "latency"):
        assert word in result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["runtime"] == "onnx" and report["images"] == 13

    again = runner.invoke(app, ["evaluate", "--model", model, "--data", str(eval_folder), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output and len(again.output.strip().splitlines()) == 1
    forced = runner.invoke(app, ["evaluate", "--model", model, "--data", str(eval_folder), "--out", str(out),
                                 "--force"])
    assert forced.exit_code == 0, forced.output

    missing = runner.invoke(app, ["evaluate", "--model", model, "--data", str(tmp_path / "nope"),
                                  "--out", str(tmp_path / "r2")])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
    assert "not found" in missing.output
