"""The albumentations pipelines of `facetracker augment`, and face-free background regions. No file I/O here.

Geometry is relative to each image (any size or aspect ratio) and every variant ends as a fixed square:
either the whole frame squashed to a square, exactly what inference does with a 640x480 camera frame, or a
random crop whose aspect range includes the image's own. Albumentations moves the box with the pixels.
"""

from __future__ import annotations

import hashlib
import math
import random

import albumentations as A
import cv2
import numpy as np

from facetracker import config

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


def aspect_range(width: int, height: int) -> tuple[float, float]:
    """Crop width/height range: the configured one, widened to include the whole image's aspect."""
    low, high = config.AUG_CROP_RATIO
    aspect = width / height
    return min(low, aspect), max(high, aspect)


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


def variant_pipeline(width: int, height: int, size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """Pipeline for the variants of one source image of width x height, output size x size, box in pascal_voc."""
    full, zoom_out = config.AUG_FULL_FRAME_SHARE, config.AUG_ZOOM_OUT_SHARE
    return A.Compose(
        [
            A.OneOf([
                A.Resize(size, size, area_for_downscale="image", p=full),
                A.RandomResizedCrop((size, size), scale=config.AUG_CROP_SCALE, ratio=aspect_range(width, height),
                                    area_for_downscale="image", p=1 - full - zoom_out),
                zoom_out_view(size, p=zoom_out),
            ], p=1.0),
            A.HorizontalFlip(p=0.5),
            # Small tilt / zoom / shift; black borders rather than reflections, which would copy a face unlabelled.
            A.Affine(scale=(0.85, 1.15), keep_ratio=True, rotate=(-10, 10), translate_percent=(-0.05, 0.05),
                     rotate_method="ellipse", border_mode=cv2.BORDER_CONSTANT, fill=config.AUG_BORDER_FILL, p=0.3),
            *photometric(),
        ],
        # check_each_transform=False: the box is clipped and judged once, at the end, so min_visibility measures
        # what is left of the whole face after crop + affine together, not after each step.
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"], clip=True,
                                 min_visibility=config.AUG_MIN_VISIBILITY, min_width=2, min_height=2,
                                 check_each_transform=False),
    )


def zoom_out_view(size: int, p: float) -> A.Sequential:
    """The whole frame shrunk inside a grey border: the face smaller than in any training frame.

    Crops only ever make faces bigger; a camera further away (or another person's way of sitting) makes them
    smaller, and a model never shown small faces predicts a box of the size it always saw."""
    return A.Sequential([
        A.Resize(size, size, area_for_downscale="image"),
        A.Affine(scale=config.AUG_ZOOM_OUT_SCALE, keep_ratio=True, translate_percent=(-0.2, 0.2),
                 border_mode=cv2.BORDER_CONSTANT, fill=config.AUG_BORDER_FILL, p=1.0),
    ], p=p)


def background_pipeline(size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """Pipeline for a face-free crop: squash to the square, flip, same colour changes as the face variants."""
    return A.Compose([A.Resize(size, size, area_for_downscale="image"), A.HorizontalFlip(p=0.5), *photometric()])


def background_regions(width: int, height: int, box: tuple[float, float, float, float], count: int,
                       rng: np.random.Generator, candidates_per_region: int = 50) -> list[Region]:
    """Up to `count` random regions of the image that stay clear of the face box plus a margin.

    Sizes and aspects are drawn like the variant crops; candidates that are too small or touch the face are
    dropped (drawn all at once with numpy: a Python loop of draws cost more than the crops themselves).
    Fewer regions come back when the face leaves too little free space."""
    n = count * candidates_per_region
    low, high = aspect_range(width, height)
    area = rng.uniform(*config.AUG_BACKGROUND_SCALE, n) * width * height
    aspect = np.exp(rng.uniform(math.log(low), math.log(high), n))
    w, h = np.round(np.sqrt(area * aspect)).astype(int), np.round(np.sqrt(area / aspect)).astype(int)
    x = (rng.uniform(size=n) * (width - w + 1)).astype(int)
    y = (rng.uniform(size=n) * (height - h + 1)).astype(int)
    cx1, cy1, cx2, cy2 = _expanded(box, width, height)
    touches = (x < cx2) & (cx1 < x + w) & (y < cy2) & (cy1 < y + h)
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


def paste_face(canvas, image, box, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Paste the face of `image` (box in pixels) onto the square `canvas` at a random size and place.

    The face is cut with a margin of its own surroundings and blended in with a soft edge, so the seam lies
    outside the box and is gradual: the box edges themselves carry no trace of the paste. Returns the new picture
    and the face box in its pixels. Why: in every real frame the face sits on the same person's body in the same
    room at the same distance; moved onto other backgrounds, places and sizes, the network can only find it by
    the face itself."""
    size = canvas.shape[0]
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    margin = config.AUG_PASTE_MARGIN
    cx1, cy1 = max(0, int(x1 - margin * bw)), max(0, int(y1 - margin * bh))
    cx2, cy2 = min(width, int(np.ceil(x2 + margin * bw))), min(height, int(np.ceil(y2 + margin * bh)))
    crop = image[cy1:cy2, cx1:cx2]
    scale = rng.uniform(*config.AUG_PASTE_FACE_SIZE) * size / max(bw, bh)  # face side as a fraction of the canvas
    pw, ph = max(2, round((cx2 - cx1) * scale)), max(2, round((cy2 - cy1) * scale))
    if pw > size or ph > size:  # a face too big for the canvas with its margin: shrink to fit
        shrink = size / max(pw, ph)
        scale, pw, ph = scale * shrink, min(size, round(pw * shrink)), min(size, round(ph * shrink))
    patch = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ox, oy = int(rng.integers(0, size - pw + 1)), int(rng.integers(0, size - ph + 1))
    alpha = soft_mask(pw, ph, ((x1 - cx1) * scale, (y1 - cy1) * scale, (x2 - cx1) * scale, (y2 - cy1) * scale))
    out = canvas.astype(np.float32)
    region = out[oy:oy + ph, ox:ox + pw]
    out[oy:oy + ph, ox:ox + pw] = alpha * patch + (1 - alpha) * region
    new_box = (ox + (x1 - cx1) * scale, oy + (y1 - cy1) * scale, ox + (x2 - cx1) * scale, oy + (y2 - cy1) * scale)
    return np.clip(out, 0, 255).astype(np.uint8), tuple(float(min(max(v, 0), size)) for v in new_box)


def soft_mask(width: int, height: int, box) -> np.ndarray:
    """Blend weights of a pasted patch: 1 over the face box, fading to 0 across the margin around it."""
    x1, y1, x2, y2 = box
    xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
    # distance outside the box, as a fraction of the margin on that side (0 inside the box)
    dx = np.maximum(np.maximum(x1 - xs, xs - x2), 0) / max(x1, width - x2, 1e-6)
    dy = np.maximum(np.maximum(y1 - ys, ys - y2), 0) / max(y1, height - y2, 1e-6)
    fade = np.clip(1 - np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2), 0, 1)
    return (fade * fade * (3 - 2 * fade))[..., None].astype(np.float32)  # smoothstep: no visible rim
