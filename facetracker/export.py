"""`facetracker export`: a trained .keras model as TFLite, ONNX or a SavedModel, checked against Keras.

Keras 3 exports each format itself (`model.export`: LiteRT via a SavedModel and tf.lite.TFLiteConverter, ONNX
via tf2onnx), with a fixed input side so the file carries the model's image size: batch 1 for TFLite (static
shapes are fastest in XNNPACK), any batch for ONNX and SavedModel. Quantisation is offered for TFLite only:
onnxruntime's dynamic quantisation made this network 10x slower and its static int8 less accurate than TFLite's.

Every format carries the model's box decoding and non-maximum suppression (they are part of FaceTracker.call), so
the exported file alone returns the K best faces, sorted and zero-padded.

Nothing is published until it passed the check: the export goes to a temporary name beside the target, runs on
real images next to the Keras model, and is renamed into place only when the largest differences in score and
box are within the tolerance for its quantisation mode (config.EXPORT_TOLERANCE). Faces are compared, not output
slots (compare_outputs): NMS may order faces of nearly equal score differently or keep a borderline box.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from facetracker import config
from facetracker.boxes import iou_matrix
from facetracker.errors import FacetrackerError
from facetracker.files import atomic_path, ensure_writable_dir, file_digest, list_images, read_image
from facetracker.inference import Detector
from facetracker.output import quiet_native_stderr

SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "savedmodel": ""}


@dataclass
class ExportResult:
    path: Path
    format: str
    quantize: str
    image_size: int  # the input side the frame is scaled to fit (the long side of a fitted input)
    size_bytes: int
    images_checked: int
    check_source: str
    score_diff: float  # largest |exported - keras| face score over the check images (see compare)
    box_diff: float  # largest |exported - keras| box coordinate of a face (fraction of the model input)
    box_mean_diff: float  # mean of the same, for context: quantisation errors are uneven across images
    tolerance: tuple[float, float]
    faces_checked: int = 0  # confident faces (config.EXPORT_SCORE_FLOOR) found by both and compared
    input_size: tuple[int, int] | None = None  # (width, height) stored in the exported file's input shape

    @property
    def passed(self) -> bool:
        return self.score_diff <= self.tolerance[0] and self.box_diff <= self.tolerance[1]


def default_out(model_path: Path, fmt: str, quantize: str, image_size: int | None = None,
                frame: tuple[int, int] | None = None) -> Path:
    """models/facetracker.keras -> models/facetracker.tflite, facetracker-int8.tflite, facetracker_savedmodel/,
    facetracker-160px.tflite for another input side and facetracker-640x480.tflite fitted to 640x480 frames.

    Exports of the bundled model go to models/ too, never into the installed package."""
    stem = model_path.stem + ("" if quantize == "none" else f"-{quantize}")
    stem += "" if image_size is None else f"-{image_size}px"
    stem += "" if frame is None else "-{}x{}".format(*frame)
    name = f"{stem}_savedmodel" if fmt == "savedmodel" else stem + SUFFIX[fmt]
    bundled = resources.files("facetracker") / "assets"
    folder = config.MODELS_DIR if model_path.parent.resolve() == Path(str(bundled)).resolve() else model_path.parent
    return folder / name


def check_image_size(image_size: int | None) -> None:
    """Before loading anything: the grid needs a side that halves evenly down to the stride-32 map."""
    if image_size is not None and (image_size < 32 or image_size % 32):
        raise FacetrackerError(f"image size {image_size} is not a positive multiple of 32", None,
                               "use a side of 128, 160, 192, 224, ...")


def parse_frame_size(text: str | None) -> tuple[int, int] | None:
    """--frame 640x480 -> (640, 480), or one clear error."""
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise FacetrackerError(f"frame size '{text}' is not WIDTHxHEIGHT", "--frame",
                               "give the camera's frame size, e.g. --frame 640x480 or --frame 1280x720")
    return int(width), int(height)


def check_format(fmt: str, quantize: str) -> None:
    """--format and --quantize, checked first: the output name and the tolerance are looked up by them."""
    if fmt not in config.EXPORT_FORMATS:
        raise FacetrackerError("unknown export format", f"--format {fmt}",
                               f"choose one of: {', '.join(config.EXPORT_FORMATS)}")
    if quantize not in config.QUANTIZE_MODES:
        raise FacetrackerError("unknown quantization", f"--quantize {quantize}",
                               f"choose one of: {', '.join(config.QUANTIZE_MODES)}")
    if quantize != "none" and fmt != "tflite":
        raise FacetrackerError(f"--quantize {quantize} is only supported for TFLite", fmt,
                               "use --format tflite, or --quantize none")


def check_options(fmt: str, quantize: str, data: Path | None, out: Path, force: bool) -> None:
    """Every problem with the options, raised before the slow model loading and conversion."""
    check_format(fmt, quantize)
    if quantize == "int8" and data is None:
        raise FacetrackerError("int8 quantization needs real images to calibrate on", None,
                               "pass --data FOLDER with images like the ones the model will see (e.g. data/train)")
    if data is not None:
        image_folder(data)  # raises when missing or empty
    if fmt != "savedmodel" and out.suffix.lower() != SUFFIX[fmt]:
        raise FacetrackerError(f"output name must end with {SUFFIX[fmt]} for --format {fmt}", out,
                               f"name it like {out.with_suffix(SUFFIX[fmt]).name}")
    if out.exists() and not force:
        raise FacetrackerError("export already exists", out, "pass --force to replace it or choose another --out")
    ensure_writable_dir(out.parent)


def image_folder(data: Path) -> list[Path]:
    """Images in `data`, or in `data/images` (the data/ layout); one clear error when there are none."""
    data = Path(data)
    if not data.is_dir():
        raise FacetrackerError("image folder not found", data, "pass --data FOLDER containing .jpg/.png images")
    images = list_images(data)
    if not images and (data / config.IMAGES).is_dir():
        images = list_images(data / config.IMAGES)
    if not images:
        raise FacetrackerError("no images in folder", data, "pass --data FOLDER containing .jpg/.png images")
    return images


def _spread(items: list, count: int) -> list:
    """At most `count` items spread evenly over the list (deterministic, covers every part of a data set)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def builtin_images() -> list[np.ndarray]:
    """BGR images shipped with scikit-image (a face, a cat, objects): a check set when --data is not given."""
    import cv2
    from skimage import data as samples

    rgb = [samples.astronaut(), samples.chelsea(), samples.coffee(), samples.rocket(),
           cv2.cvtColor(samples.camera(), cv2.COLOR_GRAY2RGB)]
    return [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in rgb]


