"""`facetracker label --prelabel` and `label --check --model` on copies of the real data, with a really trained
model (the tiny webcam-a model of conftest.py, whose scores are modest: thresholds are lowered accordingly)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker import config, labels, prelabel
from facetracker.cli import app
from facetracker.boxes import iou_matrix
from facetracker.inference import Detector, still_faces
from clihelp import table_row
from xdisplay import grab, gui_command, press_to_quit, screenshot, virtual_display, wait_for_window, window_title

runner = CliRunner()
THRESHOLD = "0.3"  # the tiny model scores webcam-a's faces 0.6-0.9 and its empty room ~0.15
MISSING_SCORE = "0.5"


def labelme_label_file(path: Path):
    """labelme's own reader (labelme 5: labelme.label_file.LabelFile; labelme 6: labelme.LabelFile)."""
    try:
        from labelme.label_file import LabelFile
    except ImportError:
        from labelme import LabelFile
    return LabelFile(str(path))


def prelabel_cli(data: Path, model: Path, *extra: str):
    return runner.invoke(app, ["label", "--prelabel", "--no-open", "--model", str(model), "--threshold", THRESHOLD,
                               "--images", str(data / "images"), "--labels", str(data / "labels"), *extra])


def check_cli(data: Path, model: Path | None = None):
    args = ["label", "--check", "--images", str(data / "images"), "--labels", str(data / "labels")]
    if model is not None:
        args += ["--model", str(model), "--threshold", THRESHOLD, "--missing-score", MISSING_SCORE]
    return runner.invoke(app, args)


def finding_lines(output: str, kind: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(kind)]


def findings_listed(output: str) -> list[tuple[str, float | None, str]]:
    """(kind, severity or None, image name) of every finding line `label --check` printed, in order."""
    listed = []
    for line in output.splitlines():
        kind = next((k for k in prelabel.FINDING_KINDS if line.startswith(f"  {k} ")), None)
        if kind:
            words = line[len(kind) + 2:].split()
            severity = None if kind == prelabel.UNREVIEWED else float(words.pop(0))
            listed.append((kind, severity, words[0].rstrip(":")))
    return listed


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- --prelabel


