"""Label names other than `face`: one shared name is used (with a note), several with no face name stop with one
line, --label always wins. On copies of the real sets whose labels are the person's name (webcam-r `Semih`,
webcam-v `vatsal`), a copy renamed to `human face` and one with two non-face names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import cli
from facetracker.errors import FacetrackerError
from facetracker.labels import resolve_face_labels
from facetracker.split import split_dataset

PARTS = ("train", "val", "test")


def rename_labels(data: Path, *names: str) -> dict[str, int]:
    """Rename every shape of data/labels, cycling through `names` file by file; returns {name: shapes}."""
    counts: dict[str, int] = {}
    for index, path in enumerate(sorted((data / "labels").glob("*.json"))):
        label = json.loads(path.read_text())
        name = names[index % len(names)]
        for shape in label["shapes"]:
            shape["label"] = name
            counts[name] = counts.get(name, 0) + 1
        path.write_text(json.dumps(label))
    return counts


@pytest.fixture
def human_face(dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=12, negatives=4, dest=tmp_path / "human-face")
    rename_labels(data, "human face")
    return data


@pytest.fixture
def two_names(dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=6, negatives=2, dest=tmp_path / "two-names")
    assert rename_labels(data, "head", "person") == {"head": 3, "person": 3}
    return data


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_names_error(result, data: Path) -> None:
    """One line on stderr, exit 2, naming both labels with their counts and the --label to pass."""
    assert result.exit_code == 2, result.output
    (line,) = stderr_lines(result)
    assert line.startswith("error: no 'face' label") and "Traceback" not in result.output
    assert "'head' (3x)" in line and "'person' (3x)" in line and "--label head" in line, line
    assert str(data / "labels") in line or str(data) in line


# ---------------------------------------------------------------- the function


@pytest.mark.parametrize("name, dataset", [("Semih", "webcam-r"), ("vatsal", "webcam-v")])
def test_one_shared_name_is_used_with_a_note(dataset_copy, name, dataset):
    data = dataset_copy(dataset, limit=5)
    names, note = resolve_face_labels(data / "labels")
    assert names == (name,)
    assert note == f"note: every label is named {name!r}; using it as the face label (pass --label to choose)"


def test_human_face_and_several_folders(human_face, tmp_path):
    assert resolve_face_labels(human_face / "labels")[0] == ("human face",)
    # Several folders (split reads data/labels and every part) are looked at together.
    assert resolve_face_labels([tmp_path / "missing", human_face / "labels"])[0] == ("human face",)


def test_explicit_label_wins_and_face_keeps_the_default(dataset_copy, human_face):
    assert resolve_face_labels(human_face / "labels", ("face",), explicit=True) == (("face",), None)
    assert resolve_face_labels(human_face / "labels", ("human face", "head"), explicit=True)[0] == \
        ("human face", "head")
    # `face` present among other names: the default stays, the other names are reported by scan as before.
    mixed = dataset_copy("webcam-a", limit=4)
    rename_labels(mixed, "face", "face", "person")
    assert resolve_face_labels(mixed / "labels") == (("face",), None)


def test_nothing_labelled_keeps_the_default(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "cut-off.json").write_text('{"shapes": [')  # not labelme JSON: scan reports it
    assert resolve_face_labels(tmp_path / "labels") == (("face",), None)
    assert resolve_face_labels(tmp_path / "no-such-folder") == (("face",), None)


def test_several_names_none_a_face_stop(two_names):
    with pytest.raises(FacetrackerError) as caught:
        resolve_face_labels(two_names / "labels")
    message = str(caught.value)
    assert "'head' (3x), 'person' (3x)" in message and "--label head or --label person" in message
    assert resolve_face_labels(two_names / "labels", ("head",), explicit=True) == (("head",), None)


# ---------------------------------------------------------------- every command that reads labels


def test_label_check_uses_the_one_name(dataset_copy):
    data = dataset_copy("webcam-r")
    result = cli("label", "--check", "--images", str(data / "images"), "--labels", str(data / "labels"))
    assert result.exit_code == 0, result.output
    assert stderr_lines(result) == [
        "note: every label is named 'Semih'; using it as the face label (pass --label to choose)"]
    assert "usable: 40 images with a face and 0 negatives" in result.stdout


def test_label_check_several_names_stop(two_names):
    result = cli("label", "--check", "--images", str(two_names / "images"), "--labels", str(two_names / "labels"))
    assert_names_error(result, two_names)


def test_split_moves_human_face_images_not_only_the_negatives(human_face):
    result = cli("split", "--data", str(human_face))
    assert result.exit_code == 0, result.output
    assert "every label is named 'human face'" in result.stderr
    assert not list((human_face / "images").iterdir())  # nothing left behind as "unusable"
    placed = {part: len(list((human_face / part / "labels").glob("*.json"))) for part in PARTS}
    assert sum(placed.values()) == 12 and all(placed.values())
    assert sum(len(list((human_face / part / "images").glob("*.jpg"))) for part in PARTS) == 16


def test_split_several_names_stop_and_move_nothing(two_names):
    before = sorted(p.name for p in (two_names / "images").iterdir())
    assert_names_error(cli("split", "--data", str(two_names)), two_names)
    assert sorted(p.name for p in (two_names / "images").iterdir()) == before
    assert not any((two_names / part).exists() for part in PARTS)


def test_augment_uses_the_one_name_of_the_split_labels(dataset_copy, tmp_path):
    data = dataset_copy("webcam-v", limit=6)
    split_dataset(data, face_labels=("vatsal",))
    out = tmp_path / "aug"
    result = cli("augment", "--data", str(data), "--out", str(out), "--variants", "1", "--workers", "1",
                 "--background-crops", "0", "--pastes", "0")
    assert result.exit_code == 0, result.output
    assert "every label is named 'vatsal'" in result.stderr
    classes = [json.loads(p.read_text())["class"] for p in out.glob("*/labels/*.json")]
    assert len(classes) == 6 and sum(classes) >= 4  # a crop may cut a face out; without the name none is a face


def test_augment_several_names_stop(two_names, tmp_path):
    split_dataset(two_names, face_labels=("head", "person"))
    out = tmp_path / "aug"
    assert_names_error(cli("augment", "--data", str(two_names), "--out", str(out), "--workers", "1"), two_names)
    assert not out.exists()


def test_evaluate_uses_the_one_name(dataset_copy, tmp_path, monkeypatch):
    data = dataset_copy("webcam-r", limit=8)
    monkeypatch.chdir(tmp_path)  # no models/facetracker.keras here: the bundled model runs
    result = cli("evaluate", "--data", str(data), "--out", str(tmp_path / "reports"))
    assert result.exit_code == 0, result.output
    assert "every label is named 'Semih'" in result.stderr
    report = json.loads((tmp_path / "reports" / "evaluation.json").read_text())
    assert report["faces"] == 8 and report["face_labels"] == ["Semih"]
    assert 0.0 <= report["ap50"] <= 1.0


def test_evaluate_several_names_stop_before_loading_a_model(two_names, tmp_path):
    result = cli("evaluate", "--data", str(two_names), "--model", str(tmp_path / "never-loaded.keras"),
                 "--out", str(tmp_path / "reports"))
    assert_names_error(result, two_names)  # a model load would have failed with "model not found" instead
    assert not (tmp_path / "reports" / "evaluation.json").exists()
