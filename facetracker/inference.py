"""Running a face tracker on frames, fast: one `Detector` over four runtimes.

`Detector.load(path)` picks the runtime from the file: a native `.keras` model runs as a compiled
`tf.function` with a fixed input signature (never `model.predict` or an eager call per frame, which costs
~100 ms in Keras 3), a `.tflite` file runs in the TFLite interpreter (XNNPACK), an `.onnx` file in
onnxruntime, and an exported SavedModel folder through `tf.saved_model.load`. The input size is read from the
model itself (attribute or input shape), so no size flag is ever needed.

Every runtime takes float32 RGB pixels 0..255 of shape (N, height, width, 3) — the whole frame letterboxed into
the input (aspect kept, grey bars), exactly like training; the input is the training square, or fitted to the
frame's aspect (facetracker.model.fitted: the same scale, fewer bars) — and returns the K best faces after the
model's own non-maximum suppression: scores (N, K) sorted high to low and boxes (N, K, 4) as fractions of the
input, zeros where fewer faces were found. `Detector` turns them into Detections in pixels of the original frame. A
Detector reuses its buffers and is not thread-safe.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from facetracker import config
from facetracker.boxes import Letterbox, cut_by_window, fitted_input, merge_mirrored, merge_views, tiles, unmirror
from facetracker.errors import FacetrackerError
from facetracker.output import import_tensorflow_quietly, quiet_native_stderr

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the frame

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
RESIZE_MODES = ("fast-area", "area", "linear")


@dataclass(frozen=True)
class Detection:
    """One face found in a frame: its probability and where it is."""

    score: float
    box: Box  # pixels of the original frame, x1 <= x2, y1 <= y2, inside the frame

    def is_face(self, threshold: float = config.THRESHOLD) -> bool:
        return self.score >= threshold

    def to_json(self, threshold: float = config.THRESHOLD) -> dict:
        """{"score": .., "box": [x1, y1, x2, y2] or None below the threshold} with rounded numbers."""
        box = [round(v, 1) for v in self.box] if self.is_face(threshold) else None
        return {"score": round(self.score, 4), "box": box}


# ---------------------------------------------------------------- runtimes: (N, s, s, 3) -> scores, boxes


def _split_outputs(outputs) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, K), boxes (N, K, 4)) from the two outputs, told apart by rank since exporters reorder them."""
    arrays = [np.asarray(o, dtype=np.float32) for o in outputs]
    by_rank = {a.ndim: a for a in arrays}
    if len(arrays) != 2 or set(by_rank) != {2, 3} or by_rank[3].shape[-1] != 4:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise FacetrackerError(f"model outputs are not (scores, boxes) of a multi-face FaceTracker but {shapes}",
                               None, "use a model trained or exported by this version of facetracker")
    return by_rank[2], by_rank[3]


def _input_size(shape, where) -> tuple[int, int]:
    """(width, height) of the model input from an input shape (N, height, width, 3): a square, or fitted to a
    frame's aspect (facetracker.model.fitted)."""
    dims = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else None for d in shape]  # ONNX: 'N'/None
    if len(dims) != 4 or dims[1] is None or dims[2] is None or dims[3] != 3:
        raise FacetrackerError(f"model input shape {list(shape)} is not (N, height, width, 3)", where,
                               "use a model trained or exported by facetracker")
    return dims[2], dims[1]


class KerasRuntime:
    """A FaceTracker in memory, called through concrete tf.functions (batch 1 and any batch)."""

    name = "keras"
    batched = True

    def __init__(self, model):
        import tensorflow as tf

        self.model = model  # kept alive: the concrete functions capture its variables
        self.input_size = tuple(model.input_size)
        self._tf = tf
        self._functions = {}  # batch dimension (1 or None) -> concrete function, traced on first use

    def _function(self, batch: int | None):
        # Concrete functions skip tf.function's argument checks and dispatch on every call (~0.5 ms saved);
        # tracing takes seconds, so only the variants actually used are traced (live video needs batch 1 only).
        # XLA (jit_compile) was tried and is 5x slower on CPU for this network.
        if batch not in self._functions:
            tf, model, (width, height) = self._tf, self.model, self.input_size
            spec = tf.TensorSpec((batch, height, width, 3), tf.float32)
            self._functions[batch] = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        return self._functions[batch]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fn = self._function(1 if batch.shape[0] == 1 else None)
        return _split_outputs([t.numpy() for t in fn(self._tf.constant(batch))])


