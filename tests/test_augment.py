"""`facetracker augment` on copies of the real data: boxes follow the face, outputs are reproducible and atomic."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from clihelp import assert_one_line_error, cli
from facetracker.augment import augment_dataset
from facetracker.augment_pipeline import (background_pipeline, background_regions, image_seed, letterbox, overlaps,
                                          paste_face, seed_pipeline, variant_pipeline, zoom_out_view)
from facetracker.boxes import Letterbox
from facetracker.config import AUG_MIN_VISIBILITY
from facetracker.errors import FacetrackerError
from facetracker.files import read_image
from facetracker.labels import parse_label, scan
from facetracker.split import split_dataset
from spoil import BAD_INPUT, spoil_first_face
from streams import iou

REPO = Path(__file__).resolve().parents[1]
SIZE = 256
PARTS = ("train", "val", "test")


@pytest.fixture
def split_copy(dataset_copy, tmp_path):
    """Factory: a split copy of real data (data/{train,val,test}) in tmp_path."""

    def make(name="webcam-b", limit=4, negatives=1, dest=None, ratios=(0.5, 0.25, 0.25)):
        data = dataset_copy(name, limit=limit, negatives=negatives, dest=dest or tmp_path / "data")
        split_dataset(data, ratios=ratios)
        return data

    return make


def labels_of(out: Path) -> dict[str, dict]:
    return {f"{p.parent.parent.name}/{p.name}": json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}


def by_name(labels: dict[str, dict]) -> dict[str, dict]:
    return {key.split("/", 1)[1]: label for key, label in labels.items()}


def sources(data: Path) -> list:
    """Samples of every part (image, label, size, box) as labels.scan reads them."""
    return [s for part in PARTS for s in scan(data / part / "images", data / part / "labels").samples]


def assert_same_picture(written_path: Path, replayed_rgb) -> np.ndarray:
    """The written JPEG shows the replayed image (blurred first: JPEG drops the pixel noise of GaussNoise).
    Returns the written picture (RGB)."""
    written = cv2.cvtColor(cv2.imread(str(written_path)), cv2.COLOR_BGR2RGB)
    a, b = (cv2.GaussianBlur(x, (5, 5), 0).astype(int) for x in (written, replayed_rgb))
    assert np.abs(a - b).mean() < 2, written_path
    return written


def assert_flat_bars(written, frame_mask) -> None:
    """The letterbox bars (where the frame mask is 0) are one flat colour in the written picture: the grey fill
    after the colour changes. 8 px next to the frame are left out, where blur and JPEG smear the edge."""
    bars = cv2.erode((frame_mask == 0).astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert bars.mean() > 0.1
    assert written[bars].astype(float).std(axis=0).max() < 4


def assert_contract(out: Path, data: Path, variants: int, background: int, pastes: int = 0) -> dict[str, int]:
    """Every file follows the folder contract; returns counts of classes."""
    counts = {"faces": 0, "negatives": 0}
    for part in PARTS:
        stems = {p.stem for p in (data / part / "images").glob("*.jpg")}
        for label_path in (out / part / "labels").glob("*.json"):
            label = json.loads(label_path.read_text())
            assert set(label) == {"image", "bboxes", "class"}
            stem, k = label_path.stem.rsplit(".", 1)
            assert stem in stems and 0 <= int(k) < variants + background + pastes
            assert label["image"] == f"{label_path.stem}.jpg"
            image = cv2.imread(str(out / part / "images" / label["image"]))
            assert image.shape == (SIZE, SIZE, 3)
            if label["class"] == 1:
                assert label["bboxes"], label
                for x1, y1, x2, y2 in label["bboxes"]:
                    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1, label
                counts["faces"] += 1
            else:
                assert label["class"] == 0 and label["bboxes"] == [], label
                counts["negatives"] += 1
        assert len(list((out / part / "images").glob("*.jpg"))) == len(list((out / part / "labels").glob("*.json")))
    return counts


def box_masks(sample) -> list:
    """One mask per face box of a sample (boxes may overlap, so not one mask of box ids)."""
    width, height = sample.size
    masks = []
    for x1, y1, x2, y2 in sample.boxes:
        mask = np.zeros((height, width), np.uint8)
        mask[round(y1):round(y2), round(x1):round(x2)] = 1
        masks.append(mask)
    return masks


def framed(mask) -> tuple[float, float, float, float]:
    """The box around a mask's pixels, as fractions of the output."""
    ys, xs = np.nonzero(mask)
    return xs.min() / SIZE, ys.min() / SIZE, (xs.max() + 1) / SIZE, (ys.max() + 1) / SIZE


