"""Box geometry of the dense face detector, in one place: letterboxing, IoU, the cell grid, target assignment,
box decoding, non-maximum suppression, merging the faces found in a frame and in its mirror image, and the tiles
that let the model see the small faces of a big photo.

Coordinates: boxes are [x1, y1, x2, y2]. Inside the model they are fractions of the model input, a square that
training uses or, for inference, one fitted to the frame's aspect (`fitted_input`); the frame is letterboxed into
it (scaled to fit, aspect kept, centred, grey bars), so a face keeps its shape whether the camera is 4:3, 16:9 or
portrait. `Letterbox` maps between frame pixels and input fractions.

The detector is anchor-free (FCOS-style): every cell of a stride-8 grid predicts a face logit and its distances
to the four sides of the face box (left, top, right, bottom), in cells, through exp so they stay positive. A cell
learns a face when its centre lies in the central part of that face's box; the smallest such face wins ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from facetracker import config


# ---------------------------------------------------------------- letterbox (numpy, per frame)


@dataclass(frozen=True)
class Letterbox:
    """How a width x height frame sits in the model input: scaled by `scale`, offset by `pad`.

    The input is side x side, or `fit` = (input width, input height) for a model fitted to the frame's aspect
    (fitted_input): the same scale, fewer grey bars to compute."""

    width: int
    height: int
    side: int
    fit: tuple[int, int] | None = None

    # The layout is worked out once per Letterbox (cached_property): a video's frames share one, and to_frame runs
    # on every frame of `live`.
    @cached_property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return self.fit or (self.side, self.side)

    @cached_property
    def scale(self) -> float:
        input_width, input_height = self.input_size
        return min(input_width / self.width, input_height / self.height)

    @cached_property
    def size(self) -> tuple[int, int]:
        """(width, height) of the scaled frame inside the input, at least 1 pixel each."""
        return max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale))

    @cached_property
    def pad(self) -> tuple[int, int]:
        (w, h), (input_width, input_height) = self.size, self.input_size
        return (input_width - w) // 2, (input_height - h) // 2

    @cached_property
    def _input_pixels(self) -> np.ndarray:
        """(4,) input width, height, width, height: box fractions of the input times this are its pixels."""
        return np.tile(np.asarray(self.input_size, np.float32), 2)

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Input fractions (..., 4) -> pixels of the frame, clipped to it."""
        w, h = self.size
        px, py = self.pad
        out = np.asarray(boxes, np.float32) * self._input_pixels
        out[..., 0::2] = np.clip((out[..., 0::2] - px) * (self.width / w), 0, self.width)
        out[..., 1::2] = np.clip((out[..., 1::2] - py) * (self.height / h), 0, self.height)
        return out

    def to_input(self, boxes_px: np.ndarray) -> np.ndarray:
        """Pixels of the frame (..., 4) -> fractions of the model input."""
        w, h = self.size
        px, py = self.pad
        out = np.array(boxes_px, np.float32)
        out[..., 0::2] = out[..., 0::2] * (w / self.width) + px
        out[..., 1::2] = out[..., 1::2] * (h / self.height) + py
        return out / self._input_pixels


