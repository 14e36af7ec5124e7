"""Build a small aug_data/ folder for training tests straight from real labelme data (no albumentations).

Each real image becomes a small square JPEG, the whole frame letterboxed (scaled to fit, grey bars, as
`facetracker augment` and inference do it), plus its mirror image, with the aug JSON format written directly:
{"image": "<stem>.<k>.jpg", "bboxes": [[x1, y1, x2, y2], ...] normalised, every face, "class": 1}
("bboxes": [] and class 0 for negatives). Independent of facetracker.augment so the model tests do not depend on
the augmenter."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facetracker import config
from facetracker.boxes import Letterbox
from facetracker.labels import scan


def letterbox_image(image, size: int):
    """BGR frame -> size x size, aspect kept, centred between grey bars (facetracker.boxes.Letterbox)."""
    box = Letterbox(image.shape[1], image.shape[0], size)
    (width, height), (left, top) = box.size, box.pad
    scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    grey = (config.AUG_BORDER_FILL,) * 3
    return cv2.copyMakeBorder(scaled, top, size - height - top, left, size - width - left, cv2.BORDER_CONSTANT,
                              value=grey)


def write_aug_split(data_dir: Path, dest: Path, size: int = 64, mirror: bool = True) -> dict[str, list]:
    """Write dest/{images,labels} from data_dir/{images,labels}; returns {file name: [class, bboxes]}."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "labels").mkdir(parents=True, exist_ok=True)
    written = {}
    for sample in scan(data_dir / "images", data_dir / "labels").samples:
        image = letterbox_image(cv2.imread(str(sample.image)), size)
        boxes = [[round(float(v), 6) for v in box]
                 for box in Letterbox(*sample.size, size).to_input(np.asarray(sample.boxes).reshape(-1, 4))]
        variants = [(image, boxes)]
        if mirror:
            variants.append((cv2.flip(image, 1), [[round(1 - x2, 6), y1, round(1 - x1, 6), y2]
                                                  for x1, y1, x2, y2 in boxes]))
        for k, (pixels, bboxes) in enumerate(variants):
            name = f"{sample.image.stem}.{k}"
            cv2.imwrite(str(dest / "images" / f"{name}.jpg"), pixels)
            label = {"image": f"{name}.jpg", "bboxes": bboxes, "class": int(bool(bboxes))}
            (dest / "labels" / f"{name}.json").write_text(json.dumps(label))
            written[f"{name}.jpg"] = [label["class"], label["bboxes"]]
    return written


def make_aug_data(dataset_copy, root: Path, train: int = 6, val: int = 2, negatives: int = 1, size: int = 64,
                  name: str = "webcam-a") -> Path:
    """root/aug_data with train and val splits made of disjoint real images of one shared data set."""
    source = dataset_copy(name, limit=train + val, negatives=2 * negatives, dest=root / "source")
    images = sorted((source / "images").glob("*.jpg"))
    faces = [p for p in images if (source / "labels" / f"{p.stem}.json").exists()]
    empties = [p for p in images if p not in faces]
    parts = {"train": faces[:train] + empties[:negatives], "val": faces[train:] + empties[negatives:]}
    aug = root / "aug_data"
    for split, members in parts.items():
        part = root / "split" / split
        (part / "images").mkdir(parents=True, exist_ok=True)
        (part / "labels").mkdir(parents=True, exist_ok=True)
        for image in members:
            (part / "images" / image.name).write_bytes(image.read_bytes())
            label = source / "labels" / f"{image.stem}.json"
            if label.exists():
                (part / "labels" / label.name).write_bytes(label.read_bytes())
        write_aug_split(part, aug / split, size=size)
    return aug