def crop_visibility(box, crop) -> float:
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = crop
    return max(0, min(x2, cx2) - max(x1, cx1)) * max(0, min(y2, cy2) - max(y1, cy1)) / ((x2 - x1) * (y2 - y1))


def letterboxed(box, sample, flipped: bool) -> list[float]:
    """Where the letterboxed whole frame puts a box (facetracker.boxes.Letterbox, what inference uses)."""
    x1, y1, x2, y2 = Letterbox(*sample.size, SIZE).to_input(np.asarray(box)).tolist()
    return [1 - x2, y1, 1 - x1, y2] if flipped else [x1, y1, x2, y2]


def check_boxes_against_pixels(data: Path, out: Path, seed: int, variants: int) -> dict[str, int]:
    """Replay each image's seeded pipeline with a mask per face box and compare with the written files.

    The masks go through the same geometry as the pixels, so every written box must frame its mask; the replay
    must also reproduce the written image, which proves the files are exactly this transform's output. The replay
    labels each box with its index, so the written boxes (in albumentations' order) are matched to the source's."""
    seen = {"flips": 0, "full_frames": 0, "portrait_full_frames": 0, "affine": 0, "cut_out": 0, "kept": 0,
            "several": 0, "dropped": 0}
    pipeline = seed_pipeline(variant_pipeline(SIZE), 0)
    pipeline.save_applied_params = True
    for sample in sources(data):
        if not sample.has_face:
            continue
        rgb = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
        masks, frame = box_masks(sample), np.ones(rgb.shape[:2], np.uint8)
        seed_pipeline(pipeline, image_seed(seed, sample.image.stem))
        part_out = out / sample.image.parent.parent.name
        for k in range(variants):
            replay = pipeline(image=rgb, mask=frame, masks=masks, bboxes=list(sample.boxes),
                              classes=list(range(len(sample.boxes))))
            name = f"{sample.image.stem}.{k}"
            written = assert_same_picture(part_out / "images" / f"{name}.jpg", replay["image"])
            label = json.loads((part_out / "labels" / f"{name}.json").read_text())
            applied = {n: params for n, params in replay["applied_transforms"]}
            shown = [int(i) for i in replay["classes"]]
            assert len(shown) == len(label["bboxes"]) and label["class"] == int(bool(shown)), (name, label)
            crop = applied.get("RandomResizedCrop", {}).get("crop_coords")
            if crop and "Affine" not in applied:  # visibility is exact from the crop alone
                visible = [crop_visibility(box, crop) >= AUG_MIN_VISIBILITY for box in sample.boxes]
                assert visible == [i in shown for i in range(len(sample.boxes))], (name, crop, label)
            seen["dropped"] += len(sample.boxes) - len(shown)
            if not shown:
                seen["cut_out"] += 1
                continue
            seen["kept"] += 1
            seen["several"] += len(shown) > 1
            seen["affine"] += "Affine" in applied
            for i, box in zip(shown, label["bboxes"]):
                # Affine rotation: albumentations fits the box to the rotated face ellipse, tighter than the mask.
                assert iou(framed(replay["masks"][i]), box) > (0.7 if "Affine" in applied else 0.9), (name, i, box)
            if "LongestMaxSize" in applied and "Affine" not in applied:  # whole frame: letterboxed (and mirrored)
                seen["full_frames"] += 1
                seen["portrait_full_frames"] += sample.size[1] > sample.size[0]
                seen["flips"] += "HorizontalFlip" in applied
                for i, box in zip(shown, label["bboxes"]):
                    expected = letterboxed(sample.boxes[i], sample, "HorizontalFlip" in applied)
                    assert np.allclose(box, expected, atol=1e-4), (name, box, expected)
                assert framed(replay["mask"]) == pytest.approx(letterboxed((0, 0, *sample.size), sample, False))
                if "GaussNoise" not in applied:
                    assert_flat_bars(written, replay["mask"])
    return seen


def test_output_follows_the_contract_and_negatives_stay_class_0(split_copy, tmp_path):
    data = split_copy("webcam-a", limit=4, negatives=2)
    out = tmp_path / "aug"
    summary = augment_dataset(data, out, variants=3, seed=0, workers=1, background_crops=2, pastes=2)
    counts = assert_contract(out, data, variants=3, background=2, pastes=2)
    assert summary.images == 6 and summary.total("variants") == 18 and not summary.skipped
    assert summary.total("pasted") > 0
    assert counts["faces"] == summary.total("faces") + summary.total("pasted")
    assert counts["negatives"] == 2 * 3 + summary.total("cut_out") + summary.total("background")
    negatives = [s.image.stem for s in sources(data) if not s.has_face]
    for label in labels_of(out).values():
        if label["image"].split(".")[0] in negatives:
            assert label["class"] == 0 and label["bboxes"] == []
    assert not list(tmp_path.glob("aug.partial-*"))