def fitted_input(width: int, height: int, side: int, multiple: int = 32) -> tuple[int, int]:
    """(width, height) of the smallest model input that holds a width x height frame at the scale of a side x side
    input: its long side is `side`, its short side the frame's, rounded up to `multiple` (the stride-32 grid
    needs whole cells). A 640x480 frame at 192 gets 192x160 instead of 192x192: the same faces at the same size,
    a sixth less to compute (docs/quality.md, "Inputs fitted to the frame")."""
    scale = side / max(width, height)
    return tuple(min(side, max(multiple, -(-round(n * scale) // multiple) * multiple)) for n in (width, height))


# ---------------------------------------------------------------- IoU (numpy)


def as_boxes(boxes) -> np.ndarray:
    """Any sequence of [x1, y1, x2, y2] (also empty) as a float64 (N, 4) array."""
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """IoU of every box of `boxes_a` (M, 4) with every box of `boxes_b` (N, 4): shape (M, N)."""
    return _iou(as_boxes(boxes_a)[:, None], as_boxes(boxes_b)[None])


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """IoU of row i of each (N, 4) [x1, y1, x2, y2] array with row i of the other: shape (N,)."""
    return _iou(as_boxes(boxes_a), as_boxes(boxes_b))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Broadcasting over the leading axes; boxes without area overlap nothing (IoU 0, never a division by 0).
    inter = _intersection(a, b)
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) \
        - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area shared by boxes a and b, broadcasting over the leading axes."""
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return inter_w * inter_h


# ---------------------------------------------------------------- a frame and its mirror image (numpy)


def unmirror(boxes, width: float) -> np.ndarray:
    """Boxes found in a horizontally flipped frame of `width` pixels -> the same boxes in the frame itself."""
    boxes = as_boxes(boxes).copy()
    boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    return boxes


def merge_mirrored(scores, boxes, mirrored_scores, mirrored_boxes, same_face_iou: float = config.NMS_IOU):
    """The faces of a frame seen twice, as it is and mirrored (boxes already `unmirror`ed), as one list.

    Faces of the two views are paired one to one on IoU (scipy's Hungarian assignment); a pair becomes one face
    with the mean score and the score-weighted mean box, and a face seen in one view only keeps half its score,
    since the other view saw nothing there. The model is not mirror-symmetric, so its two answers differ a little,
    and their mean is steadier: a face scores high when both views agree, a chance pattern rarely does.
    Returns (scores (K,), boxes (K, 4)) sorted by score, high to low."""
    from scipy.optimize import linear_sum_assignment

    scores, mirrored_scores = np.asarray(scores, np.float64), np.asarray(mirrored_scores, np.float64)
    boxes, mirrored_boxes = as_boxes(boxes), as_boxes(mirrored_boxes)
    overlaps = iou_matrix(boxes, mirrored_boxes)
    rows, cols = linear_sum_assignment(-overlaps) if overlaps.size else (np.zeros(0, int), np.zeros(0, int))
    paired = overlaps[rows, cols] >= same_face_iou
    rows, cols = rows[paired], cols[paired]
    weights = np.stack([scores[rows], mirrored_scores[cols]], axis=1)
    pair_boxes = (boxes[rows] * weights[:, :1] + mirrored_boxes[cols] * weights[:, 1:]) / \
        np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    alone = np.setdiff1d(np.arange(len(scores)), rows)
    alone_mirrored = np.setdiff1d(np.arange(len(mirrored_scores)), cols)
    merged_scores = np.concatenate([weights.mean(axis=1), scores[alone] / 2, mirrored_scores[alone_mirrored] / 2])
    merged_boxes = np.concatenate([pair_boxes, boxes[alone], mirrored_boxes[alone_mirrored]])
    order = np.argsort(-merged_scores, kind="stable")
    return merged_scores[order], merged_boxes[order]


# ---------------------------------------------------------------- tiles of a big still image (numpy)


def tiles(width: int, height: int, min_side: int | None = None, overlap: float = config.TILE_OVERLAP,
          from_side: int = config.TILE_FROM_SIDE, min_share: float | None = None) -> list[tuple[int, int, int, int]]:
    """Overlapping square windows (x1, y1, x2, y2) over a width x height image, level by level: windows of half
    its longer side, then a quarter, ... while they are at least `min_side` pixels and `min_share` of the longer
    side; none for an image whose longer side is under `from_side` (a webcam frame: the model was trained to see it
    whole).

    The whole image shrinks into the model's input, so the faces of a group photo end up a few pixels high; in a
    window a level down they are twice as big. Neighbouring windows overlap by `overlap` of their side, so a face
    smaller than that lies whole inside at least one of them. `min_share` stops the pyramid at the size of the faces
    a photo of that size is likely to hold: a 4000 px photo's faces are seldom small enough for its 250 px windows,
    which then only add clutter, while the smallest faces of a 1920 px photo need its 240 px ones. None:
    config.TILE_MIN_SIDE and config.TILE_MIN_SHARE at the time of the call (benchmarks/group_photos.py changes
    them)."""
    min_side = config.TILE_MIN_SIDE if min_side is None else min_side
    min_share = config.TILE_MIN_SHARE if min_share is None else min_share
    min_side = max(min_side, min_share * max(width, height))
    found = []
    side = max(width, height) / 2 if max(width, height) >= from_side else 0
    while side >= min_side:
        step = side * (1 - overlap)
        xs = _starts(width, side, step)
        ys = _starts(height, side, step)
        found += [(round(x), round(y), round(min(width, x + side)), round(min(height, y + side)))
                  for y in ys for x in xs]
        side /= 2
    return found


def _starts(length: int, side: float, step: float) -> np.ndarray:
    """Window starts along one axis: evenly spread, first at 0 and last flush with the end."""
    if length <= side:
        return np.zeros(1)
    return np.linspace(0, length - side, int(np.ceil((length - side) / step)) + 1)


def cut_by_window(boxes, window: tuple[int, int, int, int], width: int, height: int, margin: float = 2.0
                  ) -> np.ndarray:
    """(N,) True for boxes (in image pixels) that touch a side of `window` lying inside the image: faces the window
    cut, which a neighbouring or bigger window holds whole."""
    boxes = as_boxes(boxes)
    x1, y1, x2, y2 = window
    return (((boxes[:, 0] <= x1 + margin) & (x1 > 0)) | ((boxes[:, 1] <= y1 + margin) & (y1 > 0))
            | ((boxes[:, 2] >= x2 - margin) & (x2 < width)) | ((boxes[:, 3] >= y2 - margin) & (y2 < height)))


def merge_views(scores, boxes, iou: float = config.NMS_IOU, inside: float = config.TILE_INSIDE) -> np.ndarray:
    """Indices of the faces to keep, best first, among the detections of several views of one image (the whole
    image and its tiles): OpenCV's NMS, then a box lying mostly (`inside` of its area) within a better-scored kept
    box is dropped too -- a part of a big face (an eye and brow) that a small window took for a face."""
    import cv2

    scores, boxes = np.asarray(scores, np.float64).reshape(-1), as_boxes(boxes)
    if not len(scores):
        return np.zeros(0, int)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, iou), int).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    kept: list[int] = []
    for k in keep:
        overlap = _intersection(boxes[k], boxes[kept]) / max(areas[k], 1e-9)  # none kept yet: empty
        if not (overlap >= inside).any():
            kept.append(int(k))
    return np.asarray(kept, int)


# ---------------------------------------------------------------- the grid (TensorFlow, inside the model)


def grid_size(image_size: int, stride: int = config.STRIDE) -> int:
    return image_size // stride


def grid_shape(input_size: tuple[int, int], stride: int = config.STRIDE) -> tuple[int, int]:
    """(rows, columns) of cells of a width x height input."""
    width, height = input_size
    return height // stride, width // stride


def _rows_columns(grid) -> tuple[int, int]:
    """A square grid's side or (rows, columns) -> (rows, columns)."""
    return (int(grid), int(grid)) if np.ndim(grid) == 0 else (int(grid[0]), int(grid[1]))


def cell_centers(grid):
    """(rows*columns, 2) x, y centres of the cells as fractions of the input, row by row. `grid`: the side of a
    square grid or (rows, columns)."""
    import tensorflow as tf

    rows, columns = _rows_columns(grid)
    ys, xs = tf.meshgrid((tf.range(rows, dtype=tf.float32) + 0.5) / rows,
                         (tf.range(columns, dtype=tf.float32) + 0.5) / columns, indexing="ij")
    return tf.reshape(tf.stack([xs, ys], axis=-1), (-1, 2))


def cell_size(grid):
    """(4,) the width, height, width, height of a cell as fractions of the input."""
    import tensorflow as tf

    rows, columns = _rows_columns(grid)
    return tf.constant([1 / columns, 1 / rows] * 2, tf.float32)


def decode_boxes(distances, grid):
    """Raw side distances (B, C, 4) -> boxes (B, C, 4) as input fractions.

    The exp is clipped so an untrained head cannot overflow; exp(6) cells is 400 px at 8 px a cell, bigger than
    any input."""
    import tensorflow as tf

    sides = tf.exp(tf.clip_by_value(distances, -4.0, 6.0)) * cell_size(grid)
    centers = cell_centers(grid)[tf.newaxis]
    return tf.concat([centers - sides[..., :2], centers + sides[..., 2:]], axis=-1)


def assign_faces(true_boxes, grid, center_radius: float = config.CENTER_RADIUS):
    """Which cells learn which face.

    true_boxes (B, M, 4) input fractions, rows of zeros are padding. Returns (positive (B, C) float 0/1,
    matched (B, C, 4) the box each cell regresses). A cell is positive for a face when its centre lies inside the
    box's central part: within `center_radius` times the half-size of the box from its centre (at least half a cell, so even a face
    smaller than a cell owns the cell it sits in)."""
    import tensorflow as tf

    centers = cell_centers(grid)[tf.newaxis, :, tf.newaxis, :]  # (1, C, 1, 2)
    boxes = tf.cast(true_boxes, tf.float32)[:, tf.newaxis]  # (B, 1, M, 4)
    box_center = (boxes[..., :2] + boxes[..., 2:]) / 2
    half = (boxes[..., 2:] - boxes[..., :2]) / 2
    reach = tf.maximum(half * center_radius, cell_size(grid)[:2] / 2)
    # With center_radius <= 1 a near cell lies inside its box, except for a box smaller than a cell.
    near = tf.reduce_all(tf.abs(centers - box_center) <= reach + 1e-6, axis=-1)
    area = tf.reduce_prod(half * 2, axis=-1)  # (B, 1, M)
    candidate = near & (area > 0)
    # Among the faces a cell may learn, the smallest: a big face has other cells, a small one may have one.
    cost = tf.where(candidate, tf.broadcast_to(area, tf.shape(candidate)), tf.float32.max)
    best = tf.argmin(cost, axis=-1)  # (B, C)
    positive = tf.cast(tf.reduce_any(candidate, axis=-1), tf.float32)
    matched = tf.gather(tf.cast(true_boxes, tf.float32), best, batch_dims=1)
    return positive, matched


# ---------------------------------------------------------------- NMS (TensorFlow's own op)


def select_faces(scores, boxes, max_faces: int = config.MAX_FACES, iou: float = config.NMS_IOU,
                 min_score: float = config.MIN_SCORE):
    """Non-maximum suppression of one image's cells: scores (C,), boxes (C, 4) -> the `max_faces` best faces,
    (max_faces,) scores sorted high to low and (max_faces, 4) boxes, padded with zeros.

    tf.image.non_max_suppression_with_scores is NonMaxSuppressionV5, a builtin of TFLite and an ONNX operator,
    so every export carries it."""
    import tensorflow as tf

    # NMS wants [y1, x1, y2, x2]; which corner comes first does not matter for IoU, so pass xyxy as it is.
    keep, kept_scores = tf.image.non_max_suppression_with_scores(
        boxes, scores, max_output_size=max_faces, iou_threshold=iou, score_threshold=min_score)
    kept_boxes = tf.gather(boxes, keep)
    missing = max_faces - tf.shape(keep)[0]
    return (tf.pad(kept_scores, [[0, missing]]), tf.pad(kept_boxes, [[0, missing], [0, 0]]))