def _read_images(paths: list[Path]) -> list[np.ndarray]:
    frames = []
    for path in paths:
        try:
            frames.append(read_image(path))
        except FacetrackerError:
            continue  # a corrupt file in --data is not a reason to fail the export
    return frames


def _convert(model, fmt: str, quantize: str, calibration: np.ndarray | None, target: Path) -> None:
    """Write the model in `fmt` to `target` (a file, or a folder that must not exist yet)."""
    import tensorflow as tf

    width, height = model.input_size
    batch = 1 if fmt == "tflite" else None
    signature = [tf.TensorSpec((batch, height, width, 3), tf.float32, name="images")]
    if fmt == "savedmodel":
        model.export(str(target), format="tf_saved_model", input_signature=signature, verbose=False)
    elif fmt == "onnx":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx numpy-2 patch probes np.object
            model.export(str(target), format="onnx", input_signature=signature, verbose=False)
    else:
        options = {}
        if quantize != "none":
            options["optimizations"] = [tf.lite.Optimize.DEFAULT]  # weights to int8 ("dynamic range")
        if quantize == "int8":
            # Activations to int8 too, with ranges measured on real images; input/output stay float32
            # so the same Detector code runs every TFLite file.
            options["representative_dataset"] = lambda: ([row[None]] for row in calibration)
        with quiet_native_stderr():  # the MLIR quantiser prints "fully_quantize: ..." straight to stderr
            model.export(str(target), format="litert", input_signature=signature, verbose=False, **options)


@dataclass(frozen=True)
class Fidelity:
    """How far an export's faces are from the Keras model's over a batch (see `compare_outputs`)."""

    score_diff: float  # largest |exported - keras| score: of the best face, and of every confident face
    box_diff: float  # largest |exported - keras| box coordinate of a confident face (fraction of the input)
    box_mean_diff: float  # mean of the same over every coordinate of every matched confident face
    faces: int  # confident faces found by both and compared


