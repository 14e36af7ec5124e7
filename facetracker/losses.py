"""Losses and box IoU for FaceTracker, as plain functions of tensors (keras ops, any batch size).

Boxes are [x1, y1, x2, y2] normalised to [0, 1]. Box losses count only the cells that hold a face: the original
notebook also pulled the box of every negative image towards [0, 0, 0, 0], which drags all predictions to the
top-left corner and teaches nothing about faces.
"""

from __future__ import annotations

import keras
from keras import ops

from facetracker import config
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


def focal_loss(positive, logits, gamma: float = config.FOCAL_GAMMA, alpha: float = config.FOCAL_ALPHA):
    """Sigmoid focal loss (Lin et al. 2017) summed over cells, per image: (B, C) targets and logits -> (B,).

    Nearly every cell of a frame is background; the focal term stops those easy cells from drowning the few
    that hold a face (plain binary cross-entropy would)."""
    per_cell = keras.losses.binary_focal_crossentropy(
        ops.expand_dims(positive, -1), ops.expand_dims(logits, -1), apply_class_balancing=True, alpha=alpha,
        gamma=gamma, from_logits=True)
    return ops.sum(per_cell, axis=-1)


def quality_focal_loss(quality, logits, beta: float = config.FOCAL_GAMMA):
    """Quality focal loss (Li et al. 2020, Generalized Focal Loss) summed over cells, per image: (B, C) -> (B,).

    The target of a face cell is the IoU of its own predicted box with the face (0 elsewhere), so the score ranks
    a well-placed box above a badly placed one: NMS keeps the better box, and AP, which ranks by score, counts it
    first. |target - p|^beta plays the focal term's part for the many easy background cells."""
    per_cell = ops.binary_crossentropy(quality, logits, from_logits=True)
    return ops.sum(per_cell * ops.power(ops.abs(quality - ops.sigmoid(logits)), beta), axis=-1)


SCORE_LOSSES = ("focal", "quality_focal")


def check_score_loss(name: str) -> None:
    if name not in SCORE_LOSSES:
        raise FacetrackerError(f"unknown score loss '{name}'", None, f"choose one of: {', '.join(SCORE_LOSSES)}")


def dense_losses(true_boxes, logits, distances, grid: int, class_weight: float = 1.0, box_weight: float = 1.0,
                 box_loss: str = config.BOX_LOSS, score_loss: str = config.SCORE_LOSS) -> dict:
    """The dual loss of the dense detector over a batch.

    true_boxes (B, M, 4) input fractions (zero rows are padding; an image with none is a negative), logits
    (B, C), distances (B, C, 4). Both terms are normalised by the number of face cells in the batch, as in
    RetinaNet/FCOS, so a batch of small faces weighs as much as one of large faces.
    score_loss: "focal" (is this cell a face?) or "quality_focal" (how well does its box fit the face?).
    Returns {"loss", "class_loss", "box_loss", "iou" (mean IoU on face cells), "positives"}."""
    check_box_loss(box_loss), check_score_loss(score_loss)
    from facetracker.boxes import assign_faces, decode_boxes

    positive, matched = assign_faces(true_boxes, grid)
    positives = ops.sum(positive)
    normaliser = ops.maximum(positives, 1.0)
    predicted = ops.reshape(decode_boxes(distances, grid), (-1, 4))
    matched, weight = ops.reshape(matched, (-1, 4)), ops.reshape(positive, (-1,))
    cell_iou = box_iou(matched, predicted) * weight
    if score_loss == "quality_focal":
        # The IoU is a target, not something the score may pull on: no gradient into the boxes from here.
        quality = ops.reshape(ops.stop_gradient(cell_iou), ops.shape(positive))
        cls = ops.sum(quality_focal_loss(quality, logits)) / normaliser
    else:
        cls = ops.sum(focal_loss(positive, logits)) / normaliser
    box = ops.sum(BOX_LOSSES[box_loss](matched, predicted) * weight) / normaliser
    iou = ops.sum(cell_iou) / normaliser
    return {"loss": class_weight * cls + box_weight * box, "class_loss": cls, "box_loss": box, "iou": iou,
            "positives": positives}
