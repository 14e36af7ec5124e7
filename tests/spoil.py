"""Ways real users spoil their data, shared by the split and augment tests: each turns a good labelled image bad."""

from __future__ import annotations

import json
from pathlib import Path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_label(path: Path, edit) -> None:
    label = json.loads(path.read_text())
    edit(label)
    path.write_text(json.dumps(label))


def _polygon(label):
    (x1, y1), (x2, y2) = label["shapes"][0]["points"]
    label["shapes"][0].update(shape_type="polygon", points=[[x1, y1], [x2, y1], [x2, y2], [x1, y2]])


def _several(label):
    small = json.loads(json.dumps(label["shapes"][0]))
    (x1, y1), _ = small["points"]
    small["points"] = [[x1, y1], [x1 + 5, y1 + 5]]
    label["shapes"].append(small)


def _half_size(label):
    for shape in label["shapes"]:
        shape["points"] = [[x / 2, y / 2] for x, y in shape["points"]]
    label["imageWidth"], label["imageHeight"] = 320, 240


def spoil_first_face(data: Path, case: str) -> tuple[Path, Path]:
    """Spoil the first labelled image of data/images (or of the images/labels folders given as data)."""
    image = next(p for p in sorted((data / "images").glob("*.jpg")) if (data / "labels" / f"{p.stem}.json").exists())
    label = data / "labels" / f"{image.stem}.json"
    BAD_INPUT[case][0](image, label)
    return image, label


BAD_INPUT = {
    # case: (how to spoil a labelled image, is the image still usable, what its face box becomes:
    #        "same" = the box of the untouched label, "none" = a negative, None = not used at all)
    "truncated jpeg": (lambda image, label: _truncate(image), False, None),
    "label not json": (lambda image, label: label.write_text("{not json"), False, None),
    "unknown class": (lambda image, label: _edit_label(label, lambda d: d["shapes"][0].update(label="person")),
                      False, None),
    "zero shapes": (lambda image, label: _edit_label(label, lambda d: d.update(shapes=[])), True, "none"),
    "several shapes": (lambda image, label: _edit_label(label, _several), True, "same"),
    "polygon": (lambda image, label: _edit_label(label, _polygon), True, "same"),
    "size mismatch": (lambda image, label: _edit_label(label, _half_size), True, "same"),
}