def test_boxes_follow_the_face_through_crops_flips_and_rotations(split_copy, tmp_path):
    data = split_copy("webcam-b", limit=4, negatives=0)
    out = tmp_path / "aug"
    summary = augment_dataset(data, out, variants=30, seed=3, workers=1, background_crops=0, pastes=0)
    seen = check_boxes_against_pixels(data, out, seed=3, variants=30)
    assert seen["cut_out"] == summary.total("cut_out")
    assert seen["flips"] and seen["full_frames"] and seen["affine"] and seen["kept"] > 60, seen


def test_crops_that_cut_the_face_out_are_class_0_and_counted(split_copy, tmp_path):
    # webcam-a faces sit near the frame edges often enough for crops to lose them.
    data = split_copy("webcam-a", limit=4, negatives=0)
    out = tmp_path / "aug"
    summary = augment_dataset(data, out, variants=25, seed=1, workers=1, background_crops=0, pastes=0)
    seen = check_boxes_against_pixels(data, out, seed=1, variants=25)
    assert summary.total("cut_out") > 0 and seen["cut_out"] == summary.total("cut_out")
    assert seen["dropped"] == summary.total("dropped") == summary.total("cut_out")  # one face per image
    assert f"{summary.total('cut_out')} with every face cut out" in summary.line()


def test_background_crops_come_from_face_free_regions(split_copy, tmp_path):
    data = split_copy("webcam-c", limit=4, negatives=1)
    out = tmp_path / "aug"
    summary = augment_dataset(data, out, variants=2, seed=5, workers=1, background_crops=4, pastes=0)
    assert summary.total("background") > 0
    checked = 0
    for sample in sources(data):
        if not sample.has_face:
            continue
        rgb = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
        rng = np.random.default_rng(image_seed(5, sample.image.stem, "background"))
        regions = background_regions(*sample.size, sample.boxes, 4, rng)
        pipeline = seed_pipeline(background_pipeline(SIZE), image_seed(5, sample.image.stem, "bg-pixels"))
        part_out = out / sample.image.parent.parent.name
        for j, (x1, y1, x2, y2) in enumerate(regions):
            assert not any(overlaps((x1, y1, x2, y2), box) for box in sample.boxes)
            name = f"{sample.image.stem}.{2 + j}"
            label = json.loads((part_out / "labels" / f"{name}.json").read_text())
            assert label == {"image": f"{name}.jpg", "bboxes": [], "class": 0}
            replay = pipeline(image=np.ascontiguousarray(rgb[y1:y2, x1:x2]))["image"]
            assert_same_picture(part_out / "images" / f"{name}.jpg", replay)
            checked += 1
        assert not (part_out / "labels" / f"{sample.image.stem}.{2 + len(regions)}.json").exists()
    assert checked == summary.total("background")


@pytest.mark.parametrize("size", [(480, 640), (1280, 720), (200, 150)])
def test_background_regions_never_touch_any_face_on_any_image_size(datasets_dir, size):
    labels = sorted((datasets_dir / "webcam-b" / "labels").glob("*.json"))[:31]
    found = 0
    for label, other in zip(labels, labels[1:]):
        # Two faces: the real box of this 640x480 frame and, mirrored, the real box of the next one; scaled as if
        # the camera had another size.
        (x1, y1, x2, y2), *_ = parse_label(label, (640, 480)).boxes
        (ox1, oy1, ox2, oy2), *_ = parse_label(other, (640, 480)).boxes
        sx, sy = size[0] / 640, size[1] / 480
        boxes = [(x1 * sx, y1 * sy, x2 * sx, y2 * sy), ((640 - ox2) * sx, oy1 * sy, (640 - ox1) * sx, oy2 * sy)]
        for seed in range(5):
            for region in background_regions(*size, boxes, 6, np.random.default_rng(seed)):
                assert not any(overlaps(region, box) for box in boxes) and 0 <= region[0] < region[2] <= size[0]
                assert 0 <= region[1] < region[3] <= size[1] and min(region[2] - region[0], region[3] - region[1]) >= 32
                found += 1
    assert found > 20  # not vacuous: two big faces leave little free space, but some


