"""Build a small aug_data/ folder for training tests straight from real labelme data (no albumentations).

Each real image becomes a small JPEG plus its mirror image, with the aug JSON format written directly:
{"image": "<stem>.<k>.jpg", "bbox": [x1, y1, x2, y2] normalised, "class": 1} (class 0, zeros for negatives).
Independent of facetracker.augment so the model tests do not depend on the augmenter."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from facetracker.labels import scan


def write_aug_split(data_dir: Path, dest: Path, size: int = 64, mirror: bool = True) -> dict[str, list]:
    """Write dest/{images,labels} from data_dir/{images,labels}; returns {file name: [class, bbox]}."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "labels").mkdir(parents=True, exist_ok=True)
    written = {}
    for sample in scan(data_dir / "images", data_dir / "labels").samples:
        image = cv2.resize(cv2.imread(str(sample.image)), (size, size), interpolation=cv2.INTER_AREA)
        box = sample.normalised_box()
        variants = [(image, box)]
        if mirror:
            flipped = None if box is None else (1 - box[2], box[1], 1 - box[0], box[3])
            variants.append((cv2.flip(image, 1), flipped))
        for k, (pixels, bbox) in enumerate(variants):
            name = f"{sample.image.stem}.{k}"
            cv2.imwrite(str(dest / "images" / f"{name}.jpg"), pixels)
            label = {"image": f"{name}.jpg", "bbox": list(bbox or (0, 0, 0, 0)), "class": int(bbox is not None)}
            (dest / "labels" / f"{name}.json").write_text(json.dumps(label))
            written[f"{name}.jpg"] = [label["class"], label["bbox"]]
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
