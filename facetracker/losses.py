"""Losses and box IoU for FaceTracker, as plain functions of tensors (keras ops, any batch size).

Boxes are [x1, y1, x2, y2] normalised to [0, 1]. Box losses are averaged over images WITH a face only:
the original notebook also pulled the box of every negative image towards [0, 0, 0, 0], which drags all
predictions to the top-left corner and teaches nothing about faces.
"""

from __future__ import annotations

import keras
from keras import ops

from facetracker.errors import FacetrackerError

EPS = 1e-7


def box_iou(true_box, pred_box):
    """IoU of each pair of boxes (row i with row i), shape (N,)."""
    inter, union, _ = _overlap(true_box, pred_box)
    return inter / (union + EPS)


def _overlap(a, b):
    a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
    iw = ops.maximum(ops.minimum(a[:, 2], b[:, 2]) - ops.maximum(a[:, 0], b[:, 0]), 0.0)
    ih = ops.maximum(ops.minimum(a[:, 3], b[:, 3]) - ops.maximum(a[:, 1], b[:, 1]), 0.0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    # Smallest box enclosing both, for GIoU.
    hull = (ops.maximum(a[:, 2], b[:, 2]) - ops.minimum(a[:, 0], b[:, 0])) * \
           (ops.maximum(a[:, 3], b[:, 3]) - ops.minimum(a[:, 1], b[:, 1]))
    return inter, area_a + area_b - inter, hull


def corner_loss(true_box, pred_box):
    """The notebook's localization loss per image: squared error of the top-left corner + of width and height."""
    t, p = ops.cast(true_box, "float32"), ops.cast(pred_box, "float32")
    corner = ops.sum(ops.square(t[:, :2] - p[:, :2]), axis=-1)
    size = ops.sum(ops.square((t[:, 2:] - t[:, :2]) - (p[:, 2:] - p[:, :2])), axis=-1)
    return corner + size


def giou_loss(true_box, pred_box):
    """1 - generalised IoU per image (Rezatofighi et al. 2019): still has a gradient when boxes do not overlap."""
    inter, union, hull = _overlap(true_box, pred_box)
    iou = inter / (union + EPS)
    return 1.0 - (iou - (hull - union) / (hull + EPS))


def ciou_loss(true_box, pred_box):
    """1 - complete IoU per image, from Keras' own keras.utils.bounding_boxes.compute_ciou."""
    ciou = keras.utils.bounding_boxes.compute_ciou(ops.cast(true_box, "float32"), ops.cast(pred_box, "float32"),
                                                   bounding_box_format="xyxy")
    return 1.0 - ciou


def giou_l1_loss(true_box, pred_box, l1_weight: float = 2.5):
    """GIoU plus the L1 distance of the corners, DETR's box loss (weights 2 : 5): GIoU scores the overlap, while
    L1 keeps a steady pull on every coordinate, which speeds up training from scratch."""
    l1 = ops.sum(ops.abs(ops.cast(true_box, "float32") - ops.cast(pred_box, "float32")), axis=-1)
    return giou_loss(true_box, pred_box) + l1_weight * l1


BOX_LOSSES = {"corner": corner_loss, "giou": giou_loss, "ciou": ciou_loss, "giou_l1": giou_l1_loss}


def check_box_loss(name: str) -> None:
    if name not in BOX_LOSSES:
        raise FacetrackerError(f"unknown box loss '{name}'", None, f"choose one of: {', '.join(BOX_LOSSES)}")


def class_loss(true_class, score):
    """Binary cross-entropy of the face score, averaged over the batch."""
    true_class = ops.reshape(ops.cast(true_class, "float32"), (-1, 1))
    return ops.mean(keras.losses.binary_crossentropy(true_class, ops.reshape(score, (-1, 1))))


def masked_box_loss(true_class, true_box, pred_box, kind: str = "corner"):
    """Mean box loss over the images that have a face; 0 for a batch without faces."""
    check_box_loss(kind)
    face = ops.reshape(ops.cast(true_class, "float32"), (-1,))
    per_image = BOX_LOSSES[kind](true_box, pred_box)
    return ops.sum(per_image * face) / ops.maximum(ops.sum(face), 1.0)


def face_tracker_losses(true_class, true_box, score, pred_box, class_weight: float = 1.0, box_weight: float = 1.0,
                        box_loss: str = "corner") -> dict:
    """{"loss": weighted total, "class_loss": BCE, "box_loss": masked box loss}."""
    cls = class_loss(true_class, score)
    box = masked_box_loss(true_class, true_box, pred_box, box_loss)
    return {"loss": class_weight * cls + box_weight * box, "class_loss": cls, "box_loss": box}