def test_same_seed_gives_the_same_output_whatever_the_worker_count(split_copy, tmp_path):
    data = split_copy("webcam-c", limit=5, negatives=1)
    serial, parallel, other = tmp_path / "serial", tmp_path / "parallel", tmp_path / "other"
    augment_dataset(data, serial, variants=3, seed=11, workers=1, background_crops=1)
    augment_dataset(data, parallel, variants=3, seed=11, workers=2, background_crops=1)
    augment_dataset(data, other, variants=3, seed=12, workers=2, background_crops=1)
    assert labels_of(serial) == labels_of(parallel)
    images = sorted(serial.rglob("*.jpg"))
    assert [p.read_bytes() for p in images] == [(parallel / p.relative_to(serial)).read_bytes() for p in images]
    assert labels_of(serial) != labels_of(other)


def test_refuses_an_existing_output_without_force_and_rebuilds_with_it(split_copy, tmp_path):
    data = split_copy("webcam-a", limit=2, negatives=1)
    out = tmp_path / "aug"
    augment_dataset(data, out, variants=2, workers=1, background_crops=0, pastes=0)
    first = labels_of(out)
    result = cli("augment", "--data", str(data), "--out", str(out), "--variants", "3")
    assert_one_line_error(result, "already has files", "--force")
    assert labels_of(out) == first
    result = cli("augment", "--data", str(data), "--out", str(out), "--variants", "3", "--force", "--workers", "1",
                 "--background-crops", "0", "--pastes", "0")
    assert result.exit_code == 0, result.output
    assert len(labels_of(out)) == 9 and "9 variants written" in result.output
    (out / "notes.txt").write_text("mine")  # --force must not delete what augment did not write
    assert_one_line_error(cli("augment", "--data", str(data), "--out", str(out), "--force"), "did not write")
    assert (out / "notes.txt").exists()


def test_output_inside_or_over_the_data_is_refused(split_copy):
    data = split_copy("webcam-a", limit=2, negatives=0)
    for out in (data, data / "train", data.parent):
        with pytest.raises(FacetrackerError, match="overlaps the data folder"):
            augment_dataset(data, out, variants=1, force=True)