def test_prelabel_writes_labelme_files_for_unlabelled_faces_only(dataset_copy, trained_model):
    data = dataset_copy("webcam-a", limit=10, negatives=4)  # 10 faces, then 4 frames of the empty room
    human = {s.image.stem: s.boxes for s in labels.scan(data / "images", data / "labels").samples}
    label_files = sorted((data / "labels").glob("*.json"))
    kept = label_files[:2]  # two images stay labelled by hand...
    for label in label_files[2:]:  # ...the other eight lose their labels
        label.unlink()
    negative = sorted(p for p in (data / "images").glob("*.jpg") if not human[p.stem])[0]
    explicit_negative = data / "labels" / f"{negative.stem}.json"  # a label file without shapes: a negative too
    explicit_negative.write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": [], "imagePath": "x.jpg",
                                             "imageData": None, "imageHeight": 480, "imageWidth": 640}))
    before = files(data / "labels")

    cli = prelabel_cli(data, trained_model)
    assert cli.exit_code == 0, cli.output
    written = sorted(set(p.name for p in (data / "labels").glob("*.json")) - set(before))
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (data / "labels").iterdir()
            if p.name in before} == before  # existing files untouched, also the empty one
    assert not [p for p in (data / "labels").iterdir() if p.name.startswith(".")]  # no temporary file left
    summary = cli.stdout.strip().splitlines()[0]
    assert summary.startswith(f"pre-labelled {len(written)} images (")
    assert f"left as negatives (no face at score >= {THRESHOLD}); 3 already had a label (not touched)" in summary
    assert cli.stdout.strip().endswith("next: facetracker label (review the predicted boxes), then facetracker "
                                       "label --check")

    unlabelled_faces = {p.stem for p in label_files[2:]}
    negatives = {stem for stem, boxes in human.items() if not boxes} - {negative.stem}
    assert {Path(name).stem for name in written} == unlabelled_faces  # a file for every face, none for the room
    assert "8 images (" in summary and ", 3 left as negatives" in summary
    right = 0
    for name in written:
        label = data / "labels" / name
        raw = json.loads(label.read_text())
        assert set(raw) == {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}
        assert raw["imageData"] is None and raw["flags"] == {}
        assert raw["imagePath"] == f"../images/{label.stem}.jpg"  # relative to the label folder, as labelme writes
        assert (raw["imageWidth"], raw["imageHeight"]) == (640, 480)
        assert oct(label.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        loaded = labelme_label_file(label)  # labelme's own reader: checks the image is there and its size
        assert loaded.shapes and all(s["label"] == "face" and s["shape_type"] == "rectangle" and
                                     s["flags"] == {"predicted": True} and s["group_id"] is None
                                     for s in loaded.shapes)
        boxes = [tuple(x for point in s["points"] for x in point) for s in loaded.shapes]
        assert all(x1 < x2 and y1 < y2 for x1, y1, x2, y2 in boxes)
        right += iou_matrix(human[label.stem], boxes[:1]).max() >= 0.5  # the best box is the face
    assert right >= 7, f"only {right} of 8 pre-labels on the face"
    assert not negatives & {Path(n).stem for n in written}

    scan = labels.scan(data / "images", data / "labels")  # and the project reads them as face labels
    assert scan.faces == 10 and scan.negatives == 4 and not scan.skipped

    again = prelabel_cli(data, trained_model)  # a second run finds nothing to do and changes nothing
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("pre-labelled 0 images (0 face boxes, flagged 'predicted'), 3 left as negatives")
    assert "; 11 already had a label (not touched)" in again.stdout


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_prelabel_folder_from_python_uses_the_face_label_name(dataset_copy, trained_model, tmp_path):
    data = dataset_copy("webcam-a", limit=3, negatives=1)
    detector = Detector.load(trained_model)
    advanced = []
    summary = prelabel.prelabel_folder(detector, data / "images", tmp_path / "new" / "labels", "Semih", 0.3,
                                       progress=advanced.append)
    assert len(summary.prelabelled) == 3 and len(summary.negatives) == 1 and not summary.kept
    assert sum(advanced) == summary.images == 4 and summary.seconds > 0
    shapes = [s for p in summary.prelabelled for s in json.loads(p.read_text())["shapes"]]
    assert {s["label"] for s in shapes} == {"Semih"} and len(shapes) == summary.boxes
    assert all(s["description"].startswith("facetracker score 0.") for s in shapes)
    # a label file appearing between the check and the write (labelme open on the folder) wins
    target = tmp_path / "taken.json"
    target.write_text("mine")
    assert prelabel.write_new_json(target, {"shapes": []}) is False
    assert target.read_text() == "mine" and [p.name for p in tmp_path.iterdir() if p.is_file()] == ["taken.json"]


def test_prelabel_needs_a_display_unless_no_open_and_writes_nothing(dataset_copy, trained_model, monkeypatch):
    data = dataset_copy("webcam-a", limit=0, negatives=2)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cli = runner.invoke(app, ["label", "--prelabel", "--model", str(trained_model), "--images", str(data / "images"),
                              "--labels", str(data / "labels")])
    assert cli.exit_code == 2
    line = one_error_line(cli)
    assert line.startswith("error: labelme needs a display, and no display")
    assert line.endswith("or pass --no-open to only write the pre-labels")
    assert not list((data / "labels").iterdir())


@pytest.mark.parametrize("args, message", [
    (["--check", "--prelabel"], "error: --check and --prelabel do different things — run facetracker label "
                                "--prelabel first, then facetracker label --check"),
    (["--no-open"], "error: --no-open only applies to --prelabel"),
    (["--model", "m.keras"], "error: --model is used by --prelabel and --check"),
])
def test_label_options_that_do_not_go_together(tmp_path, args, message):
    cli = runner.invoke(app, ["label", "--images", str(tmp_path), "--labels", str(tmp_path), *args])
    assert cli.exit_code == 2
    assert one_error_line(cli).startswith(message)


def test_prelabel_with_a_missing_model_is_one_clear_error(dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=0, negatives=1)
    cli = runner.invoke(app, ["label", "--prelabel", "--no-open", "--model", str(tmp_path / "nope.keras"),
                              "--images", str(data / "images"), "--labels", str(data / "labels")])
    assert cli.exit_code == 2
    assert one_error_line(cli).startswith(f"error: model not found: {tmp_path / 'nope.keras'}")


def test_prelabel_of_a_folder_of_unreadable_images_fails(tmp_path, trained_model):
    images = tmp_path / "images"
    images.mkdir()
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cli = runner.invoke(app, ["label", "--prelabel", "--no-open", "--model", str(trained_model),
                              "--images", str(images), "--labels", str(tmp_path / "labels")])
    assert cli.exit_code == 2, cli.output  # nothing could be read: an error, not "pre-labelled 0 images"
    assert cli.output.strip().splitlines()[-1].startswith("error: none of the 1 images could be read")
    assert not list((tmp_path / "labels").glob("*.json"))

    check = runner.invoke(app, ["label", "--check", "--model", str(trained_model),
                                "--images", str(images), "--labels", str(tmp_path / "labels")])
    assert check.exit_code == 2 and "agrees" not in check.output  # nothing was read, so nothing was checked
    assert check.output.strip().splitlines()[-1].startswith("error: no usable image")


# ---------------------------------------------------------------- --check --model


def agreed_samples(data: Path, detector: Detector) -> list[tuple[labels.Sample, float]]:
    """Labelled images where the model's best face is confident and on the human box: (sample, its score)."""
    agreed = []
    for sample in labels.scan(data / "images", data / "labels").samples:
        found = still_faces(detector, cv2.imread(str(sample.image)), config.MIN_SCORE)  # as the check sees it
        if sample.has_face and found and found[0].score >= float(MISSING_SCORE) + 0.05 and \
                iou_matrix(sample.boxes, [found[0].box]).max() >= 0.5:
            agreed.append((sample, found[0].score))
    return agreed


def test_check_names_a_planted_missing_label_and_a_swapped_label(dataset_copy, trained_model):
    data = dataset_copy("webcam-a", limit=12, negatives=3)
    detector = Detector.load(trained_model)
    agreed = [s for s, _ in agreed_samples(data, detector)]
    assert len(agreed) >= 6, "the tiny model should find most faces it was trained on"
    # swap the labels of the two agreed images whose faces are furthest apart (two files filed under each
    # other's names), and delete the label of a third (a face left unlabelled)
    a, b = min(((a, b) for i, a in enumerate(agreed) for b in agreed[i + 1:]),
               key=lambda pair: iou_matrix(pair[0].boxes, pair[1].boxes).max())
    assert iou_matrix(a.boxes, b.boxes).max() < 0.1
    a_text, b_text = a.label.read_text(), b.label.read_text()
    a.label.write_text(b_text)
    b.label.write_text(a_text)
    missing = next(s for s in agreed if s not in (a, b))
    missing.label.unlink()

    cli = check_cli(data, trained_model)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, "unlabelled, the model sees a face (score >= 0.5)") == 1
    assert table_row(cli.stdout, "labels the model's best box misses (IoU < 0.3)") == 2
    assert table_row(cli.stdout, "boxes still marked predicted (not reviewed)") == 0
    listed = findings_listed(cli.stdout)
    assert [name for kind, _, name in listed if kind == prelabel.MISSING_LABEL] == [missing.image.name]
    assert sorted(name for kind, _, name in listed if kind == prelabel.MISPLACED) == sorted([a.image.name,
                                                                                             b.image.name])
    assert "no face box, but the model sees a face (score 0." in finding_lines(cli.stdout, prelabel.MISSING_LABEL)[0]
    assert all("a misplaced box, or a label filed under another image's name" in line
               for line in finding_lines(cli.stdout, prelabel.MISPLACED))
    severities = [severity for _, severity, _ in listed]
    assert severities == sorted(severities, reverse=True)  # worst first
    named = {name for _, _, name in listed}
    assert not named & {s.image.name for s in agreed if s not in (a, b, missing)}  # no false alarm on the rest

    # the same from Python, for scripts and the benchmark
    findings = prelabel.find_label_mistakes(detector, data / "images", data / "labels", threshold=0.3,
                                            missing_score=0.5)
    by_kind = {kind: sorted(f.image.name for f in findings if f.kind == kind) for kind in prelabel.FINDING_KINDS}
    assert by_kind[prelabel.MISSING_LABEL] == [missing.image.name]
    assert by_kind[prelabel.MISPLACED] == sorted([a.image.name, b.image.name])
    misfiled = next(f for f in findings if f.image == a.image)
    assert misfiled.iou < 0.3 and misfiled.score >= float(MISSING_SCORE) and misfiled.label == a.label