def compare(reference: Detector, exported: Detector, inputs: np.ndarray,
            floor: float = config.EXPORT_SCORE_FLOOR) -> Fidelity:
    """Run both detectors on model-ready inputs and compare their faces (compare_outputs)."""
    return compare_outputs(*reference.raw(inputs), *exported.raw(inputs), floor=floor)


def compare_outputs(want_scores, want_boxes, got_scores, got_boxes, floor: float = config.EXPORT_SCORE_FLOOR
                    ) -> Fidelity:
    """Compare multi-face outputs, scores (N, K) and boxes (N, K, 4) per side, face by face.

    Slot by slot would be wrong: NMS sorts faces by score, so two faces of nearly equal score may swap places,
    and a quantised export may keep or drop a borderline box. So per image the best score (slot 0) is compared
    as it is, and every confident face of either output (see `distinct_faces`) is matched by IoU to the face of
    the other output it overlaps most: their score and box differences count, and a face found by one output
    only counts its whole score."""
    score_diffs, box_diffs = [], []
    for want_s, want_b, got_s, got_b in zip(want_scores, want_boxes, got_scores, got_boxes):
        image_scores, image_boxes = compare_faces(want_s, want_b, got_s, got_b, floor)
        score_diffs += [abs(float(want_s[0]) - float(got_s[0]))] + image_scores
        box_diffs += image_boxes
    box_diffs = np.asarray(box_diffs, np.float32).reshape(-1, 4)
    return Fidelity(score_diff=max(score_diffs, default=0.0),
                    box_diff=float(box_diffs.max()) if len(box_diffs) else 0.0,
                    box_mean_diff=float(box_diffs.mean()) if len(box_diffs) else 0.0, faces=len(box_diffs))


def compare_faces(want_scores, want_boxes, got_scores, got_boxes, floor: float = config.EXPORT_SCORE_FLOOR):
    """One image, (K,) scores and (K, 4) boxes per output, zero-padded -> (score differences, (n, 4) |box
    differences|) of its confident faces, each against its match in the other output."""
    want, got = _faces(want_scores, want_boxes), _faces(got_scores, got_boxes)
    score_diffs, box_diffs = [], []
    for (scores, boxes), (other_scores, other_boxes) in ((want, got), (got, want)):
        overlaps = iou_matrix(boxes, other_boxes)
        for k in distinct_faces(scores, boxes, floor):
            match = int(np.argmax(overlaps[k])) if len(other_scores) else None
            if match is None or overlaps[k, match] < config.EXPORT_MATCH_IOU:
                score_diffs.append(float(scores[k]))  # found by one output only
                continue
            score_diffs.append(abs(float(scores[k] - other_scores[match])))
            box_diffs.append(np.abs(boxes[k] - other_boxes[match]))
    return score_diffs, box_diffs


def _faces(scores, boxes):
    """The real faces of zero-padded outputs (score > 0), best first."""
    scores, boxes = np.asarray(scores, np.float32), np.asarray(boxes, np.float32)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > 0]
    return scores[order], boxes[order]


def distinct_faces(scores, boxes, floor: float) -> list[int]:
    """Indices of the confident faces (score >= floor) that are not near-duplicates of a better face.

    A face overlapping a better face of its own output by config.EXPORT_DUPLICATE_IOU or more survived NMS only
    because that overlap stayed under NMS_IOU: the tiny box changes of a quantised export decide either way
    whether it is kept, so it is no evidence of a disagreement."""
    overlaps = iou_matrix(boxes, boxes)
    return [k for k in range(len(scores)) if scores[k] >= floor
            and not (overlaps[k, :k] >= config.EXPORT_DUPLICATE_IOU).any()]


