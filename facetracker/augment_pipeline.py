"""The albumentations pipelines of `facetracker augment`, and face-free background regions. No file I/O here.

Geometry is relative to each image (any size or aspect ratio) and every variant ends as a fixed square, never
squashed further than a crop of config.AUG_CROP_RATIO would be: the whole frame letterboxed into the square
(scaled to fit, aspect kept, grey bars), exactly what inference does with any camera frame; that letterboxed
frame shrunk inside a grey border; or a random crop of near-square aspect resized to the square. Every face
box of the image goes through albumentations' bbox handling: each moves with the pixels, is clipped to the
square and is dropped when less than config.AUG_MIN_VISIBILITY of it is left.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

from facetracker import config
from facetracker.labels import Box

Region = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive


def image_seed(seed: int, stem: str, purpose: str = "variants") -> int:
    """A seed per (run seed, image, purpose): output does not depend on worker count or order.

    hashlib, not hash(): Python salts str hashes per process."""
    digest = hashlib.sha256(f"{seed}:{stem}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def seed_pipeline(pipeline: A.Compose, seed: int) -> A.Compose:
    """Give every transform of the pipeline ONE shared pair of generators.

    Not A.Compose(seed=...): in albumentations 2.0.8 that seeds each transform with the same seed, so their
    draws move in lock-step (flip and grayscale, both p=0.5, are then applied always together or never)."""
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return pipeline


def photometric() -> list:
    """Colour and quality changes, the same for faces and background crops (so style cannot tell them apart).

    The notebook's brightness/contrast, gamma and RGB shift, plus what new rooms, lights and cameras bring:
    hue/saturation, grayscale, blur, sensor noise and JPEG artefacts."""
    return [
        A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=0.6),
        A.RandomGamma(gamma_limit=(60, 160), p=0.3),
        A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20, p=0.4),
        A.HueSaturationValue(hue_shift_limit=12, sat_shift_limit=40, val_shift_limit=20, p=0.4),
        A.ToGray(p=config.AUG_GRAY_SHARE),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)), A.MotionBlur(blur_limit=(3, 7))],
                p=0.15),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.15),
        A.ImageCompression(quality_range=(35, 90), p=0.3),
    ]


def variant_pipeline(size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """Pipeline for the variants of any source image, output size x size, boxes in pascal_voc pixels.

    Call it with bboxes=[every face box] and classes=[one label per box]; the boxes that come out are the faces
    the variant still shows."""
    full, zoom_out = config.AUG_FULL_FRAME_SHARE, config.AUG_ZOOM_OUT_SHARE
    return A.Compose(
        [
            # No step may shrink or move the picture after a step that cut a box (the boxes are judged only at the
            # end): it would bring the cut-off part of the box back in, over grey fill where no face was. So the
            # tilt comes after the letterbox (which cuts nothing) but before the crop, and the zoom-out is one step.
            A.OneOf([
                A.Sequential([*letterbox(size), tilt()], p=full),
                A.Sequential([tilt(), crop_view(size)], p=1 - full - zoom_out),
                zoom_out_view(size, p=zoom_out),
            ], p=1.0),
            A.HorizontalFlip(p=0.5),
            *photometric(),
        ],
        # check_each_transform=False: the boxes are clipped and judged once, at the end, so min_visibility measures
        # what is left of each whole face after tilt + crop together, not after each step (also ~30 % faster).
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"], clip=True,
                                 min_visibility=config.AUG_MIN_VISIBILITY, min_width=2, min_height=2,
                                 check_each_transform=False),
    )


def letterbox(size: int) -> list:
    """The whole frame scaled to fit the square, aspect kept, centred between grey bars: what inference sees
    (facetracker.boxes.Letterbox). Squashing a 4:3 or 16:9 frame instead would teach faces of the wrong shape."""
    return [
        A.LongestMaxSize(max_size=size, area_for_downscale="image"),
        A.PadIfNeeded(size, size, position="center", border_mode=cv2.BORDER_CONSTANT, fill=config.AUG_BORDER_FILL),
    ]


def tilt() -> A.Affine:
    """Small tilt / zoom / shift, one scale for both axes; grey borders rather than reflections, which would copy a
    face unlabelled."""
    return A.Affine(scale=(0.85, 1.15), keep_ratio=True, rotate=(-10, 10), translate_percent=(-0.05, 0.05),
                    rotate_method="ellipse", border_mode=cv2.BORDER_CONSTANT, fill=config.AUG_BORDER_FILL, p=0.3)


def crop_view(size: int, p: float = 1.0) -> A.RandomResizedCrop:
    """A random crop relative to the image size: faces bigger and off-centre, sometimes cut.

    Its aspect stays within config.AUG_CROP_RATIO around square, whatever the image's own, so resizing it to the
    square stretches a face by at most that ratio (a little shape jitter, never a 16:9 frame squashed)."""
    return A.RandomResizedCrop((size, size), scale=config.AUG_CROP_SCALE, ratio=config.AUG_CROP_RATIO,
                               area_for_downscale="image", p=p)


def zoom_out_view(size: int, p: float) -> A.Sequential:
    """The letterboxed frame shrunk inside a grey border: the face smaller than in any training frame.

    Crops only ever make faces bigger; a camera further away (or another person's way of sitting) makes them
    smaller, and a model never shown small faces predicts a box of the size it always saw. keep_ratio: one scale
    for both axes, so the face keeps the shape the letterbox gave it."""
    return A.Sequential([
        *letterbox(size),
        A.Affine(scale=config.AUG_ZOOM_OUT_SCALE, keep_ratio=True, translate_percent=(-0.2, 0.2),
                 border_mode=cv2.BORDER_CONSTANT, fill=config.AUG_BORDER_FILL, p=1.0),
    ], p=p)


def background_pipeline(size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """Pipeline for a face-free crop: resized to the square like the variant crops (their aspect is drawn from
    the same near-square range), flip, same colour changes as the face variants."""
    return A.Compose([A.Resize(size, size, area_for_downscale="image"), A.HorizontalFlip(p=0.5), *photometric()])


def canvas_pipeline(size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """A face-free picture of any aspect -> the size x size canvas a face is pasted on: scaled so its short side
    fits, then the centre cut out. Nothing is stretched, and a part of a face-free picture stays face-free."""
    return A.Compose([A.SmallestMaxSize(max_size=size, area_for_downscale="image"), A.CenterCrop(size, size)])


def background_regions(width: int, height: int, boxes: Sequence[Box], count: int, rng: np.random.Generator,
                       candidates_per_region: int = 50) -> list[Region]:
    """Up to `count` random regions of the image that stay clear of EVERY face box plus a margin.

    Sizes and aspects are drawn like the variant crops; candidates that are too small or touch any face are
    dropped (drawn all at once with numpy: a Python loop of draws cost more than the crops themselves).
    Fewer regions come back when the faces leave too little free space."""
    n = count * candidates_per_region
    low, high = config.AUG_CROP_RATIO
    area = rng.uniform(*config.AUG_BACKGROUND_SCALE, n) * width * height
    aspect = np.exp(rng.uniform(math.log(low), math.log(high), n))
    w, h = np.round(np.sqrt(area * aspect)).astype(int), np.round(np.sqrt(area / aspect)).astype(int)
    x = (rng.uniform(size=n) * (width - w + 1)).astype(int)
    y = (rng.uniform(size=n) * (height - h + 1)).astype(int)
    touches = np.zeros(n, bool)
    for box in boxes:
        cx1, cy1, cx2, cy2 = _expanded(box, width, height)
        touches |= (x < cx2) & (cx1 < x + w) & (y < cy2) & (cy1 < y + h)
    side = config.AUG_BACKGROUND_MIN_SIDE
    ok = (w >= side) & (h >= side) & (w <= width) & (h <= height) & ~touches
    return [(int(x[i]), int(y[i]), int(x[i] + w[i]), int(y[i] + h[i])) for i in np.flatnonzero(ok)[:count]]


def _expanded(box, width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * config.AUG_BACKGROUND_MARGIN, (y2 - y1) * config.AUG_BACKGROUND_MARGIN
    return max(0.0, x1 - mx), max(0.0, y1 - my), min(float(width), x2 + mx), min(float(height), y2 + my)


def overlaps(a, b) -> bool:
    """True when two x1, y1, x2, y2 rectangles share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def paste_pipeline(size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """Pipeline for a composed picture (a face pasted on another picture's background): flip + colour changes."""
    return A.Compose([A.HorizontalFlip(p=0.5), *photometric()],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"]))


def paste_face(canvas, image, boxes: Sequence[Box], face: int,
               rng: np.random.Generator) -> tuple[np.ndarray, list[Box]]:
    """Paste face number `face` of `image` (boxes: every face box of it, in pixels) onto the square `canvas` at a
    random size and place.

    The face is cut with a margin of its own surroundings and blended in with a soft edge, so the seam lies
    outside the box and is gradual: the box edges themselves carry no trace of the paste. Returns the new picture
    and the faces it now shows, in its pixels: the pasted face first, then any other face of `image` that came
    along in the margin and is still at least config.AUG_MIN_VISIBILITY there (an unlabelled half face would
    teach "no face" on a face). Why paste: in every real frame the face sits on the same person's body in the same
    room at the same distance; moved onto other backgrounds, places and sizes, the network can only find it by
    the face itself."""
    size = canvas.shape[0]
    (cx1, cy1, cx2, cy2), scale, (pw, ph) = _cut_around(boxes[face], image.shape[1], image.shape[0], size, rng)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(image[cy1:cy2, cx1:cx2], (pw, ph), interpolation=interpolation)
    ox, oy = int(rng.integers(0, size - pw + 1)), int(rng.integers(0, size - ph + 1))
    in_patch = [((x1 - cx1) * scale, (y1 - cy1) * scale, (x2 - cx1) * scale, (y2 - cy1) * scale)
                for x1, y1, x2, y2 in boxes]
    alpha = soft_mask(pw, ph, in_patch[face])
    out = canvas.astype(np.float32)
    out[oy:oy + ph, ox:ox + pw] = alpha * patch + (1 - alpha) * out[oy:oy + ph, ox:ox + pw]
    carried = [b for i, b in enumerate(in_patch)
               if i != face and visible_share(b, alpha) >= config.AUG_MIN_VISIBILITY]
    shown = [_clipped(b, pw, ph) for b in [in_patch[face], *carried]]
    return np.clip(out, 0, 255).astype(np.uint8), [(x1 + ox, y1 + oy, x2 + ox, y2 + oy) for x1, y1, x2, y2 in shown]


def _cut_around(box, width: int, height: int, size: int, rng: np.random.Generator):
    """(region cut with the face: its box plus a margin, the scale it is pasted at, (width, height) pasted)."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    margin = config.AUG_PASTE_MARGIN
    cut = (max(0, int(x1 - margin * bw)), max(0, int(y1 - margin * bh)),
           min(width, int(np.ceil(x2 + margin * bw))), min(height, int(np.ceil(y2 + margin * bh))))
    scale = rng.uniform(*config.AUG_PASTE_FACE_SIZE) * size / max(bw, bh)  # face side as a fraction of the canvas
    pw, ph = max(2, round((cut[2] - cut[0]) * scale)), max(2, round((cut[3] - cut[1]) * scale))
    if pw > size or ph > size:  # a face too big for the canvas with its margin: shrink to fit
        shrink = size / max(pw, ph)
        scale, pw, ph = scale * shrink, min(size, round(pw * shrink)), min(size, round(ph * shrink))
    return cut, scale, (pw, ph)


def visible_share(box, alpha: np.ndarray) -> float:
    """How much of a box (pixels of a pasted patch, may reach outside it) the patch shows, weighted by the blend:
    a face in the fading margin is only partly there."""
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    height, width = alpha.shape[:2]
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    inside_x, inside_y = (xs >= x1) & (xs < x2), (ys >= y1) & (ys < y2)
    return float(alpha[np.ix_(inside_y, inside_x)].sum() / area) if area > 0 else 0.0


def _clipped(box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (float(min(max(x1, 0), width)), float(min(max(y1, 0), height)),
            float(min(max(x2, 0), width)), float(min(max(y2, 0), height)))


def soft_mask(width: int, height: int, box) -> np.ndarray:
    """Blend weights of a pasted patch: 1 over the face box, fading to 0 across the margin around it."""
    x1, y1, x2, y2 = box
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    # distance outside the box, as a fraction of the margin on that side (0 inside the box)
    dx = np.maximum(np.maximum(x1 - xs, xs - x2), 0) / max(x1, width - x2, 1e-6)
    dy = np.maximum(np.maximum(y1 - ys, ys - y2), 0) / max(y1, height - y2, 1e-6)
    fade = np.clip(1 - np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2), 0, 1)
    return (fade * fade * (3 - 2 * fade))[..., None].astype(np.float32)  # smoothstep: no visible rim
