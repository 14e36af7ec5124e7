"""`facetracker label`: the real labelme window under a real Xvfb, and `--check` on copies of the real data."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from facetracker import labels
from facetracker.annotate import check_labels, labelme_command, labelme_environment, launch_labelme
from facetracker.cli import app
from facetracker.errors import FacetrackerError
from clihelp import table_row
from xdisplay import gui_command, press_to_quit, screenshot, virtual_display, wait_for_window, window_title, xdotool

runner = CliRunner()


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def check(data: Path, *names: str):
    args = ["label", "--check", "--images", str(data / "images"), "--labels", str(data / "labels")]
    for name in names:
        args += ["--label", name]
    return runner.invoke(app, args)


def edit_label(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def first_label(data: Path) -> Path:
    return sorted((data / "labels").glob("*.json"))[0]


# ---------------------------------------------------------------- label --check


def test_check_webcam_b_reports_two_reversed_rectangles(dataset_copy):
    data = dataset_copy("webcam-b")
    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, "images") == 150
    assert table_row(cli.stdout, "labelled with a 'face' box") == 147
    assert table_row(cli.stdout, "negatives") == 3
    assert table_row(cli.stdout, labels.REVERSED) == 2
    assert table_row(cli.stdout, labels.CLIPPED) == 0
    assert "usable: 147 images with a face and 3 negatives" in cli.stdout

    scan = check_labels(data / "images", data / "labels")  # same answer when called directly
    assert (scan.faces, scan.negatives, scan.quirks[labels.REVERSED]) == (147, 3, 2)
    assert all(s.box[0] < s.box[2] and s.box[1] < s.box[3] for s in scan.samples if s.has_face)  # normalised


def test_check_webcam_f_keeps_one_box_of_a_face_drawn_twice_and_both_faces_of_a_two_face_label(dataset_copy):
    # webcam-f (README): one label boxes the same face twice (IoU 0.98), another has a second box elsewhere.
    data = dataset_copy("webcam-f")
    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.DUPLICATE) == 1
    assert table_row(cli.stdout, labels.SEVERAL) == 1

    scan = check_labels(data / "images", data / "labels")
    twice = next(s for s in scan.samples if s.image.stem.startswith("0a026db6"))
    raw = json.loads(twice.label.read_text())["shapes"]
    assert len(raw) == 2 and len(twice.boxes) == 1
    assert twice.boxes[0] == pytest.approx([v for point in raw[0]["points"] for v in point])  # the first box drawn
    two = next(s for s in scan.samples if s.image.stem.startswith("223396cc"))
    assert len(two.boxes) == 2
    assert scan.faces == 110 and sum(len(s.boxes) for s in scan.samples) == 111


def test_label_renamed_to_Face_is_reported_and_counted_with_label_Face(dataset_copy):
    data = dataset_copy("webcam-a", limit=6, negatives=1)
    renamed = first_label(data)
    edit_label(renamed, lambda d: d["shapes"][0].update(label="Face"))

    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, "labelled with a 'face' box") == 5
    assert table_row(cli.stdout, labels.OTHER_NAME) == 1
    assert "label names other than 'face': 'Face' (1x) — to count them as faces add: --label face --label Face" \
        in cli.stdout
    assert f"no face label in {renamed}" in cli.stdout

    cli = check(data, "face", "Face")
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, "labelled with a 'face' / 'Face' box") == 6
    assert table_row(cli.stdout, labels.OTHER_NAME) == 0

    scan = check_labels(data / "images", data / "labels", ("Face",))  # only Face: the 5 'face' are skipped
    assert scan.faces == 1 and scan.other_names == {"face": 5}


def test_corrupt_json_is_skipped_and_listed(dataset_copy):
    data = dataset_copy("webcam-a", limit=4, negatives=1)
    broken = first_label(data)
    broken.write_text('{"shapes": [{"label": "face", "points": [[1, 2], ')  # cut-off save

    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.BAD_JSON) == 1
    assert table_row(cli.stdout, "labelled with a 'face' box") == 3
    assert f"label is not valid JSON (JSONDecodeError): {broken}" in cli.stdout
    scan = check_labels(data / "images", data / "labels")
    assert broken.stem not in {s.image.stem for s in scan.samples}  # skipped, not taken as a negative


def test_polygon_face_uses_its_bounding_box(dataset_copy):
    data = dataset_copy("webcam-a", limit=3, negatives=0)
    polygon = first_label(data)
    edit_label(polygon, lambda d: d["shapes"][0].update(
        shape_type="polygon", points=[[100, 50], [300, 60], [280, 400], [120, 380]]))

    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.NOT_RECTANGLE) == 1
    scan = check_labels(data / "images", data / "labels")
    box = next(s.box for s in scan.samples if s.label == polygon)
    assert box == (100, 50, 300, 400) and scan.faces == 3


def test_label_without_an_image(dataset_copy):
    data = dataset_copy("webcam-a", limit=3, negatives=0)
    orphan = first_label(data)
    (data / "images" / f"{orphan.stem}.jpg").unlink()

    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.ORPHAN) == 1
    assert f"label without an image: {orphan}" in cli.stdout


def test_image_size_in_json_differs_from_real_image(dataset_copy):
    data = dataset_copy("webcam-a", limit=2, negatives=0)
    label = first_label(data)
    original = check_labels(data / "images", data / "labels")
    # drawn on a 2x copy of the image: the points are doubled too
    edit_label(label, lambda d: d.update(imageWidth=1280, imageHeight=960, shapes=[
        dict(s, points=[[x * 2, y * 2] for x, y in s["points"]]) for s in d["shapes"]]))

    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.SIZE_MISMATCH) == 1
    rescaled = check_labels(data / "images", data / "labels")
    before = next(s.box for s in original.samples if s.label == label)
    after = next(s.box for s in rescaled.samples if s.label == label)
    assert after == pytest.approx(before)


def test_box_outside_the_image_is_clipped(dataset_copy):
    data = dataset_copy("webcam-a", limit=2, negatives=0)
    label = first_label(data)
    edit_label(label, lambda d: d["shapes"][0].update(points=[[500, -20], [700, 300]]))
    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.CLIPPED) == 1
    scan = check_labels(data / "images", data / "labels")
    assert next(s.box for s in scan.samples if s.label == label) == (500, 0, 640, 300)


def test_truncated_image_is_skipped_and_listed(dataset_copy):
    data = dataset_copy("webcam-a", limit=3, negatives=0)
    image = sorted((data / "images").glob("*.jpg"))[0]
    image.write_bytes(image.read_bytes()[:5000])
    cli = check(data)
    assert cli.exit_code == 0, cli.output
    assert table_row(cli.stdout, labels.BAD_IMAGE) == 1
    assert f"corrupt or truncated image: {image}" in cli.stdout


def test_empty_image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    cli = check(tmp_path)
    assert cli.exit_code == 2
    assert one_error_line(cli) == (f"error: no images found: {tmp_path / 'images'} — "
                                   "collect some first: facetracker collect")
    with pytest.raises(FacetrackerError, match="no images found"):
        check_labels(tmp_path / "images", tmp_path / "labels")


def test_missing_image_folder(tmp_path):
    cli = check(tmp_path / "nowhere")
    assert cli.exit_code == 2
    assert one_error_line(cli).startswith(f"error: folder not found: {tmp_path / 'nowhere' / 'images'}")


def test_images_but_no_face_labels_is_not_usable(dataset_copy):
    data = dataset_copy("webcam-a", limit=2, negatives=2)
    for label in (data / "labels").glob("*.json"):
        label.unlink()
    cli = check(data)
    assert cli.exit_code == 2
    assert table_row(cli.stdout, "negatives") == 4  # the table is still shown
    assert one_error_line(cli).startswith(f"error: no image has a 'face' box: {data / 'labels'}")


# ---------------------------------------------------------------- label (labelme)


def test_labelme_environment_drops_the_qt_paths_of_opencv():
    cv2_dir = Path(cv2.__file__).parent
    assert os.environ["QT_QPA_PLATFORM_PLUGIN_PATH"].startswith(str(cv2_dir))  # `import cv2` really set it
    env = labelme_environment({**os.environ, "QT_PLUGIN_PATH": str(cv2_dir / "qt" / "plugins"),
                               "LD_LIBRARY_PATH": f"{cv2_dir}/../../lib64:/opt/lib", "QT_QPA_FONTDIR": "/fonts"})
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in env and "QT_PLUGIN_PATH" not in env
    assert env["LD_LIBRARY_PATH"] == "/opt/lib" and env["QT_QPA_FONTDIR"] == "/fonts"  # others' paths are kept
    wayland = labelme_environment({"WAYLAND_DISPLAY": "wayland-0", "PATH": "/usr/bin"})
    assert wayland["QT_QPA_PLATFORM"] == "wayland"


def test_labelme_command_settings(tmp_path):
    command = labelme_command(tmp_path / "images", tmp_path / "labels", ("face",))
    assert command[0] == sys.executable and command[3:6] == [str(tmp_path / "images"), "--output",
                                                             str(tmp_path / "labels")]
    settings = json.loads(command[command.index("--config") + 1])
    assert settings == {"auto_save": True, "with_image_data": False, "labels": ["face"], "validate_label": "exact",
                        "sort_labels": False, "label_flags": {"face$": ["predicted"]}}
    # labelme matches label_flags patterns with re.match: a name with regex characters matches only itself
    names = ("human face", "face+", "face+")
    settings = json.loads(labelme_command(tmp_path, tmp_path, names)[-3])
    assert settings["labels"] == ["human face", "face+"]
    matches = {p: [re.match(p, n) is not None for n in ("human face", "face+", "faceee")]
               for p in settings["label_flags"]}
    assert matches == {r"human\ face$": [True, False, False], r"face\+$": [False, True, False]}


def test_label_without_a_display(dataset_copy, monkeypatch):
    data = dataset_copy("webcam-a", limit=2, negatives=0)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    cli = runner.invoke(app, ["label", "--images", str(data / "images"), "--labels", str(data / "new-labels")])
    assert cli.exit_code == 2
    line = one_error_line(cli)
    assert line.startswith("error: labelme needs a display, and no display (neither DISPLAY nor WAYLAND_DISPLAY")
    assert "xvfb-run" in line
    assert not (data / "new-labels").exists()  # nothing created for a run that could not start


def test_label_with_a_display_nobody_serves(dataset_copy, monkeypatch):
    data = dataset_copy("webcam-a", limit=2, negatives=0)
    monkeypatch.setenv("DISPLAY", ":987")
    cli = runner.invoke(app, ["label", "--images", str(data / "images"), "--labels", str(data / "labels")])
    assert cli.exit_code == 2
    assert "no X server answers on DISPLAY=:987" in one_error_line(cli)


def test_label_missing_or_empty_image_folder(tmp_path):
    cli = runner.invoke(app, ["label", "--images", str(tmp_path / "nope"), "--labels", str(tmp_path / "labels")])
    assert cli.exit_code == 2
    assert one_error_line(cli).startswith(f"error: folder not found: {tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    cli = runner.invoke(app, ["label", "--images", str(tmp_path / "empty"), "--labels", str(tmp_path / "labels")])
    assert cli.exit_code == 2
    assert one_error_line(cli) == f"error: no images to label: {tmp_path / 'empty'} — collect some first: " \
                                  "facetracker collect"


def wait_for_file(pattern_dir: Path, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(pattern_dir.glob("*.json"))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no label saved in {pattern_dir}")


def test_real_labelme_window_saves_a_face_box_and_closes(dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=0, negatives=3)  # three unlabelled real images
    labels_dir = tmp_path / "fresh" / "labels"  # does not exist yet
    first = sorted((data / "images").glob("*.jpg"))[0]
    with virtual_display() as display:
        with gui_command(["label", "--images", str(data / "images"), "--labels", str(labels_dir)], display,
                         home=tmp_path / "home") as process:
            window = wait_for_window(display, "^Labelme - ", timeout=30, process=process)
            assert window_title(display, window) == f"Labelme - {first} [1/3]"
            assert labels_dir.is_dir()
            # draw one rectangle like a person would: Ctrl+R, two corner clicks, type the label, Enter
            xdotool(display, "windowfocus", "--sync", window)
            xdotool(display, "key", "ctrl+r")
            xdotool(display, "mousemove", "--window", window, "220", "170", "click", "1")
            xdotool(display, "mousemove", "--window", window, "360", "330", "click", "1")
            wait_for_window(display, "^labelme$", by="class", other_than=(window,), timeout=10)  # label dialog
            xdotool(display, "type", "face")
            xdotool(display, "key", "Return")
            saved = wait_for_file(labels_dir)  # autosave, no Save click
            screenshot(display, tmp_path / "labelme.png")
            stdout, stderr = press_to_quit(display, window, process, "ctrl+q", timeout=20)
    assert process.returncode == 0, stderr
    assert stderr == ""
    assert f"labelme closed: 1 of 3 images in {data / 'images'} have a label in {labels_dir}" in stdout

    assert [p.name for p in saved] == [f"{first.stem}.json"]
    label = json.loads(saved[0].read_text())
    assert label["imageData"] is None  # not embedded
    assert [(s["label"], s["shape_type"]) for s in label["shapes"]] == [("face", "rectangle")]
    scan = labels.scan(data / "images", labels_dir)
    assert scan.faces == 1 and scan.negatives == 2


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_terminating_facetracker_closes_labelme_too(dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=2, negatives=0)
    labels_before = {p.name: p.read_bytes() for p in (data / "labels").iterdir()}
    with virtual_display() as display:
        with gui_command(["label", "--images", str(data / "images"), "--labels", str(data / "labels")], display,
                         home=tmp_path / "home") as process:
            wait_for_window(display, "^Labelme - ", timeout=30, process=process)
            labelme_pids = child_pids(process.pid)
            assert len(labelme_pids) == 1
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130
    assert stderr.strip() == "interrupted: stopped by the user, finished files were kept"
    assert not Path(f"/proc/{labelme_pids[0]}").exists()  # no orphan labelme left on the screen
    assert {p.name: p.read_bytes() for p in (data / "labels").iterdir()} == labels_before


def test_labelme_that_cannot_start_is_one_clear_error(dataset_copy, tmp_path, monkeypatch):
    data = dataset_copy("webcam-a", limit=2, negatives=0)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "nosuchplatform")  # a broken Qt setup: labelme itself aborts
    with virtual_display() as display:
        monkeypatch.setenv("DISPLAY", display)
        with pytest.raises(FacetrackerError) as caught:
            launch_labelme(data / "images", data / "labels")
    message = str(caught.value)
    assert message.startswith("labelme was killed by SIGABRT (")
    assert 'Could not find the Qt platform plugin "nosuchplatform"' in message and "\n" not in message
