"""`facetracker split` on copies of the real labelme data: stratified, deterministic, never loses or tears a pair."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from clihelp import assert_one_line_error, cli
from facetracker.errors import FacetrackerError
from facetracker.safe_moves import JOURNAL_NAME, PairMove, deferred_interrupt, run_moves
from facetracker.split import part_sizes, split_dataset
from spoil import BAD_INPUT, spoil_first_face

PARTS = ("train", "val", "test")


def tree(data: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under data (to prove nothing was lost or changed)."""
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*")) if p.is_file()}


def contents(data: Path) -> list[str]:
    """Multiset of file contents, wherever the files are."""
    return sorted(tree(data).values())


def assignment(data: Path) -> dict[str, str]:
    return {p.name: part for part in PARTS for p in (data / part / "images").glob("*.jpg")}


def assert_pairs_together(data: Path) -> None:
    for part in PARTS:
        for label in (data / part / "labels").glob("*.json"):
            assert (data / part / "images" / f"{label.stem}.jpg").exists(), f"{label} lost its image"


def face_count(data: Path, part: str) -> tuple[int, int]:
    images = list((data / part / "images").glob("*.jpg"))
    faces = sum((data / part / "labels" / f"{p.stem}.json").exists() for p in images)
    return faces, len(images) - faces


def test_split_moves_pairs_stratified_and_loses_nothing(dataset_copy):
    data = dataset_copy("webcam-a", limit=14, negatives=6)
    before = contents(data)
    plan = split_dataset(data, ratios=(0.7, 0.15, 0.15), seed=42)
    assert contents(data) == before
    assert not list((data / "images").iterdir()) and not list((data / "labels").iterdir())
    assert_pairs_together(data)
    counts = {part: face_count(data, part) for part in PARTS}
    assert counts == {part: plan.counts(part) for part in PARTS}
    assert sum(f for f, _ in counts.values()) == 14 and sum(n for _, n in counts.values()) == 6
    assert all(faces >= 1 and negatives >= 1 for faces, negatives in counts.values()), counts
    assert counts["train"][0] == 10  # 14 * 0.7 (faces)


def test_part_sizes_gives_every_part_one_when_there_are_enough():
    assert part_sizes(3, (0.7, 0.15, 0.15)) == [1, 1, 1]
    assert part_sizes(2, (0.7, 0.15, 0.15)) == [2, 0, 0]
    assert part_sizes(20, (0.7, 0.15, 0.15)) == [14, 3, 3]
    # 30 in all -> 21/5/4, but test already holds 6: the 10 new ones fill train and val as evenly as they can.
    assert part_sizes(10, (0.7, 0.15, 0.15), existing=(14, 0, 6)) == [6, 4, 0]


def test_split_is_deterministic_for_a_seed(dataset_copy, tmp_path):
    first = dataset_copy("webcam-b", limit=20, negatives=3, dest=tmp_path / "one")
    second = dataset_copy("webcam-b", limit=20, negatives=3, dest=tmp_path / "two")
    other = dataset_copy("webcam-b", limit=20, negatives=3, dest=tmp_path / "three")
    split_dataset(first, seed=7)
    split_dataset(second, seed=7)
    split_dataset(other, seed=8)
    assert assignment(first) == assignment(second)
    assert assignment(first) != assignment(other)
    assert sorted(assignment(first)) == sorted(assignment(other))


def test_dry_run_prints_the_plan_and_moves_nothing(dataset_copy):
    data = dataset_copy("webcam-a", limit=10, negatives=4)
    before = tree(data)
    result = cli("split", "--data", str(data), "--dry-run")
    assert result.exit_code == 0, result.output
    assert tree(data) == before
    assert "dry run" in result.output and "negatives" in result.output
    assert "│ train │      9 │     7 │         2 │" in result.output  # 10 faces -> 7/2/1, 4 negatives -> 2/1/1


def test_refuses_to_split_again_without_new_images(dataset_copy):
    data = dataset_copy("webcam-a", limit=6, negatives=3)
    split_dataset(data)
    before = tree(data)
    assert_one_line_error(cli("split", "--data", str(data)), "already split", "--force")
    assert tree(data) == before