def test_check_flags_a_labelled_image_where_the_model_sees_no_face(dataset_copy, trained_model):
    data = dataset_copy("webcam-a", limit=1, negatives=2)
    face = sorted((data / "labels").glob("*.json"))[0]
    room = sorted(p for p in (data / "images").glob("*.jpg") if p.stem != face.stem)[0]
    (data / "labels" / f"{room.stem}.json").write_text(face.read_text())  # a face label on the empty room
    cli = check_cli(data, trained_model)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, "labelled, the model sees no face (score < 0.3)") == 1
    assert [(kind, name) for kind, _, name in findings_listed(cli.stdout)] == [(prelabel.NO_FACE_SEEN, room.name)]
    assert "has a face box, but the model sees no face (best score 0." in cli.stdout


def test_check_lists_predicted_boxes_until_reviewed(dataset_copy, trained_model):
    data = dataset_copy("webcam-a", limit=3, negatives=1)
    for label in (data / "labels").glob("*.json"):
        label.unlink()
    summary = prelabel.prelabel_folder(Detector.load(trained_model), data / "images", data / "labels",
                                       threshold=0.3)
    assert len(summary.prelabelled) == 3
    cli = check_cli(data)  # no model needed for this row
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, "boxes still marked predicted (not reviewed)") == summary.boxes
    assert [kind for kind, _, _ in findings_listed(cli.stdout)] == [prelabel.UNREVIEWED] * 3
    assert "untick 'predicted'" in cli.stdout

    reviewed = summary.prelabelled[0]  # what labelme saves after the box's 'predicted' is unticked
    data_json = json.loads(reviewed.read_text())
    for shape in data_json["shapes"]:
        shape["flags"]["predicted"] = False
    reviewed.write_text(json.dumps(data_json))
    cli = check_cli(data)
    assert cli.exit_code == 0, cli.output
    left = [name for kind, _, name in findings_listed(cli.stdout) if kind == prelabel.UNREVIEWED]
    assert len(left) == 2 and f"{reviewed.stem}.jpg" not in left


