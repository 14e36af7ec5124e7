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
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.5),
        A.RandomGamma(gamma_limit=(70, 140), p=0.3),
        A.RGBShift(r_shift_limit=15, g_shift_limit=15, b_shift_limit=15, p=0.3),
        A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=25, val_shift_limit=15, p=0.3),
        A.ToGray(p=0.05),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)), A.MotionBlur(blur_limit=(3, 7))],
                p=0.15),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.15),
        A.ImageCompression(quality_range=(35, 90), p=0.3),
    ]


def variant_pipeline(width: int, height: int, size: int = config.AUG_IMAGE_SIZE) -> A.Compose:
    """Pipeline for the variants of one source image of width x height, output size x size, box in pascal_voc."""
    full = config.AUG_FULL_FRAME_SHARE
    return A.Compose(
        [
            A.OneOf([
                A.Resize(size, size, area_for_downscale="image", p=full),
                A.RandomResizedCrop((size, size), scale=config.AUG_CROP_SCALE, ratio=aspect_range(width, height),
                                    area_for_downscale="image", p=1 - full),
            ], p=1.0),
            A.HorizontalFlip(p=0.5),
            # Small tilt / zoom / shift; black borders rather than reflections, which would copy a face unlabelled.
            A.Affine(scale=(0.85, 1.15), keep_ratio=True, rotate=(-10, 10), translate_percent=(-0.05, 0.05),
                     rotate_method="ellipse", border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.3),
            *photometric(),
        ],
        # check_each_transform=False: the box is clipped and judged once, at the end, so min_visibility measures
        # what is left of the whole face after crop + affine together, not after each step.
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"], clip=True,
                                 min_visibility=config.AUG_MIN_VISIBILITY, min_width=2, min_height=2,
                                 check_each_transform=False),
    )


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