def test_rerun_adds_only_new_images_and_keeps_the_assignment(dataset_copy, datasets_dir, tmp_path):
    data = dataset_copy("webcam-c", limit=10, negatives=1)
    split_dataset(data)
    first = assignment(data)
    more = dataset_copy("webcam-a", limit=10, negatives=3, dest=tmp_path / "more")  # a later `collect` + `label`
    for folder in ("images", "labels"):
        for path in (more / folder).iterdir():
            shutil.copy2(path, data / folder / path.name)
    before = contents(data)
    plan = split_dataset(data)
    second = assignment(data)
    assert {name: second[name] for name in first} == first
    assert len(second) == 24 and sum(plan.added.values()) == 13
    assert contents(data) == before
    assert_pairs_together(data)
    faces = [face_count(data, part)[0] for part in PARTS]
    negatives = [face_count(data, part)[1] for part in PARTS]
    assert faces == [14, 3, 3] and negatives == [2, 1, 1]


def test_labelled_only_leaves_unlabelled_frames_for_prelabelling(dataset_copy, tmp_path):
    # The "label a few, let the model draw the rest" workflow: frames without a label file are not negatives yet.
    data = dataset_copy("webcam-a", limit=14, negatives=0)
    held = tmp_path / "labelled-later"
    held.mkdir()
    later = sorted((data / "labels").glob("*.json"))[:4]
    for label in later:
        shutil.move(label, held / label.name)
    result = cli("split", "--data", str(data), "--labelled-only")
    assert result.exit_code == 0, result.output
    assert "no label file, left" in result.output
    assert sorted(p.stem for p in (data / "images").iterdir()) == sorted(p.stem for p in later)
    assert sum(face_count(data, part)[0] for part in PARTS) == 10
    assert sum(face_count(data, part)[1] for part in PARTS) == 0  # nothing became a negative
    assert_pairs_together(data)

    for label in later[:2]:  # two of them labelled (or pre-labelled and reviewed) since
        shutil.move(held / label.name, data / "labels" / label.name)
    plan = split_dataset(data, labelled_only=True)
    assert sum(plan.added.values()) == 2 and plan.inventory.unlabelled_left == 2
    assert sum(face_count(data, part)[0] for part in PARTS) == 12
    before = tree(data)
    assert_one_line_error(cli("split", "--data", str(data), "--labelled-only"), "none of the 2 images",
                          "facetracker label")
    assert tree(data) == before


def test_force_resplits_everything_like_a_fresh_split(dataset_copy, tmp_path):
    data = dataset_copy("webcam-b", limit=15, negatives=3, dest=tmp_path / "data")
    fresh = dataset_copy("webcam-b", limit=15, negatives=3, dest=tmp_path / "fresh")
    before = contents(data)
    split_dataset(data, seed=1)
    split_dataset(data, seed=2, force=True)
    split_dataset(fresh, seed=2)
    assert assignment(data) == assignment(fresh)
    assert contents(data) == before
    assert_pairs_together(data)
    assert not (data / JOURNAL_NAME).exists()


def test_name_collision_is_refused_before_anything_moves(dataset_copy):
    data = dataset_copy("webcam-a", limit=8, negatives=2)
    split_dataset(data)
    clash = next((data / "train" / "images").glob("*.jpg"))
    shutil.copy2(clash, data / "images" / clash.name)  # the same frame collected again
    newcomer = dataset_copy("webcam-b", limit=1, negatives=0, dest=data.parent / "newcomer")
    shutil.copy2(next((newcomer / "images").iterdir()), data / "images")
    before = tree(data)
    assert_one_line_error(cli("split", "--data", str(data)), "share one name", clash.stem)
    assert tree(data) == before