def test_ctrl_c_leaves_no_half_written_output(split_copy, tmp_path):
    data = split_copy("webcam-b", limit=12, negatives=0)
    out = tmp_path / "aug"
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    process = subprocess.Popen(
        [sys.executable, "-m", "facetracker", "augment", "--data", str(data), "--out", str(out),
         "--variants", "400", "--workers", "2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)  # far more work than the wait below: on a busy machine, 60 variants were all done
    # (exit 0) before this process, starved of CPU, saw the first file
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob("aug.partial-*/train/images/*.jpg")):  # wait until files are being written
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # like Ctrl-C in a terminal: the parent and every worker get it
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob("aug.partial-*"))
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def _resized_copy(data: Path, size: tuple[int, int]) -> None:
    """Resize every image of data/images to size, scaling its labelme box (a different camera)."""
    for image_path in (data / "images").glob("*.jpg"):
        image = cv2.imread(str(image_path))
        sx, sy = size[0] / image.shape[1], size[1] / image.shape[0]
        cv2.imwrite(str(image_path), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        label_path = data / "labels" / f"{image_path.stem}.json"
        if label_path.exists():
            label = json.loads(label_path.read_text())
            for shape in label["shapes"]:
                shape["points"] = [[x * sx, y * sy] for x, y in shape["points"]]
            label.update(imageWidth=size[0], imageHeight=size[1], imageData=None)
            label_path.write_text(json.dumps(label))


@pytest.mark.parametrize("size", [(480, 640), (1280, 720), (200, 150)])
def test_odd_image_sizes_give_square_outputs_with_consistent_boxes(dataset_copy, tmp_path, size):
    data = dataset_copy("webcam-c", limit=3, negatives=1, dest=tmp_path / "data")
    _resized_copy(data, size)
    split_dataset(data, ratios=(0.5, 0.25, 0.25))
    out = tmp_path / "aug"
    summary = augment_dataset(data, out, variants=8, seed=2, workers=1, background_crops=2, pastes=0)
    assert summary.images == 4 and not summary.skipped
    assert_contract(out, data, variants=8, background=2)
    check_boxes_against_pixels(data, out, seed=2, variants=8)


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_labels_and_images_are_skipped_or_read_right(dataset_copy, tmp_path, case):
    clean = dataset_copy("webcam-b", limit=3, negatives=1, dest=tmp_path / "clean")
    data = dataset_copy("webcam-b", limit=3, negatives=1, dest=tmp_path / "data")
    image, _ = spoil_first_face(data, case)
    for folder in (clean, data):
        split_dataset(folder, ratios=(0.5, 0.25, 0.25))
        if not BAD_INPUT[case][1]:  # split leaves an unusable pair behind: put it where augment will meet it
            for kind, name in (("images", image.name), ("labels", f"{image.stem}.json")):
                if (folder / kind / name).exists():
                    (folder / kind / name).rename(folder / "train" / kind / name)
    result = cli("augment", "--data", str(data), "--out", str(tmp_path / "aug"), "--variants", "2",
                 "--workers", "1", "--background-crops", "0", "--pastes", "0")
    assert result.exit_code == 0, result.output
    augment_dataset(clean, tmp_path / "aug-clean", variants=2, workers=1, background_crops=0, pastes=0)
    # Keyed by file name: the part may differ (one face fewer changes the split), each image's output does not.
    spoilt, reference = (by_name(labels_of(tmp_path / name)) for name in ("aug", "aug-clean"))
    mine = {k: v for k, v in spoilt.items() if image.stem in k}
    others = {k: v for k, v in spoilt.items() if image.stem not in k}
    assert others == {k: v for k, v in reference.items() if image.stem not in k}
    usable, box = BAD_INPUT[case][1:]
    if not usable:
        assert not mine and "1 skipped" in result.output and "warning" in result.output
    elif box == "none":
        assert len(mine) == 2 and all(v["class"] == 0 for v in mine.values())
    elif case == "several shapes":  # the real box as before, then the added 5 px one wherever it is still visible
        assert len(mine) == 2
        for name, label in mine.items():
            extra = len(label["bboxes"]) - len(reference[name]["bboxes"])
            assert label["bboxes"][:len(reference[name]["bboxes"])] == reference[name]["bboxes"] and extra in (0, 1)
            assert label["class"] == reference[name]["class"]
    else:
        assert mine == {k: v for k, v in reference.items() if image.stem in k}


def test_one_corrupt_image_among_many_is_skipped_and_counted(split_copy, tmp_path):
    data = split_copy("webcam-a", limit=5, negatives=2)
    victim = next((data / "train" / "images").glob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:5000])
    summary = augment_dataset(data, tmp_path / "aug", variants=2, workers=2, background_crops=0, pastes=0)
    assert summary.images == 6 and len(summary.skipped) == 1 and victim.name in summary.skipped[0].skipped
    assert "1 skipped" in summary.line() and victim.exists()


def test_bad_paths_and_folders_give_one_line(dataset_copy, tmp_path):
    assert_one_line_error(cli("augment", "--data", str(tmp_path / "nowhere")), "not found")
    unsplit = dataset_copy("webcam-a", limit=2, negatives=0, dest=tmp_path / "unsplit")
    assert_one_line_error(cli("augment", "--data", str(unsplit), "--out", str(tmp_path / "a")), "facetracker split")
    empty = tmp_path / "empty"
    for part in PARTS:
        (empty / part / "images").mkdir(parents=True)
    assert_one_line_error(cli("augment", "--data", str(empty), "--out", str(tmp_path / "b")), "no images")
    broken = dataset_copy("webcam-a", limit=2, negatives=0, dest=tmp_path / "broken")
    split_dataset(broken, ratios=(0.5, 0.25, 0.25))
    for image in broken.rglob("*.jpg"):
        image.write_bytes(b"not a jpeg")
    assert_one_line_error(cli("augment", "--data", str(broken), "--out", str(tmp_path / "c"), "--workers", "1"),
                          "no usable image")
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob("c.partial-*"))


def test_read_only_output_folder_gives_one_line(split_copy, tmp_path):
    data = split_copy("webcam-a", limit=2, negatives=0)
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    immutable = os.geteuid() == 0  # root ignores permissions: make the folder immutable instead
    if immutable:
        subprocess.run(["chattr", "+i", str(parent)], check=True)
    try:
        assert_one_line_error(cli("augment", "--data", str(data), "--out", str(parent / "aug")), "writable")
        assert not list(parent.iterdir())
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(parent)], check=True)
        parent.chmod(0o755)


def test_label_option_reaches_the_workers(dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=3, negatives=0)
    image, _ = spoil_first_face(data, "unknown class")  # its rectangle is now called "person"
    split_dataset(data, ratios=(0.5, 0.25, 0.25), face_labels=("face", "person"))
    summary = augment_dataset(data, tmp_path / "aug", variants=2, workers=2, background_crops=0,
                              face_labels=("face", "person"))
    assert not summary.skipped
    mine = [v for k, v in labels_of(tmp_path / "aug").items() if image.stem in k]
    assert len(mine) == 2 and any(v["class"] == 1 for v in mine)