def export_model(model_path: Path, fmt: str, quantize: str = "none", data: Path | None = None,
                 out: Path | None = None, force: bool = False, unsafe: bool = False,
                 image_size: int | None = None, frame: tuple[int, int] | None = None) -> ExportResult:
    """Export, check against Keras on real images, and publish only a file that passed. `image_size`: export the
    same weights at another square input side (a multiple of 32; smaller is faster, see model.rebuilt). `frame`:
    (width, height) of the frames it will see; the input is fitted to their aspect (model.fitted: the same faces
    found, less to compute)."""
    from facetracker.model import fitted, load_model, rebuilt

    model_path = Path(model_path)
    check_format(fmt, quantize)
    check_image_size(image_size)
    out = Path(out) if out is not None else default_out(model_path, fmt, quantize, image_size, frame)
    check_options(fmt, quantize, data, out, force)
    model = load_model(model_path, unsafe=unsafe)
    if image_size is not None and image_size != model.image_size:
        model = rebuilt(model, image_size)
    if frame is not None:
        model = fitted(model, *frame)
    reference = Detector.from_model(model, str(model_path))

    if data is not None:
        paths = image_folder(data)
        check_frames = _read_images(_spread(paths, config.EXPORT_CHECK_IMAGES))
        check_source = f"{len(check_frames)} images from {data}"
    else:
        check_frames = builtin_images()
        check_source = f"{len(check_frames)} built-in scikit-image pictures"
    if not check_frames:
        raise FacetrackerError("no readable images in folder", data, "pass --data FOLDER with valid images")
    calibration = None
    if quantize == "int8":
        calibration = reference.prepare(_read_images(_spread(paths, config.EXPORT_CALIBRATION_IMAGES)))
    check_inputs = reference.prepare(check_frames)

    with _staging(out, is_dir=fmt == "savedmodel") as staged:
        try:
            _convert(model, fmt, quantize, calibration, staged)
        except Exception as exc:  # converter errors come in many types, with pages of MLIR detail
            first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise FacetrackerError(f"{fmt} conversion failed ({first_line})", model_path,
                                   "try another --format or --quantize") from exc
        exported = Detector.load(staged)
        fidelity = compare(reference, exported, check_inputs)
        result = ExportResult(path=out, format=fmt, quantize=quantize, image_size=exported.image_size,
                              input_size=exported.input_size, size_bytes=_size(staged),
                              images_checked=len(check_frames), check_source=check_source,
                              score_diff=fidelity.score_diff, box_diff=fidelity.box_diff,
                              box_mean_diff=fidelity.box_mean_diff, faces_checked=fidelity.faces,
                              tolerance=config.EXPORT_TOLERANCE[quantize])
        if not result.passed:
            raise ExportMismatch(result)
    return result


def live_export_path(model_path: Path, frame: tuple[int, int] | None) -> Path:
    """Where `live` keeps the TFLite export of a .keras model for frames of `frame` (width, height; None: square):
    the name `facetracker export --frame` gives it (default_out), in a folder of the user's cache named by the
    model file's contents, so a retrained model gets a file of its own."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = default_out(Path(model_path), "tflite", "none", frame=frame).name
    return cache / config.LIVE_EXPORTS_DIR / file_digest(model_path) / name


class ExportMismatch(FacetrackerError):
    """The exported model disagrees with Keras beyond the tolerance; nothing was written."""

    def __init__(self, result: ExportResult):
        tol_score, tol_box = result.tolerance
        super().__init__(
            f"exported model differs from the Keras model beyond the {result.quantize!r} tolerance (largest "
            f"difference: score {result.score_diff:.2e}, allowed {tol_score:g}; box {result.box_diff:.2e}, "
            f"allowed {tol_box:g}; on {result.check_source}); nothing written", result.path,
            "try --quantize dynamic or none" if result.quantize != "none" else
            "a float export should match: please report this with the model file")
        self.result = result


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class _staging:
    """A temporary path beside `out` (file or folder) that replaces `out` only if the block succeeds."""

    def __init__(self, out: Path, is_dir: bool):
        self.out, self.is_dir = out, is_dir
        self._file_ctx = None
        self._tmp_dir: Path | None = None

    def __enter__(self) -> Path:
        if self.is_dir:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
            return self._tmp_dir / "export"  # Keras creates the SavedModel folder itself
        self._file_ctx = atomic_path(self.out)
        return self._file_ctx.__enter__()

    def __exit__(self, exc_type, exc, tb):
        if not self.is_dir:
            return self._file_ctx.__exit__(exc_type, exc, tb)
        try:
            if exc_type is None:
                self._publish_dir(self._tmp_dir / "export")
        finally:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
        return False

    def _publish_dir(self, staged: Path) -> None:
        if self.out.exists():  # --force was checked; the old one is deleted with the staging folder
            os.replace(self.out, self._tmp_dir / "previous")
        os.replace(staged, self.out)