def test_negative_never_lands_beside_a_stray_label(dataset_copy):
    data = dataset_copy("webcam-a", limit=0, negatives=3)
    stray = dataset_copy("webcam-a", limit=1, negatives=0, dest=data.parent / "stray")
    stray_label = next((stray / "labels").iterdir())
    for part in PARTS:
        for negative in (data / "images").iterdir():
            (data / part / "labels").mkdir(parents=True, exist_ok=True)
            shutil.copy2(stray_label, data / part / "labels" / f"{negative.stem}.json")
            break
    before = tree(data)
    with pytest.raises(FacetrackerError, match="already in the destination"):
        split_dataset(data)
    assert tree(data) == before


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_warned_and_left_in_place_or_handled(dataset_copy, case):
    data = dataset_copy("webcam-b", limit=6, negatives=3)
    image, label = spoil_first_face(data, case)
    usable = BAD_INPUT[case][1]
    before = contents(data)
    result = cli("split", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert contents(data) == before
    assert_pairs_together(data)
    if usable:
        part = assignment(data)[image.name]
        assert (data / part / "labels" / label.name).exists()  # moved with its label (zero shapes: label kept too)
    else:
        assert image.exists() and label.exists() and image.name not in assignment(data)
        assert "warning" in result.output and image.stem in result.output and "left where it is" in result.output


def test_label_without_image_is_warned_and_left(dataset_copy):
    data = dataset_copy("webcam-a", limit=5, negatives=2)
    orphan = data / "labels" / "no-such-image.json"
    shutil.copy2(next((data / "labels").iterdir()), orphan)
    result = cli("split", "--data", str(data))
    assert result.exit_code == 0 and orphan.exists()
    assert "label without an image" in result.output


@pytest.mark.parametrize("ratios, words", [
    (("0.5", "0.3", "0.3"), ("add up to 1",)),
    (("0.8", "0.3", "-0.1"), ("positive",)),
    (("1", "0", "0"), ("positive",)),
])
def test_bad_ratios_give_one_line(dataset_copy, ratios, words):
    data = dataset_copy("webcam-a", limit=3, negatives=0)
    before = tree(data)
    assert_one_line_error(cli("split", "--data", str(data), "--ratios", *ratios), *words)
    assert tree(data) == before


def test_missing_path_and_empty_folder_give_one_line(tmp_path):
    assert_one_line_error(cli("split", "--data", str(tmp_path / "nowhere")), "not found")
    (tmp_path / "data" / "images").mkdir(parents=True)
    assert_one_line_error(cli("split", "--data", str(tmp_path / "data")), "no usable images")


@pytest.fixture
def read_only():
    """Make folders read-only for real: chmod, plus the immutable flag when root ignores permissions."""
    frozen = []

    def freeze(folder: Path) -> Path:
        folder.chmod(0o555)
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(folder)], check=True)
        frozen.append(folder)
        return folder

    yield freeze
    for folder in frozen:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_read_only_data_folder_gives_one_line_and_moves_nothing(dataset_copy, read_only):
    data = dataset_copy("webcam-a", limit=4, negatives=1)
    read_only(data)
    before = tree(data)
    assert_one_line_error(cli("split", "--data", str(data)), "not writable")
    assert tree(data) == before


def split_about_to_move(dataset_copy, tmp_path, name, limit, negatives):
    """A data copy with its split planned and the part folders made, and the same copy split for reference."""
    data = dataset_copy(name, limit=limit, negatives=negatives, dest=tmp_path / "data")
    reference = dataset_copy(name, limit=limit, negatives=negatives, dest=tmp_path / "reference")
    split_dataset(reference)
    plan = split_dataset(data, dry_run=True)
    for part in PARTS:
        for folder in ("images", "labels"):
            (data / part / folder).mkdir(parents=True)
    return data, reference, plan, contents(data)


def test_ctrl_c_waits_for_the_pair_and_the_next_run_finishes_the_plan(dataset_copy, tmp_path):
    data, reference, plan, before = split_about_to_move(dataset_copy, tmp_path, "webcam-a", limit=6, negatives=2)
    done = []

    def press_ctrl_c_after_first_pair():
        done.append(1)
        if len(done) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, as from the terminal

    with pytest.raises(KeyboardInterrupt):
        run_moves(data, plan.moves, on_done=press_ctrl_c_after_first_pair)
    assert len(done) == 1  # stopped between pairs, right after the first
    assert_pairs_together(data)
    assert (data / JOURNAL_NAME).exists()
    split_dataset(data)  # replays the journal, then finds nothing new
    assert assignment(data) == assignment(reference) and contents(data) == before
    assert not (data / JOURNAL_NAME).exists()


def test_hard_stop_between_image_and_label_is_repaired_from_the_journal(dataset_copy, tmp_path):
    data, reference, plan, before = split_about_to_move(dataset_copy, tmp_path, "webcam-c", limit=5, negatives=1)
    # What kill -9 right after moving one image (not yet its label) leaves behind:
    (data / JOURNAL_NAME).write_text(json.dumps({"moves": [m.__dict__ for m in plan.moves]}))
    torn: PairMove = next(m for m in plan.moves if m.label_src)
    os.rename(data / torn.image_src, data / torn.image_dst)
    result = cli("split", "--data", str(data))
    assert "finished an interrupted split" in result.output
    assert assignment(data) == assignment(reference) and contents(data) == before
    assert_pairs_together(data)


def test_deferred_interrupt_finishes_the_block_then_raises():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_label_option_counts_another_name_as_a_face(dataset_copy):
    data = dataset_copy("webcam-a", limit=4, negatives=1)
    image, label = spoil_first_face(data, "unknown class")  # its rectangle is now called "person"
    result = cli("split", "--data", str(data), "--label", "face", "--label", "person")
    assert result.exit_code == 0, result.output
    part = assignment(data)[image.name]
    assert (data / part / "labels" / label.name).exists() and face_count(data, part)[0] >= 1
