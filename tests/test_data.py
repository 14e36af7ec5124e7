"""The tf.data pipeline over aug_data: exactly the labels on disk, the right pixels, and clear refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from augdata import write_aug_split
from facetracker.data import cache_fits, load_splits, make_dataset, read_split
from facetracker.errors import FacetrackerError


@pytest.fixture
def aug(dataset_copy, tmp_path):
    """aug_data/train from 4 real faces + 1 real negative of webcam-a (and their mirror images)."""
    source = dataset_copy("webcam-a", limit=4, negatives=1)
    written = write_aug_split(source, tmp_path / "aug_data" / "train", size=48)
    shutil.copytree(tmp_path / "aug_data" / "train", tmp_path / "aug_data" / "val")
    return tmp_path / "aug_data", written


def pairs(classes, boxes) -> list:
    """Sorted (class, box rounded) rows, comparable between disk JSON and pipeline float32."""
    return sorted((int(np.ravel(c)[0]), tuple(np.round(np.asarray(b, np.float32), 4).tolist()))
                  for c, b in zip(classes, boxes))


def batches_to_rows(ds):
    images, classes, boxes = [], [], []
    for x, (c, b) in ds:
        images.append(x.numpy()), classes.append(c.numpy()), boxes.append(b.numpy())
    return np.concatenate(images), np.concatenate(classes), np.concatenate(boxes)


def test_pipeline_yields_exactly_the_labels_on_disk(aug):
    aug_dir, written = aug
    labels = read_split(aug_dir, "train")
    assert [p.split("/")[-1] for p in labels.paths] == sorted(written)
    assert len(labels) == 10 and labels.faces == 8
    images, classes, boxes = batches_to_rows(make_dataset(labels, 32, batch_size=3, training=False))
    for name, cls, box in zip(sorted(written), classes, boxes):
        want_class, want_box = written[name]
        assert cls.tolist() == [want_class]
        np.testing.assert_allclose(box, want_box, atol=1e-6)
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.float32
    # Pixels are RGB 0..255 of the whole image resized (area), as the model contract says.
    first = tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(labels.paths[0])), (32, 32), method="area")
    np.testing.assert_allclose(images[0], np.round(first.numpy()), atol=0.5)
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1


def test_training_order_is_shuffled_each_epoch_but_keeps_every_pair(aug):
    aug_dir, written = aug
    labels = read_split(aug_dir, "train")
    ds = make_dataset(labels, 16, batch_size=4, training=True, cache=True)
    epoch1, epoch2 = batches_to_rows(ds), batches_to_rows(ds)
    on_disk = pairs(*zip(*written.values()))
    for _, classes, boxes in (epoch1, epoch2):
        assert pairs(classes, boxes) == on_disk
    assert not np.array_equal(epoch1[2], epoch2[2]), "reshuffled every epoch"
    # Not cached (a split too big for RAM): shuffled file list, same pairs.
    _, classes, boxes = batches_to_rows(make_dataset(labels, 16, batch_size=4, training=True, cache=False))
    assert pairs(classes, boxes) == on_disk


def test_load_splits_batches_train_and_val(aug):
    train_ds, val_ds, train_labels, val_labels = load_splits(aug[0], image_size=24, batch_size=4)
    x, (c, b) = next(iter(train_ds))
    assert x.shape == (4, 24, 24, 3) and c.shape == (4, 1) and b.shape == (4, 4)
    assert len(train_labels) == len(val_labels) == 10


def test_cache_policy_by_size():
    assert cache_fits(338 * 42, 128)  # ~0.7 GB of decoded train images
    assert not cache_fits(338 * 60 * 4, 224)


def test_missing_data_is_one_clear_line(tmp_path):
    with pytest.raises(FacetrackerError, match="augmented data folder not found.*facetracker augment"):
        read_split(tmp_path / "aug_data", "train")
    (tmp_path / "aug_data" / "train" / "images").mkdir(parents=True)
    with pytest.raises(FacetrackerError, match="no val split"):
        read_split(tmp_path / "aug_data", "val")
    (tmp_path / "aug_data" / "train" / "labels").mkdir()
    with pytest.raises(FacetrackerError, match="the train split has no images"):
        read_split(tmp_path / "aug_data", "train")


def test_labels_that_do_not_match_images_are_refused(aug):
    aug_dir, written = aug
    labels_dir, images_dir = aug_dir / "train" / "labels", aug_dir / "train" / "images"
    first = sorted(written)[0].removesuffix(".jpg")
    moved = labels_dir / f"{first}.json"
    moved.rename(aug_dir / "spare.json")
    with pytest.raises(FacetrackerError, match=f"1 augmented image\\(s\\) have no label, e.g. {first}"):
        read_split(aug_dir, "train")
    (aug_dir / "spare.json").rename(moved)
    (images_dir / f"{first}.jpg").unlink()
    with pytest.raises(FacetrackerError, match=f"1 label\\(s\\) have no image, e.g. {first}.json"):
        read_split(aug_dir, "train")


def test_malformed_label_names_the_file(aug):
    aug_dir, written = aug
    label = aug_dir / "val" / "labels" / (sorted(written)[1].removesuffix(".jpg") + ".json")
    label.write_text('{"image": "x.jpg", "bbox": [0.1, 0.2], "class": 1}')
    with pytest.raises(FacetrackerError, match="bbox of 4 numbers") as err:
        read_split(aug_dir, "val")
    assert str(label) in str(err.value)
    label.write_text("{not json")
    with pytest.raises(FacetrackerError, match="unreadable augmented label"):
        read_split(aug_dir, "val")


def test_a_split_without_faces_is_refused(aug):
    aug_dir, _ = aug
    for label in (aug_dir / "val" / "labels").glob("*.json"):
        label.write_text(json.dumps({"image": label.stem + ".jpg", "bbox": [0, 0, 0, 0], "class": 0}))
    with pytest.raises(FacetrackerError, match="the val split has no face images \\(10 negatives only\\)"):
        read_split(aug_dir, "val")