def test_zoom_out_variants_show_a_smaller_face_with_its_box_moved_along(datasets_dir, monkeypatch):
    """The zoom-out branch (every variant here) shrinks the letterboxed frame inside a grey border: the face gets
    smaller by the configured factor, keeps its shape, and the box still frames it (checked with a mask)."""
    from facetracker import config

    monkeypatch.setattr(config, "AUG_FULL_FRAME_SHARE", 0.0)
    monkeypatch.setattr(config, "AUG_ZOOM_OUT_SHARE", 1.0)
    import albumentations as A

    low, high = config.AUG_ZOOM_OUT_SCALE
    sample = next(s for s in scan(datasets_dir / "webcam-c" / "images", datasets_dir / "webcam-c" / "labels").samples
                  if s.has_face)
    rgb = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
    (mask,) = box_masks(sample)
    lx1, ly1, lx2, ly2 = letterboxed(sample.box, sample, False)  # the face in the letterboxed whole frame
    full_area, full_aspect = (lx2 - lx1) * (ly2 - ly1), (lx2 - lx1) / (ly2 - ly1)
    pipeline = seed_pipeline(variant_pipeline(SIZE), 7)
    pipeline.save_applied_params = True
    shrunk, frame = 0, np.ones_like(mask)
    for _ in range(20):
        out = pipeline(image=rgb, mask=frame, masks=[mask], bboxes=[sample.box], classes=[1])
        mask_out = out["masks"][0]
        if not len(out["bboxes"]):  # pushed mostly out of the picture by the shift: a negative, like a crop
            continue
        face = framed(mask_out)
        assert iou(face, np.asarray(out["bboxes"][0]) / SIZE) > 0.7  # pascal_voc: pixels of the output
        scale = np.sqrt(mask_out.mean() / full_area)  # side of the face now / in the letterboxed whole frame
        inside = min(face) > 0 and max(face) < 1
        assert scale <= high + 0.03 and (scale >= low - 0.03 or not inside), scale
        if inside:  # one uniform scale: the face keeps the shape the letterbox gave it
            x1, y1, x2, y2 = out["bboxes"][0]
            assert (x2 - x1) / (y2 - y1) == pytest.approx(full_aspect, rel=0.03)
        shrunk += 1
        if "GaussNoise" not in [name for name, _ in out["applied_transforms"]]:
            assert_flat_bars(out["image"], out["mask"])  # a border of one colour around the frame
    assert shrunk >= 15
    alone = seed_pipeline(A.Compose([zoom_out_view(SIZE, p=1.0)]), 7)  # no colour changes: the border's own grey
    for _ in range(5):
        out = alone(image=rgb, mask=frame)
        border = cv2.erode((out["mask"] == 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert border.mean() > 0.15 and (out["image"][border] == config.AUG_BORDER_FILL).all()


def test_pasted_face_lands_inside_its_new_box_with_a_soft_seam(datasets_dir):
    """A real frame whose face box is painted pure red, pasted onto a grey canvas: the returned box frames the
    red exactly, the canvas far from the face is untouched, and the blend only fades in outside the box."""
    sample = next(s for s in scan(datasets_dir / "webcam-b" / "images", datasets_dir / "webcam-b" / "labels").samples
                  if s.has_face)
    image = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
    x1, y1, x2, y2 = (round(v) for v in sample.box)
    image[y1:y2, x1:x2] = (255, 0, 0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        canvas = np.full((SIZE, SIZE, 3), 90, np.uint8)
        out, boxes = paste_face(canvas, image, [(x1, y1, x2, y2)], 0, rng)
        (box,) = boxes
        red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)
        ys, xs = np.nonzero(red)
        red_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert iou(red_box, box) > 0.9, (red_box, box)
        side = max(box[2] - box[0], box[3] - box[1]) / SIZE
        assert 0.15 <= side <= 0.8  # config.AUG_PASTE_FACE_SIZE, with rounding
        bx1, by1, bx2, by2 = (int(v) for v in box)
        outside = np.ones((SIZE, SIZE), bool)
        outside[max(0, by1 - 2):by2 + 2, max(0, bx1 - 2):bx2 + 2] = False
        assert red[outside].sum() == 0  # no red leaks out of the box
        from facetracker import config

        mx, my = (box[2] - box[0]) * config.AUG_PASTE_MARGIN + 2, (box[3] - box[1]) * config.AUG_PASTE_MARGIN + 2
        beyond = np.ones((SIZE, SIZE), bool)  # beyond the margin cut with the face: the canvas, untouched
        beyond[max(0, int(box[1] - my)):int(box[3] + my) + 1, max(0, int(box[0] - mx)):int(box[2] + mx) + 1] = False
        assert (out[beyond] == 90).all()


def test_pasted_variants_are_faces_with_valid_boxes(split_copy, tmp_path):
    data = split_copy("webcam-a", limit=6, negatives=2)
    out = tmp_path / "aug"
    summary = augment_dataset(data, out, variants=1, seed=4, workers=1, background_crops=1, pastes=3)
    assert summary.total("pasted") > 0
    labels = labels_of(out)
    pasted = [label for name, label in labels.items() if int(Path(name).stem.rsplit(".", 1)[1]) >= 2]
    assert len(pasted) == summary.total("pasted")
    for label in pasted:
        assert label["class"] == 1 and len(label["bboxes"]) == 1  # webcam-a: one face per image
        x1, y1, x2, y2 = label["bboxes"][0]
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


# ---------------------------------------------------------------- several faces in one image

TWO_FACES = "223396cc-a197-11ee-8da7-14d424183f4e"  # webcam-f: a man, and a child cut by the top-right edge
DOUBLE_BOX = "0a026db6-a197-11ee-b889-14d424183f4e"  # webcam-f: one face boxed twice (labels.py keeps the first)


def _copy_pair(source: Path, stem: str, dest: Path) -> None:
    for kind, suffix in (("images", ".jpg"), ("labels", ".json")):
        if (source / kind / f"{stem}{suffix}").exists():
            shutil.copy2(source / kind / f"{stem}{suffix}", dest / kind / f"{stem}{suffix}")


def _portrait_copy(source: Path, stem: str, dest: Path, left: int = 280) -> str:
    """A 360x480 portrait cut of a 640x480 frame (x from `left`), its labelme boxes moved along: another camera."""
    image = cv2.imread(str(source / "images" / f"{stem}.jpg"))[:, left:left + 360]
    name = f"{stem[:8]}-portrait"
    cv2.imwrite(str(dest / "images" / f"{name}.jpg"), image)
    label = json.loads((source / "labels" / f"{stem}.json").read_text())
    for shape in label["shapes"]:
        shape["points"] = [[x - left, y] for x, y in shape["points"]]
    label.update(imageWidth=360, imageHeight=480, imageData=None, imagePath=f"{name}.jpg")
    (dest / "labels" / f"{name}.json").write_text(json.dumps(label))
    return name


@pytest.fixture
def two_faces(datasets_dir, tmp_path) -> Path:
    """data/train with webcam-f's two images with two face boxes (one of them the same face boxed twice, read as one
    box), a portrait cut of the two-face frame (both faces inside) and a real negative; val and test are empty."""
    source, data = datasets_dir / "webcam-f", tmp_path / "data"
    train = data / "train"
    for part in PARTS:
        for kind in ("images", "labels"):
            (data / part / kind).mkdir(parents=True)
    negative = next(p.stem for p in sorted((source / "images").glob("*.jpg"))
                    if not (source / "labels" / f"{p.stem}.json").exists())
    for stem in (TWO_FACES, DOUBLE_BOX, negative):
        _copy_pair(source, stem, train)
    _portrait_copy(source, TWO_FACES, train)
    assert [len(s.boxes) for s in sources(data)].count(2) == 2
    return data


def test_every_face_box_goes_through_every_variant(two_faces, tmp_path):
    """Both faces move with every crop, flip, tilt, letterbox and zoom-out; each is kept exactly while enough of it
    is visible, the variant stays a face while one is left; background crops avoid both faces."""
    out = tmp_path / "aug"
    summary = augment_dataset(two_faces, out, variants=12, seed=2, workers=1, background_crops=3, pastes=0)
    assert_contract(out, two_faces, variants=12, background=3)
    seen = check_boxes_against_pixels(two_faces, out, seed=2, variants=12)
    assert seen["several"] and seen["kept"] > seen["several"], seen  # both faces, and variants that kept one
    assert seen["cut_out"] == summary.total("cut_out") and seen["dropped"] == summary.total("dropped") > 0
    assert seen["full_frames"] > seen["portrait_full_frames"] > 0, seen
    assert "face boxes dropped" in summary.line() and summary.total("background") > 0
    for sample in (s for s in sources(two_faces) if s.has_face):  # negatives need no extra background crops
        rng = np.random.default_rng(image_seed(2, sample.image.stem, "background"))
        for j, region in enumerate(background_regions(*sample.size, sample.boxes, 3, rng)):
            assert not any(overlaps(region, box) for box in sample.boxes)
            label = json.loads((out / "train" / "labels" / f"{sample.image.stem}.{12 + j}.json").read_text())
            assert label["class"] == 0 and label["bboxes"] == []


@pytest.mark.parametrize("portrait", [False, True])
def test_whole_frame_is_letterboxed_with_faces_in_shape(datasets_dir, tmp_path, portrait):
    """640x480: grey bars above and below; 360x480: left and right. The frame is scaled, never squashed: every
    face box keeps its aspect ratio and lands where facetracker.boxes.Letterbox (inference) puts it."""
    import albumentations as A

    from facetracker import config

    source = datasets_dir / "webcam-f"
    if portrait:
        for kind in ("images", "labels"):
            (tmp_path / kind).mkdir()
        source = tmp_path
        stem = _portrait_copy(datasets_dir / "webcam-f", TWO_FACES, tmp_path)
    else:
        stem = TWO_FACES
    sample = next(s for s in scan(source / "images", source / "labels").samples if s.image.stem == stem)
    rgb = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
    pipeline = A.Compose(letterbox(SIZE), bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"]))
    out = pipeline(image=rgb, bboxes=list(sample.boxes), classes=[1, 1])
    bar = 32  # (256 - 192) / 2: the short side 480 (landscape) or 360 (portrait) becomes 192 px
    bars = np.zeros((SIZE, SIZE), bool)
    if portrait:
        bars[:, :bar] = bars[:, SIZE - bar:] = True
    else:
        bars[:bar] = bars[SIZE - bar:] = True
    assert (out["image"][bars] == config.AUG_BORDER_FILL).all()
    assert (out["image"][~bars] != config.AUG_BORDER_FILL).any(axis=-1).mean() > 0.9  # the frame, not more bar
    assert len(out["bboxes"]) == 2
    for (x1, y1, x2, y2), before in zip(out["bboxes"], sample.boxes):
        assert (x2 - x1) / (y2 - y1) == pytest.approx((before[2] - before[0]) / (before[3] - before[1]), rel=0.01)
        assert np.allclose(np.asarray([x1, y1, x2, y2]) / SIZE, letterboxed(before, sample, False), atol=1e-4)


def _drawn_boxes(source: Path, stem: str) -> list[tuple[float, float, float, float]]:
    """Every rectangle of a labelme file as drawn, corners normalised (labels.py would merge a face boxed twice)."""
    shapes = json.loads((source / "labels" / f"{stem}.json").read_text())["shapes"]
    return [(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
            for (x1, y1), (x2, y2) in (shape["points"] for shape in shapes)]


def test_a_pasted_face_brings_along_the_faces_its_margin_shows(datasets_dir):
    """Pasting one face of two boxes that overlap (webcam-f's face boxed twice, as drawn): the other box comes along
    (it is visible); the child far outside the man's margin does not (nothing of it is pasted)."""
    source = datasets_dir / "webcam-f"
    samples = {s.image.stem: s for s in scan(source / "images", source / "labels").samples}
    rng = np.random.default_rng(0)
    for stem, expected in ((DOUBLE_BOX, 2), (TWO_FACES, 1)):
        sample = samples[stem]
        rgb = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
        drawn = _drawn_boxes(source, stem)
        assert len(drawn) == 2
        for face in (0, 1):
            _, boxes = paste_face(np.full((SIZE, SIZE, 3), 90, np.uint8), rgb, drawn, face, rng)
            assert len(boxes) == expected, (stem, face, boxes)
            for x1, y1, x2, y2 in boxes:
                assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
            if expected == 2:
                assert iou(boxes[0], boxes[1]) > 0.9


def test_pasted_variants_list_every_face_they_show(two_faces, tmp_path):
    out = tmp_path / "aug"
    summary = augment_dataset(two_faces, out, variants=1, seed=4, workers=1, background_crops=0, pastes=2)
    assert summary.total("pasted") == 6  # 3 labelled images x 2
    labels = by_name(labels_of(out))
    for stem, faces in ((DOUBLE_BOX, 1), (TWO_FACES, 1)):
        for k in (1, 2):
            label = labels[f"{stem}.{k}.json"]
            assert label["class"] == 1 and len(label["bboxes"]) == faces, label
