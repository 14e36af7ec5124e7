"""`facetracker demo` / `make demo`: the real-time pipeline on a built-in clip with two faces, no camera and no data
download; and the machinery that composes clips of faces moving on their own paths, with their true boxes, which
the tracking tests and benchmarks use with real people's photos.

The demo clip is synthesised from the astronaut portrait that scikit-image ships (skimage.data.astronaut): a virtual
camera pans and zooms over the photograph, so her face moves, grows and shrinks like a person in front of a webcam,
while a smaller, mirrored copy of her head moves up and down on its own path beside her. Both are tracked by the
bundled model exactly as `facetracker live` would track a video file, each with its own id, and the annotated result
is written beside the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from facetracker import config
from facetracker.files import ensure_writable_dir
from facetracker.live import LiveStats, run_live
from facetracker.recording import VideoRecorder, count_video_frames

Box = tuple[float, float, float, float]

CLIP_NAME = "astronaut-input.avi"  # MJPG: lossless enough that the model sees a clean picture
RESULT_NAME = "demo.mp4"
FACE_BOX = (168.0, 28.0, 282.0, 182.0)  # the astronaut's head in the 512x512 photograph (x1, y1, x2, y2)
FACE_CENTRE = ((FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2)  # (225, 105)
PHOTO_SIZE = 512


# ---------------------------------------------------------------- faces cut from photos, pasted into frames


@dataclass(frozen=True)
class Sprite:
    """A face cut from a photograph with some of its surroundings, and a soft-edged oval alpha to paste it with."""

    image: np.ndarray  # BGR uint8
    alpha: np.ndarray  # float32 0..1, same height and width
    face: Box  # the face box in the sprite's pixels

    def mirrored(self) -> Sprite:
        width = self.image.shape[1]
        x1, y1, x2, y2 = self.face
        return Sprite(cv2.flip(self.image, 1), cv2.flip(self.alpha, 1), (width - x2, y1, width - x1, y2))


def cut_sprite(image: np.ndarray, face: Box, margin: float = 0.35, below: float | None = None) -> Sprite:
    """The face box of `image` plus `margin` of its size on every side (clipped to the image), with an oval alpha
    that fades out over the margin: pasted anywhere, it shows no rectangular edge a detector could pick up.

    `below` (a share of the face height) cuts that much under the face instead, with straight soft sides: a head
    and shoulders, which is how a person appears in a webcam frame (a head floating alone looks like no one)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    below_face = my if below is None else below * (y2 - y1)
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(math.ceil(x2 + mx))), min(height, int(math.ceil(y2 + below_face)))
    crop = np.ascontiguousarray(image[top:bottom, left:right])
    h, w = crop.shape[:2]
    # Oval alpha: 1 inside the oval the face box encloses, fading to 0 at the crop's edge (the box's corners are
    # half blended: they are hair or background anyway).
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (x1 + x2) / 2 - left, (y1 + y2) / 2 - top
    rx, ry = max(cx, w - cx), max(cy, h - cy)
    inner = min((x2 - x1) / 2 / rx, (y2 - y1) / 2 / ry) if rx > 0 and ry > 0 else 1.0
    if below is not None:  # shoulders: below the face centre only the sides fade
        ry = max(cy, (y2 - y1) / 2 * (1 + margin))
        rows = np.minimum(ys + 0.5 - cy, 0.0)
    else:
        rows = ys + 0.5 - cy
    distance = np.sqrt(((xs + 0.5 - cx) / rx) ** 2 + (rows / ry) ** 2)
    alpha = np.clip((1.0 - distance) / max(1e-6, 1.0 - inner), 0.0, 1.0)
    # ...and to 0 at every edge of the crop, also where the photograph's own edge cut the margin short.
    ramp = max(2.0, 0.08 * min(w, h))
    alpha *= np.clip(np.minimum(np.minimum(xs + 0.5, w - xs - 0.5), np.minimum(ys + 0.5, h - ys - 0.5)) / ramp, 0, 1)
    alpha = alpha.astype(np.float32)
    return Sprite(crop, alpha, (x1 - left, y1 - top, x2 - left, y2 - top))