class SavedModelRuntime:
    """A SavedModel folder written by `facetracker export --format savedmodel` (Keras `serve` endpoint)."""

    name = "savedmodel"
    batched = True

    def __init__(self, path: Path):
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(path))
        self._fn = getattr(self._loaded, "serve", None) or self._loaded.signatures["serving_default"]
        specs = [s for s in _flat_specs(self._fn) if s.shape.rank == 4]
        if not specs:
            raise FacetrackerError("SavedModel has no image input", path, "export it with facetracker export")
        self.input_size = _input_size(specs[0].shape.as_list(), path)
        self._to_tensor = tf.constant

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._fn(self._to_tensor(batch))
        outputs = list(out.values()) if isinstance(out, dict) else list(out)
        return _split_outputs([t.numpy() for t in outputs])


def _flat_specs(fn):
    import tensorflow as tf

    signature = getattr(fn, "input_signature", None)
    if signature is None:  # a ConcreteFunction from `signatures`
        signature = fn.structured_input_signature
    return [s for s in tf.nest.flatten(signature) if isinstance(s, tf.TensorSpec)]


def tflite_interpreter_class():
    # ai_edge_litert is TFLite's new home; TF 2.21 still ships tf.lite.Interpreter (with a deprecation warning).
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter
    return Interpreter