# ---------------------------------------------------------------- labelme's real window on pre-labels


def drawn_rectangle(screen: np.ndarray, color: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Where labelme drew a rectangle in `color`: (x1, y1, x2, y2) of its edge lines on the screen.

    The largest connected group of pixels of that colour is the rectangle (the label lists' colour dots are small);
    its edges are the rows and columns that colour covers over most of the group's width or height (the corner
    handles stick out a few pixels beyond the lines)."""
    mask = (np.abs(screen.astype(int) - color).max(axis=-1) <= 40).astype(np.uint8)
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    assert count > 1, "no pixel of the box colour on the screen"
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_WIDTH] * stats[1:, cv2.CC_STAT_HEIGHT]))
    group = components == biggest
    rows = np.flatnonzero(group.sum(axis=1) > 0.6 * stats[biggest, cv2.CC_STAT_WIDTH])
    columns = np.flatnonzero(group.sum(axis=0) > 0.6 * stats[biggest, cv2.CC_STAT_HEIGHT])
    assert rows.size and columns.size, "the biggest group of the box colour is not a rectangle"
    return int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())


def test_real_labelme_window_shows_the_prelabelled_boxes(dataset_copy, trained_model, tmp_path):
    import imgviz

    data = dataset_copy("webcam-a", limit=2, negatives=0)
    for label in (data / "labels").glob("*.json"):
        label.unlink()  # two real images of a face, unlabelled
    first = sorted((data / "images").glob("*.jpg"))[0]
    with virtual_display() as display:
        with gui_command(["label", "--prelabel", "--model", str(trained_model), "--threshold", THRESHOLD,
                          "--images", str(data / "images"), "--labels", str(data / "labels")], display,
                         home=tmp_path / "home") as process:
            window = wait_for_window(display, "^Labelme - ", timeout=180, process=process)  # model load + labelme
            assert window_title(display, window).endswith(f"{first.name} [1/2]")
            label = json.loads((data / "labels" / f"{first.stem}.json").read_text())
            (x1, y1), (x2, y2) = label["shapes"][0]["points"]
            color = tuple(int(c) for c in imgviz.label_colormap()[1])  # labelme's colour of the first label name
            deadline = time.monotonic() + 20
            while True:  # the window maps before the image and its shapes are painted
                screen = grab(display)
                try:
                    sx1, sy1, sx2, sy2 = drawn_rectangle(screen, color)
                    if sx2 - sx1 > 40:
                        break
                except AssertionError:
                    pass
                assert time.monotonic() < deadline, "labelme drew no box"
                time.sleep(0.5)
            screenshot(display, tmp_path / "labelme-prelabelled.png")
            stdout, stderr = press_to_quit(display, window, process, "ctrl+q")
    assert process.returncode == 0, stderr
    assert stdout.startswith("pre-labelled 2 images (")
    assert f"labelme closed: 2 of 2 images in {data / 'images'} have a label" in stdout

    # the rectangle on the screen is the pre-label: same shape, and where it lies on the displayed image
    scale_x, scale_y = (sx2 - sx1) / (x2 - x1), (sy2 - sy1) / (y2 - y1)
    assert scale_x == pytest.approx(scale_y, rel=0.05)
    scale = (scale_x + scale_y) / 2
    left, top = sx1 - x1 * scale, sy1 - y1 * scale  # where the image's corner is on the screen
    image = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB)
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    shown = screen[round(top):round(top) + h, round(left):round(left) + w].astype(int)
    expected = cv2.resize(image, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_AREA).astype(int)
    assert shown.shape[:2] == (h, w)
    # The real photo is there at that zoom: 5.6 grey levels from it on average (Qt's scaling vs INTER_AREA, and the
    # box lines); the same check 5 px to the side gives 12, 30 px 28.
    assert np.abs(shown - expected).mean() < 9