@dataclass(frozen=True)
class Placement:
    """Where a sprite goes in one frame: its face centre (x, y) in frame pixels and its face height in pixels."""

    sprite: Sprite
    x: float
    y: float
    face_height: float


def paste_sprite(frame: np.ndarray, placement: Placement) -> tuple[Box, tuple[int, int, int, int], np.ndarray]:
    """Blend the sprite into `frame` (in place). Returns its face box in frame pixels (not clipped) and the alpha it
    was pasted with over the region (x0, y0, x1, y1) of the frame (empty when outside)."""
    sprite = placement.sprite
    fx1, fy1, fx2, fy2 = sprite.face
    scale = placement.face_height / (fy2 - fy1)
    tx, ty = placement.x - scale * (fx1 + fx2) / 2, placement.y - scale * (fy1 + fy2) / 2
    face = (fx1 * scale + tx, fy1 * scale + ty, fx2 * scale + tx, fy2 * scale + ty)
    height, width = frame.shape[:2]
    sh, sw = sprite.image.shape[:2]
    x0, y0 = max(0, int(math.floor(tx))), max(0, int(math.floor(ty)))
    x1, y1 = min(width, int(math.ceil(tx + scale * sw))), min(height, int(math.ceil(ty + scale * sh)))
    if x1 <= x0 or y1 <= y0:
        return face, (0, 0, 0, 0), np.zeros((0, 0), np.float32)
    matrix = np.array([[scale, 0.0, tx - x0], [0.0, scale, ty - y0]])
    size = (x1 - x0, y1 - y0)
    picture = cv2.warpAffine(sprite.image, matrix, size, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(sprite.alpha, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0.0)
    region = frame[y0:y1, x0:x1]
    a = alpha[..., None]
    region[...] = (region * (1.0 - a) + picture * a + 0.5).astype(np.uint8)
    return face, (x0, y0, x1, y1), alpha


@dataclass(frozen=True)
class TrueFace:
    """One composed face in one frame: which one, its box (clipped to the frame) and how much of it shows."""

    person: int
    box: Box
    visible: float  # share of its box inside the frame and not covered by a face pasted over it


def compose_frame(background: np.ndarray, placements: Sequence[Placement | None]) -> tuple[np.ndarray, list[TrueFace]]:
    """Paste the placements over a copy of `background` in order (later ones in front). None: that person is not in
    this frame. Returns the frame and a TrueFace per placed person (person = index in `placements`)."""
    frame = background.copy()
    height, width = frame.shape[:2]
    pasted = []
    for person, placement in enumerate(placements):
        if placement is not None:
            pasted.append((person, *paste_sprite(frame, placement)))
    truths = []
    for k, (person, face, _, _) in enumerate(pasted):
        box = (min(max(face[0], 0.0), width), min(max(face[1], 0.0), height),
               min(max(face[2], 0.0), width), min(max(face[3], 0.0), height))
        full = (face[2] - face[0]) * (face[3] - face[1])
        if full <= 0 or box[2] <= box[0] or box[3] <= box[1]:
            truths.append(TrueFace(person, box, 0.0))
            continue
        bx0, by0, bx1, by1 = (int(round(v)) for v in box)
        cover = np.zeros((max(1, by1 - by0), max(1, bx1 - bx0)), np.float32)
        for _, _, (x0, y0, x1, y1), alpha in pasted[k + 1:]:  # faces pasted in front of this one
            ix0, iy0, ix1, iy1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
            if ix1 > ix0 and iy1 > iy0:
                part = cover[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0]
                np.maximum(part, alpha[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0], out=part)
        inside = (box[2] - box[0]) * (box[3] - box[1]) / full
        truths.append(TrueFace(person, box, float(inside * (1.0 - cover.mean()))))
    return frame, truths


Route = Callable[[float], "tuple[float, float, float] | None"]  # t in [0, 1) -> (x, y, face height) or None


def keyframe_path(keys: Sequence[tuple[float, float, float, float] | tuple[float, None]]) -> Route:
    """A path through keyframes (t, x, y, face_height), eased between them; a key (t, None) means "absent from t
    until the next key" (the person has left)."""
    keys = sorted(keys, key=lambda k: k[0])

    def at(t: float):
        for (t0, *a), (t1, *b) in zip(keys, keys[1:]):
            if t0 <= t < t1:
                if a[0] is None:
                    return None
                if b[0] is None:
                    return tuple(a)
                u = (t - t0) / (t1 - t0)
                u = u * u * (3 - 2 * u)  # smoothstep: people speed up and slow down
                return tuple(p + (q - p) * u for p, q in zip(a, b))
        last = keys[-1]
        return None if last[1] is None else tuple(last[1:])

    return at


def compose_clip(path: Path, background: np.ndarray, people: Sequence[Sequence[Sprite]], paths: Sequence[Route],
                 frames: int, fps: float = 30.0, sprite_frames: int = 15,
                 background_at: Callable[[float], np.ndarray] | None = None) -> list[list[TrueFace]]:
    """Write a clip of `people` (each a list of sprites of one person, shown in turn every `sprite_frames` frames,
    so the face changes pose and expression as a real one does) moving on their `paths` over `background`
    (or background_at(t) per frame). Returns the true faces of every frame."""
    truth = []
    with VideoRecorder(path, fps, force=True) as recorder:
        for i in range(frames):
            t = i / frames
            placements = []
            for sprites, where in zip(people, paths):
                at = where(t)
                sprite = sprites[(i // max(1, sprite_frames)) % len(sprites)]
                placements.append(None if at is None else Placement(sprite, *at))
            frame, faces = compose_frame(background_at(t) if background_at else background, placements)
            recorder.write(frame)
            truth.append(faces)
    return truth


# ---------------------------------------------------------------- two real people crossing (tests, benchmarks)


def sprites_from_labelme(dataset: Path, count: int = 6, min_height: int = 100, margin: float = 0.35,
                         face_labels: tuple[str, ...] = config.FACE_LABELS) -> list[Sprite]:
    """`count` faces of the one person of a labelme folder (images/ and labels/), cut with their labelled boxes:
    images with exactly one face at least `min_height` pixels high and room for the margin on every side, spread
    evenly over the folder in name order."""
    from facetracker.labels import scan

    found = scan(Path(dataset) / config.IMAGES, Path(dataset) / config.LABELS, face_labels)
    usable = []
    for sample in found.samples:
        if len(sample.boxes) != 1:
            continue
        x1, y1, x2, y2 = sample.boxes[0]
        width, height = sample.size
        mx, my = margin * (x2 - x1), margin * (y2 - y1)
        if y2 - y1 >= min_height and x1 - mx >= 0 and y1 - my >= 0 and x2 + mx <= width and y2 + my <= height:
            usable.append(sample)
    if not usable:
        raise ValueError(f"no face in {dataset} fits: one face, {min_height}+ px high, {margin:.0%} margin around it")
    picked = [usable[round(i * len(usable) / count)] for i in range(min(count, len(usable)))]
    return [cut_sprite(cv2.imread(str(s.image)), s.boxes[0], margin) for s in picked]


def group_photo(sprites: Sequence[Sprite], background: np.ndarray, face_height: float, columns: int,
                seed: int = 0) -> tuple[np.ndarray, list[Box]]:
    """A group photo composed from real faces: the sprites in rows of `columns` over `background` (its size is the
    photo's), each face about `face_height` pixels high (+-15 %) and nudged a little from its place in the grid, as
    people stand. Returns the photo and the true face boxes (each person's own labelled box, scaled)."""
    rng = np.random.default_rng(seed)
    height, width = background.shape[:2]
    rows = math.ceil(len(sprites) / columns)
    cell_w, cell_h = width / columns, height / rows
    placements = []
    for k, sprite in enumerate(sprites):
        row, column = divmod(k, columns)
        x = (column + 0.5 + rng.uniform(-0.15, 0.15)) * cell_w
        y = (row + 0.45 + rng.uniform(-0.1, 0.1)) * cell_h
        placements.append(Placement(sprite, x, y, face_height * rng.uniform(0.85, 1.15)))
    photo, faces = compose_frame(background, placements)
    return photo, [face.box for face in faces]


def crossing_routes(size: tuple[int, int], absence: float = 0.1) -> list[Route]:
    """Two people in a frame of `size`: they walk towards each other and cross (the second in front of the first,
    a little lower, so it hides part of the first face for a moment); then the second leaves through the left edge,
    stays away for `absence` of the clip, comes back and stays. Face heights about 30 % of the frame height."""
    width, height = size
    first = keyframe_path([(0.0, 0.15 * width, 0.40 * height, 0.30 * height),
                           (0.40, 0.85 * width, 0.44 * height, 0.30 * height),
                           (0.70, 0.62 * width, 0.34 * height, 0.36 * height),
                           (1.0, 0.80 * width, 0.40 * height, 0.30 * height)])
    gone, back = 0.50, 0.50 + absence
    second = keyframe_path([(0.0, 0.85 * width, 0.54 * height, 0.27 * height),
                            (0.40, 0.20 * width, 0.54 * height, 0.27 * height),
                            (gone, -0.15 * width, 0.60 * height, 0.27 * height),
                            (gone + 1e-6, None),
                            (back, -0.15 * width, 0.60 * height, 0.27 * height),
                            (back + 0.15, 0.25 * width, 0.58 * height, 0.28 * height),
                            (1.0 + 1e-6, 0.35 * width, 0.60 * height, 0.27 * height)])
    return [first, second]


def detections_from_truth(truth: Sequence[Sequence[TrueFace]], seed: int = 0, box_noise: float = 0.04,
                          miss_rate: float = 0.05, false_rate: float = 0.1, min_visible: float = 0.5,
                          size: tuple[int, int] = (640, 480)) -> list[list[tuple[float, Box]]]:
    """What a decent detector would give on a composed clip, to drive a tracker without a model: every face at
    least `min_visible` visible, its box moved by Gaussian noise of `box_noise` times its size on each side, scored
    0.6-0.98 (missed in `miss_rate` of the frames); a partly hidden face (a third to `min_visible` visible) scored
    0.15-0.45; and in `false_rate` of the frames a false detection somewhere, scored 0.1-0.6. (score, box) pairs."""
    rng = np.random.default_rng(seed)
    width, height = size
    frames = []
    for faces in truth:
        found = []
        for face in faces:
            x1, y1, x2, y2 = face.box
            if face.visible < 1 / 3 or x2 - x1 < 2 or y2 - y1 < 2:
                continue
            if face.visible >= min_visible:
                if rng.random() < miss_rate:
                    continue
                score = rng.uniform(0.6, 0.98)
            else:
                score = rng.uniform(0.15, 0.45)
            noise = rng.normal(0.0, box_noise, 4) * [x2 - x1, y2 - y1, x2 - x1, y2 - y1]
            box = np.clip(np.array(face.box) + noise, 0, [width, height, width, height])
            found.append((float(score), tuple(float(v) for v in box)))
        if rng.random() < false_rate:
            side = rng.uniform(0.1, 0.3) * height
            x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
            found.append((float(rng.uniform(0.1, 0.6)), (x, y, x + side, y + side)))
        frames.append(sorted(found, key=lambda d: -d[0]))
    return frames


# ---------------------------------------------------------------- the demo clip


def camera_path(t: float, photo_size: int = PHOTO_SIZE, aspect: float = 4 / 3,
                frame_width: float = config.DEMO_SIZE[0]) -> tuple[float, float, float]:
    """Virtual camera at time t in [0, 1]: view centre (x, y) and view width, in photograph pixels.

    One slow loop: the face drifts left-right and up-down in the left half of the frame (the right side is the
    second face's) while the view zooms from the whole photograph to her head and shoulders and back."""
    zoom = 0.5 - 0.5 * math.cos(2 * math.pi * t)  # 0 -> 1 -> 0
    width = photo_size * (0.98 - 0.3 * zoom)
    height = width / aspect
    scale = frame_width / width
    # Where her face should be in the frame, as fractions of it, and the view centre that puts it there.
    fx = 0.36 + 0.07 * math.sin(2 * math.pi * t)
    fy = 0.42 + 0.08 * math.sin(4 * math.pi * t)
    cx = FACE_CENTRE[0] - (fx - 0.5) * frame_width / scale
    cy = FACE_CENTRE[1] - (fy - 0.5) * frame_width / aspect / scale
    # Keep the view inside the photograph: beyond its edges there is nothing real to show.
    cx = min(max(cx, width / 2), photo_size - width / 2)
    cy = min(max(cy, height / 2), photo_size - height / 2)
    return cx, cy, width


def second_face_path(t: float, size: tuple[int, int] = config.DEMO_SIZE) -> tuple[float, float, float]:
    """The mirrored copy's face centre (x, y) and face height in frame pixels at time t: up and down the right side,
    swaying, a little nearer and further."""
    width, height = size
    x = width * (0.79 + 0.05 * math.sin(2 * math.pi * 2 * t))
    y = height * (0.5 + 0.2 * math.sin(2 * math.pi * t + math.pi / 2))
    return x, y, height * 0.36 * (1.0 + 0.12 * math.sin(2 * math.pi * 3 * t))


def _view_matrix(t: float, size: tuple[int, int]) -> np.ndarray:
    """Affine map photograph -> frame at time t: scale about the view centre, which lands in the frame centre."""
    out_w, out_h = size
    cx, cy, view_w = camera_path(t, PHOTO_SIZE, out_w / out_h, out_w)
    scale = out_w / view_w
    return np.array([[scale, 0, out_w / 2 - scale * cx], [0, scale, out_h / 2 - scale * cy]])


def demo_truth(t: float, size: tuple[int, int] = config.DEMO_SIZE) -> list[Box]:
    """The two faces' true boxes in the demo frame at time t: [the astronaut, her mirrored copy]."""
    matrix = _view_matrix(t, size)
    x1, y1, x2, y2 = FACE_BOX
    main = (matrix[0, 0] * x1 + matrix[0, 2], matrix[1, 1] * y1 + matrix[1, 2],
            matrix[0, 0] * x2 + matrix[0, 2], matrix[1, 1] * y2 + matrix[1, 2])
    x, y, face_height = second_face_path(t, size)
    face_width = face_height * (x2 - x1) / (y2 - y1)
    return [main, (x - face_width / 2, y - face_height / 2, x + face_width / 2, y + face_height / 2)]


def synthesise_clip(path: Path, seconds: float = config.DEMO_SECONDS, fps: float = config.DEMO_FPS,
                    size: tuple[int, int] = config.DEMO_SIZE) -> Path:
    """Write the two-face clip (BGR frames of `size`) to `path` with cv2.VideoWriter; return the path."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    copy = cut_sprite(photo, FACE_BOX, margin=0.5, below=0.9).mirrored()
    frames = max(2, round(seconds * fps))
    with VideoRecorder(path, fps, force=True) as recorder:
        for i in range(frames):
            t = i / frames
            frame = cv2.warpAffine(photo, _view_matrix(t, size), size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
            paste_sprite(frame, Placement(copy, *second_face_path(t, size)))
            recorder.write(frame)
    return path


def run_demo(out_dir: Path = config.DEMO_DIR, model: Path | str | None = None, show: bool = False,
             detector=None) -> tuple[LiveStats, Path]:
    """Synthesise the clip into out_dir, track it with the bundled model (or `model`), record demo.mp4.

    The demo's own outputs are replaced on every run. Returns the stats (with the per-frame tracks: the clip is
    short) and the clip's path."""
    out_dir = ensure_writable_dir(out_dir)
    clip = synthesise_clip(out_dir / CLIP_NAME)
    if model is None and detector is None:  # the bundled model, fitted to the clip's frames as `live` fits it
        from facetracker.inference import bundled_model_for

        model = bundled_model_for(config.DEMO_SIZE)
    stats = run_live(clip, model=model, detector=detector, record=out_dir / RESULT_NAME, show=show, force=True,
                     keep_tracks=True)
    if stats.record:
        stats.recorded_frames = count_video_frames(Path(stats.record))  # what a player will really see
    return stats, clip