class TFLiteRuntime:
    """A .tflite file in the TFLite interpreter; XNNPACK (on by default) runs the float and int8 kernels."""

    name = "tflite"
    batched = False

    def __init__(self, path: Path, threads: int):
        self.path = path
        interpreter_class = tflite_interpreter_class()
        with warnings.catch_warnings(), quiet_native_stderr():
            warnings.simplefilter("ignore")  # the tf.lite.Interpreter deprecation notice, once per load
            self._interpreter = interpreter_class(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()  # XNNPACK is applied (and announces itself) here
        (inp,) = self._interpreter.get_input_details()
        self.input_size = _input_size(inp["shape"], path)
        if inp["shape"][0] != 1:
            raise FacetrackerError("TFLite model must take one image at a time", path,
                                   "export it with facetracker export --format tflite")
        self._input = inp["index"]
        self._input_quant = inp["quantization"] if inp["dtype"] != np.float32 else None
        self._input_dtype = inp["dtype"]
        self._outputs = [(d["index"], d["quantization"] if d["dtype"] != np.float32 else None)
                         for d in self._interpreter.get_output_details()]

    def copy(self, threads: int) -> "TFLiteRuntime":
        """The same file in an interpreter of its own, for another thread."""
        return TFLiteRuntime(self.path, threads)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, boxes = [], []
        for i in range(batch.shape[0]):  # fixed batch 1: XNNPACK plans static shapes, fastest for live video
            self._interpreter.set_tensor(self._input, self._quantize(batch[i:i + 1]))
            self._interpreter.invoke()
            outputs = [self._dequantize(self._interpreter.get_tensor(index), quant) for index, quant in self._outputs]
            score, box = _split_outputs(outputs)
            scores.append(score)
            boxes.append(box)
        return np.concatenate(scores), np.concatenate(boxes)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self._input_quant is None:
            return x
        scale, zero = self._input_quant
        info = np.iinfo(self._input_dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(self._input_dtype)

    @staticmethod
    def _dequantize(x: np.ndarray, quant) -> np.ndarray:
        if quant is None:
            return x
        scale, zero = quant
        return (x.astype(np.float32) - zero) * scale


class OnnxRuntime:
    """An .onnx file in onnxruntime on the CPU provider, one session reused for every call."""

    name = "onnx"

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        self.path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT warns about unused initializers in tf2onnx graphs
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (inp,) = self._session.get_inputs()
        self.input_size = _input_size(inp.shape, path)
        self._input = inp.name
        self.batched = inp.shape[0] != 1  # exported with a dynamic batch dimension

    def copy(self, threads: int) -> "OnnxRuntime":
        """The same file in a session of its own, for another thread."""
        return OnnxRuntime(self.path, threads)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.batched:
            return _split_outputs(self._session.run(None, {self._input: batch}))
        parts = [_split_outputs(self._session.run(None, {self._input: batch[i:i + 1]})) for i in range(len(batch))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ---------------------------------------------------------------- Detector


def bundled_model_path(fast: bool = False) -> Path:
    """The default model shipped inside the package (facetracker/assets/), or one clear error.

    fast=True: its TFLite export when shipped (same weights, checked by `facetracker export`; ~5x the frame rate
    of the .keras file through tf.function, see docs/benchmarks.md). Export/training need the .keras file."""
    assets = resources.files("facetracker") / "assets"
    if fast and (assets / config.BUNDLED_FAST_MODEL_NAME).is_file():
        return Path(str(assets / config.BUNDLED_FAST_MODEL_NAME))
    asset = assets / config.BUNDLED_MODEL_NAME
    if not asset.is_file():
        raise FacetrackerError("no bundled model in this installation", f"facetracker/assets/{config.BUNDLED_MODEL_NAME}",
                               "train one with `facetracker train` and pass --model models/facetracker.keras")
    return Path(str(asset))  # the package is installed as files (not zipped), so the path is real


def bundled_fitted_path(frame: tuple[int, int]) -> Path | None:
    """The bundled model's TFLite export fitted to frames of this (width, height), when one ships
    (config.BUNDLED_FITTED_FRAMES, and every frame size with the same fitted input)."""
    width, height = fitted_input(*frame, config.BUNDLED_IMAGE_SIZE)
    asset = resources.files("facetracker") / "assets" / config.BUNDLED_FITTED_MODEL_NAME.format(width=width,
                                                                                                height=height)
    return Path(str(asset)) if asset.is_file() else None


def bundled_model_for(frame: tuple[int, int] | None) -> Path:
    """The bundled TFLite file for frames of this (width, height): the export fitted to them when one ships, else
    the square one (also for frame None)."""
    return (bundled_fitted_path(frame) if frame is not None else None) or bundled_model_path(fast=True)


def resolve_model_path(path: Path | str | None, fast: bool = True, frame: tuple[int, int] | None = None) -> Path:
    """What a command runs when --model is left out: your trained model if it exists, else the bundled one
    (its TFLite export when fast, the .keras file otherwise). frame: (width, height) of the frames it will see;
    when fast, the bundled export fitted to them if one ships (bundled_fitted_path)."""
    if path is not None:
        return Path(path)
    if config.DEFAULT_MODEL.exists():
        return config.DEFAULT_MODEL
    return bundled_model_for(frame) if fast else bundled_model_path()


class FramePreparer:
    """Letterboxes BGR frames into the model's input: RGB pixels 0..255 (uint8), aspect kept, grey bars.

    One per thread: its resize buffers are reused from frame to frame (a video's frames all share one size). The
    live loop gives one to its reader thread, so frames are resized while the model runs on the previous one.
    input_size: the side of a square input or (width, height)."""

    def __init__(self, input_size: int | tuple[int, int]):
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        width, height = self.input_size
        self.side = max(width, height)
        self._pixels = np.full((height, width, 3), config.AUG_BORDER_FILL, np.uint8)
        self._layout: tuple[Letterbox, object] | None = None  # (Letterbox, resize function) of the last frame size

    def letterbox(self, frame_bgr: np.ndarray) -> Letterbox:
        """Where this frame sits in the model input (cached per frame size)."""
        height, width = frame_bgr.shape[:2]
        if self._layout is None or (self._layout[0].width, self._layout[0].height) != (width, height):
            layout = Letterbox(width, height, self.side, self.input_size)
            self._layout = (layout, make_resizer(config.RESIZE_INTERPOLATION, layout.size))
            self._pixels[...] = config.AUG_BORDER_FILL  # the bars of the new size; the picture is redrawn per frame
        return self._layout[0]

    def __call__(self, frame_bgr: np.ndarray, copy: bool = True) -> tuple[np.ndarray, Letterbox]:
        """(pixels (height, width, 3) uint8 RGB, letterbox) for one frame; the letterbox maps the model's boxes back
        to the frame. copy=False returns this preparer's own buffer, overwritten by the next call."""
        _check_frame(frame_bgr)
        layout = self.letterbox(frame_bgr)
        (w, h), (x, y) = layout.size, layout.pad
        picture = self._pixels[y:y + h, x:x + w]
        self._layout[1](frame_bgr, picture)
        cv2.cvtColor(picture, cv2.COLOR_BGR2RGB, dst=picture)  # after resizing: fewer pixels to swap
        return (self._pixels.copy() if copy else self._pixels), layout


class Detector:
    """Finds every face in BGR frames of any size with any runtime. Build it with `load` or `from_model`."""

    def __init__(self, runtime, source: str):
        self.runtime = runtime
        self.source = source
        self.input_size: tuple[int, int] = runtime.input_size  # (width, height)
        self.image_size: int = max(self.input_size)  # the side the frame is scaled to fit
        self._prepare = FramePreparer(self.input_size)
        self._input = np.empty((1, *self._input_shape), np.float32)  # reused: no allocation

    @property
    def _input_shape(self) -> tuple[int, int, int]:
        width, height = self.input_size
        return height, width, 3

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    @classmethod
    def load(cls, path: Path | str | None = None, unsafe: bool = False,
             threads: int = config.INFERENCE_THREADS, frame: tuple[int, int] | None = None) -> "Detector":
        """A Detector for a .keras/.tflite/.onnx file or an exported SavedModel folder (None: bundled model).

        frame: (width, height) of the frames it will see. A .keras model is then fitted to them (model.fitted:
        the same faces, a sixth (4:3) to a third (16:9) less to compute); exported files run as they were exported
        (`export --frame`); for None, the bundled export fitted to them when one ships (bundled_model_for)."""
        path = bundled_model_for(frame) if path is None else Path(path)
        if not path.exists():
            raise FacetrackerError("model not found", path,
                                   "train one with `facetracker train` or pass --model PATH to a .keras/.tflite/.onnx file")
        suffix = path.suffix.lower()
        if suffix != ".onnx":
            import_tensorflow_quietly()  # all other formats run on TensorFlow (TFLite: when LiteRT is absent)
        if path.is_dir() and (path / "saved_model.pb").exists():
            return cls(_open_runtime(SavedModelRuntime, path), str(path))
        if suffix in KERAS_SUFFIXES:
            from facetracker.model import fitted, load_model

            model = load_model(path, unsafe=unsafe)
            return cls.from_model(model if frame is None else fitted(model, *frame), str(path))
        if suffix == ".tflite":
            return cls(_open_runtime(TFLiteRuntime, path, threads), str(path))
        if suffix == ".onnx":
            return cls(_open_runtime(OnnxRuntime, path, threads), str(path))
        raise FacetrackerError("unknown model format", path,
                               "pass a .keras model, an exported .tflite/.onnx file or a SavedModel folder")

    @classmethod
    def from_model(cls, model, source: str = "in-memory model") -> "Detector":
        return cls(KerasRuntime(model), source)

    def copy(self, threads: int = 1) -> "Detector | None":
        """Another Detector on the same file, with its own interpreter, threads and buffers, so two threads can each
        run one (live's detection workers). None for runtimes that are not worth copying: Keras and SavedModel
        run on TensorFlow's own thread pool and hold the GIL between ops."""
        copy = getattr(self.runtime, "copy", None)
        return Detector(copy(threads), self.source) if copy is not None else None

    def letterbox(self, frame_bgr: np.ndarray) -> Letterbox:
        """Where this frame sits in the model input."""
        return self._prepare.letterbox(frame_bgr)

    def preparer(self) -> FramePreparer:
        """A FramePreparer of this model's input for another thread (see detect_prepared)."""
        return FramePreparer(self.input_size)

    def detect(self, frame_bgr: np.ndarray, min_score: float = config.MIN_SCORE) -> list[Detection]:
        """Every face scoring at least `min_score` in one BGR uint8 frame, best first, boxes in its pixels."""
        return self.detect_prepared(*self._prepare(frame_bgr, copy=False), min_score=min_score)

    def detect_prepared(self, pixels: np.ndarray, layout: Letterbox,
                        min_score: float = config.MIN_SCORE) -> list[Detection]:
        """detect() for a frame already letterboxed by a FramePreparer: (pixels, layout) as it returned them."""
        self._input[0] = pixels
        scores, boxes = self.runtime.run(self._input)
        return to_detections(scores[0], boxes[0], layout, min_score)

    def detect_mirrored(self, frame_bgr: np.ndarray, min_score: float = config.MIN_SCORE) -> list[Detection]:
        """detect() on the frame and on its mirror image, the two answers averaged (boxes.merge_mirrored): steadier
        scores and boxes for twice the time, for still images (detect_still; benchmarks/prelabel_quality.py
        measures the gain). Each view keeps every face from MIN_SCORE, so a face one view scores low still pairs."""
        _check_frame(frame_bgr)
        found = self.detect(frame_bgr)
        mirrored = self.detect(cv2.flip(frame_bgr, 1))
        scores, boxes = merge_mirrored([d.score for d in found], [d.box for d in found],
                                       [d.score for d in mirrored],
                                       unmirror([d.box for d in mirrored], frame_bgr.shape[1]))
        return [Detection(score=float(score), box=tuple(float(v) for v in box))
                for score, box in zip(scores, boxes) if score >= min_score]

    def detect_still(self, image_bgr: np.ndarray, min_score: float = config.MIN_SCORE) -> list[Detection]:
        """Every face of a still image (a photo, a labelled frame), as carefully as the model can: seen as it is and
        mirrored (detect_mirrored), and a big photo also in overlapping tiles (boxes.tiles: none under
        TILE_FROM_SIDE px), so the small faces of a group are found; all merged (boxes.merge_views). Two model calls
        per view: for images, not for live video."""
        _check_frame(image_bgr)
        height, width = image_bgr.shape[:2]
        found = self.detect_mirrored(image_bgr, min_score)
        windows = tiles(width, height)
        if not windows:
            return found
        scores, boxes = [d.score for d in found], [d.box for d in found]
        for x1, y1, x2, y2 in windows:
            seen = self.detect_mirrored(np.ascontiguousarray(image_bgr[y1:y2, x1:x2]), min_score)
            shifted = np.asarray([d.box for d in seen], np.float64).reshape(-1, 4) + [x1, y1, x1, y1]
            # Tiles are for the small faces: a big one is seen best by the coarser views, and a tile showing a part
            # of it at twice the size is the usual source of a false face.
            small = (shifted[:, 2:] - shifted[:, :2]).max(axis=1) <= config.TILE_FACE_SHARE * (x2 - x1)
            whole = small & ~cut_by_window(shifted, (x1, y1, x2, y2), width, height)
            scores += [d.score for d, keep in zip(seen, whole) if keep]
            boxes += [tuple(box) for box in shifted[whole]]
        return [Detection(score=float(scores[k]), box=tuple(float(v) for v in boxes[k]))
                for k in merge_views(scores, boxes)]

    def detect_batch(self, frames: list[np.ndarray], min_score: float = config.MIN_SCORE) -> list[list[Detection]]:
        """detect() for several frames (sizes may differ) in one model call where the runtime allows it."""
        if not frames:
            return []
        scores, boxes = self.runtime.run(self.prepare(frames))
        return [to_detections(s, b, self.letterbox(f), min_score) for s, b, f in zip(scores, boxes, frames)]

    def prepare(self, frames: list[np.ndarray]) -> np.ndarray:
        """The float32 (N, height, width, 3) batch the model sees for these BGR frames."""
        batch = np.empty((len(frames), *self._input_shape), np.float32)
        for frame, row in zip(frames, batch):
            row[...] = self._prepare(frame, copy=False)[0]
        return batch

    def raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N, K) sorted high to low and boxes (N, K, 4) as fractions of the input, zero-padded, for
        model-ready input (N, height, width, 3) float32."""
        return self.runtime.run(np.ascontiguousarray(batch, dtype=np.float32))


def still_faces(detector, image_bgr: np.ndarray, min_score: float = config.MIN_SCORE) -> list:
    """The faces of a still image, best first: Detector.detect_still (mirrored, and tiles for a big photo) when the
    detector has it, detect() for others (Haar, stand-ins)."""
    detect = getattr(detector, "detect_still", None) or detector.detect
    return [d for d in detect(image_bgr, min_score=min_score) if d.score >= min_score]


def make_resizer(mode: str, size: int | tuple[int, int]):
    """A function (frame, out) that resizes a whole BGR frame into the uint8 `out` of `size` (width, height).

    Training resizes with tf.image.resize(method="area"), which cv2.INTER_AREA reproduces exactly ("area"),
    but INTER_AREA costs ~1 ms for a 640x480 frame — 40% of the per-frame budget at 400 FPS. "fast-area"
    resizes bilinearly to twice the side, then averages 2x2 blocks (OpenCV's fast integer area path):
    0.2 ms, on average 0.4 grey levels from "area", so the model sees the same image. "linear" alone aliases."""
    if mode not in RESIZE_MODES:
        raise FacetrackerError(f"unknown resize mode '{mode}'", "config.RESIZE_INTERPOLATION",
                               f"use one of: {', '.join(RESIZE_MODES)}")
    width, height = (size, size) if isinstance(size, int) else size
    if mode == "area":
        return lambda frame, out: cv2.resize(frame, (width, height), dst=out, interpolation=cv2.INTER_AREA)
    if mode == "linear":
        return lambda frame, out: cv2.resize(frame, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    double = np.empty((2 * height, 2 * width, 3), np.uint8)

    def fast_area(frame, out):
        cv2.resize(frame, (2 * width, 2 * height), dst=double, interpolation=cv2.INTER_LINEAR)
        cv2.resize(double, (width, height), dst=out, interpolation=cv2.INTER_AREA)

    return fast_area


def _open_runtime(runtime_class, path: Path, *args):
    try:
        return runtime_class(path, *args)
    except FacetrackerError:
        raise
    except Exception as exc:  # corrupt or foreign files: the runtimes raise many different types
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else exc.__class__.__name__
        raise FacetrackerError(f"cannot load {runtime_class.name} model ({first_line})", path,
                               "re-export it with `facetracker export` or check the file is complete") from None


def _check_frame(frame) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 \
            or frame.shape[0] < 1 or frame.shape[1] < 1:
        shape = getattr(frame, "shape", None)
        raise FacetrackerError(f"frame is not a BGR uint8 image (shape {shape})", None,
                               "pass frames as read by cv2.imread or cv2.VideoCapture")


def to_detections(scores: np.ndarray, boxes: np.ndarray, layout: Letterbox,
                  min_score: float = config.MIN_SCORE) -> list[Detection]:
    """The model's (K,) scores and (K, 4) input-fraction boxes of one frame -> Detections in its pixels.

    Empty slots (score 0, the zero padding after the faces found) never become detections, even at min_score 0."""
    keep = (scores >= min_score) & (scores > 0)
    pixels = layout.to_frame(boxes[keep])
    return [Detection(score=float(score), box=tuple(float(v) for v in box))
            for score, box in zip(scores[keep], pixels)]
