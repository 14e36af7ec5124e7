"""The FaceTracker model: a dense face detector (every cell of a stride-8 grid predicts a face score and a box),
trained with a dual loss (focal loss on the scores, an IoU loss on the boxes of the cells that hold a face).

Contract used by inference/export/evaluate: the model takes float32 RGB pixels in 0..255 of shape
(N, image_size, image_size, 3) -- the frame letterboxed into the square, see facetracker/boxes.py -- or, for a
model fitted to a frame's aspect (`fitted`), (N, height, width, 3) of `input_size`, and returns
`(scores (N, K), boxes (N, K, 4))`: the K best faces after non-maximum suppression, sorted by score, boxes
[x1, y1, x2, y2] as fractions of the input, zeros where fewer faces were found.
The backbone's own preprocessing happens inside the graph with serializable layers (no Lambda), so a saved
`.keras` file loads with safe_mode=True and needs no flags.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
from keras import layers, ops

from facetracker import boxes, config, losses
from facetracker.errors import FacetrackerError
from facetracker.files import check_keras_archive

# backbone name -> (keras.applications constructor name, preprocessing, default input side, imagenet sizes)
BACKBONES = {
    "compact": (None, "standardize", 192, None),  # designed here, always from scratch
    "mobilenetv2": ("MobileNetV2", "tf", 192, (96, 128, 160, 192, 224)),
    "vgg16": ("VGG16", "caffe", 192, None),  # VGG16 without top accepts any size >= 32
    "blazeface": (None, "tf", 192, None),  # MediaPipe's BlazeFace (short range) feature extractor, weights from its .tflite
    "blazeface-lite": (None, "tf", 192, None),  # the same from its stride-4 map on, with a cheaper stem (blazeface_lite_backbone)
}
# BlazeFace short range: (output channels, stride) of its 16 BlazeBlocks after the 5x5 stem; the stride-8 features are
# the output of block 10 (88 channels), the stride-16 ones of block 15 (96).
BLAZE_BLOCKS = ((24, 1), (28, 1), (32, 2), (36, 1), (42, 1), (48, 2), (56, 1), (64, 1), (72, 1), (80, 1), (88, 1),
                (96, 2), (96, 1), (96, 1), (96, 1), (96, 1))
BLAZE_TAPS = (10, 15)
# blazeface-lite: BlazeFace's 5x5 stem and its first three blocks, which run on 96x96 maps at a 192 px input and take
# over half the network's time, replaced by a cheap stem of the same output (48x48x32 at 192 px). It starts from a
# trained blazeface FaceTracker: the new stem learns to give the features the old one gave (recipe.distill_stem).
LITE_FIRST_BLOCK = 3  # BLAZE_BLOCKS[3:] are kept
LITE_PREFIX = "lite_"  # the new stem's layers; every other layer has the name of its blazeface twin
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="facetracker")
class CaffePreprocess(layers.Layer):
    """keras.applications' "caffe" preprocessing (VGG16): RGB -> BGR, then subtract the ImageNet mean.

    A registered layer instead of a Lambda so the saved model loads with safe_mode=True."""

    def call(self, x):
        bgr = ops.flip(x, axis=-1)
        return bgr - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=x.dtype)


@keras.saving.register_keras_serializable(package="facetracker")
class Standardize(layers.Layer):
    """Per-image standardisation: each image to mean 0, std 1 over all its pixels and channels.

    For backbones trained from scratch (no pretrained weights expecting a fixed input range): it removes what
    differs most between rooms and cameras -- exposure and contrast -- before the network sees the image.
    Per channel would also remove colour casts, but TFLite runs a per-channel broadcast over the whole input
    ~10x slower than a scalar one (0.6 ms of a ~2 ms frame, docs/benchmarks.md); colour jitter in training
    covers casts instead."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.sqrt(ops.mean(ops.square(x - mean), axis=(1, 2, 3), keepdims=True))
        return (x - mean) / ops.maximum(std, 1.0)  # floor of 1 grey level: a flat image stays finite


PREPROCESSINGS = ("tf", "caffe", "standardize")


def preprocessing_layer(kind: str) -> layers.Layer:
    if kind == "caffe":
        return CaffePreprocess(name="preprocess")
    if kind == "standardize":
        return Standardize(name="preprocess")
    # "tf": MobileNet family expects [-1, 1]
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")


BUNDLED = "bundled"  # --weights bundled: start from the face model shipped in facetracker/assets/


def from_scratch(weights) -> bool:
    """True when `weights` (None, "none", "bundled", "imagenet" or a file) leaves the network randomly initialised."""
    return weights is None or str(weights).lower() == "none"


def starts_from_facetracker(weights) -> bool:
    """True when training starts from a whole FaceTracker: the bundled model or a `.keras` file (backbone, neck
    and head), rather than from a backbone's weights (imagenet, a keras.applications file) or from scratch."""
    if from_scratch(weights):
        return False
    return str(weights).lower() == BUNDLED or Path(str(weights)).suffix.lower() == ".keras"


def pick_preprocessing(choice: str, backbone: str, weights) -> str:
    """`auto`: the backbone's own preprocessing when pretrained backbone weights are loaded (they expect it), per-image
    standardisation when training from scratch. Otherwise the named one. (A FaceTracker start brings its own,
    see start_model_config.)"""
    check_backbone(backbone)
    if choice == "auto":
        return "standardize" if from_scratch(weights) else BACKBONES[backbone][1]
    if choice not in PREPROCESSINGS:
        raise FacetrackerError(f"unknown preprocessing '{choice}'", None, f"choose auto or one of: {', '.join(PREPROCESSINGS)}")
    return choice


def default_image_size(backbone: str) -> int:
    check_backbone(backbone)
    return config.IMAGE_SIZE.get(backbone, BACKBONES[backbone][2])


def check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise FacetrackerError(f"unknown backbone '{backbone}'", None, f"choose one of: {', '.join(BACKBONES)}")


def input_shape(size) -> tuple[int, int, int]:
    """A square side or a (width, height) input size -> the (height, width, 3) shape of the input layer."""
    width, height = (size, size) if isinstance(size, int) else size
    return int(height), int(width), 3


def make_backbone(backbone: str, image_size, alpha: float, weights: str | Path | None) -> keras.Model:
    """A keras.applications feature extractor (no top). `weights`: None, "imagenet" or a local weights file."""
    check_backbone(backbone)
    ctor_name, _, _, imagenet_sizes = BACKBONES[backbone]
    ctor = getattr(keras.applications, ctor_name)
    height, width, _ = shape = input_shape(image_size)
    kwargs = dict(include_top=False, input_shape=shape)
    if backbone != "vgg16":
        kwargs["alpha"] = alpha
    if backbone == "mobilenetv3small":
        kwargs["include_preprocessing"] = False  # done by our own Rescaling layer
    weights = _resolve_weights(weights, backbone, width if width == height else (width, height), imagenet_sizes)
    try:
        return ctor(weights=weights, **kwargs)
    except ValueError as exc:
        raise FacetrackerError(f"cannot build {backbone} ({exc})", weights, "check --image-size/--alpha/--weights") from None
    except Exception as exc:  # network failure inside keras' downloader, unreadable file, ...
        if weights == "imagenet":
            raise FacetrackerError(
                f"could not download ImageNet weights for {backbone} ({exc.__class__.__name__})", None,
                "use --weights none, or --weights PATH to a local weights file") from None
        raise FacetrackerError(f"could not load backbone weights ({exc.__class__.__name__}: {exc})", weights,
                               "pass a keras.applications weights file for this backbone and size") from None


def set_bn_momentum(backbone: keras.Model, momentum: float) -> None:
    """keras.applications' MobileNets use BatchNorm momentum 0.999, tuned for fine-tuning for many steps; when
    training a small data set from scratch the moving statistics then lag far behind the weights and inference
    outputs are wrong for thousands of steps. A faster momentum keeps them in step."""
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum


def _resolve_weights(weights, backbone, image_size, imagenet_sizes):
    if from_scratch(weights):
        return None
    if starts_from_facetracker(weights):
        raise FacetrackerError(f"--weights {weights} is a whole FaceTracker, not {backbone} backbone weights", None,
                               "start from it with `facetracker train --weights` (see start_model_config)")
    if str(weights).lower() == "imagenet":
        if imagenet_sizes and image_size not in imagenet_sizes:
            raise FacetrackerError(f"no ImageNet weights for {backbone} at {image_size}px", None,
                                   f"use --image-size in {imagenet_sizes} or --weights none")
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise FacetrackerError("weights file not found", path,
                               "use --weights bundled|none|imagenet or an existing .keras / weights file")
    return str(path)


# ---- starting from a whole FaceTracker (fine-tuning) ---------------------------------------------------------
def bundled_model_file() -> Path:
    """The bundled FaceTracker `.keras` file (facetracker/assets/), whatever model it holds; one clear error if the
    installation has none."""
    from facetracker.inference import bundled_model_path

    try:
        return bundled_model_path(fast=False)
    except FacetrackerError as exc:
        raise FacetrackerError(exc.what, exc.where, "train from scratch with --weights none, or pass --weights "
                               "PATH to a FaceTracker .keras file") from None


def start_model_path(weights) -> Path | None:
    """The FaceTracker file training starts from (`bundled` or a `.keras` path), None for any other --weights."""
    if not starts_from_facetracker(weights):
        return None
    if str(weights).lower() == BUNDLED:
        return bundled_model_file()
    path = Path(weights)
    if not path.is_file():
        raise FacetrackerError("starting model not found", path,
                               "pass an existing FaceTracker .keras file, --weights bundled or --weights none")
    return path


def _start_fix(path: Path) -> str:
    return "train from scratch with --weights none" if _is_bundled_file(path) else \
        "pass a FaceTracker .keras file saved by `facetracker train`, or --weights bundled|none"


def _is_bundled_file(path: Path) -> bool:
    return Path(path).resolve().parent == (Path(__file__).resolve().parent / "assets")


def start_model_config(path: Path) -> dict:
    """The FaceTracker config recorded in a `.keras` file (read from the zip, no TensorFlow work): backbone,
    image_size, preprocessing, alpha, width, neck_channels, max_faces... One clear error when the file is not a
    FaceTracker, or is the old single-face model (one box per image, which this dense detector cannot load)."""
    import json
    import zipfile

    from facetracker.files import check_keras_archive

    path = Path(path)
    what = "the bundled model" if _is_bundled_file(path) else "the starting model"
    try:
        check_keras_archive(path)
    except FacetrackerError as exc:
        raise FacetrackerError(f"{what} is {exc.what}", path,
                               _start_fix(path)) from None
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FacetrackerError(f"{what} is not a Keras model file ({exc.__class__.__name__})", path,
                               _start_fix(path)) from None
    cfg = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(saved, dict) or saved.get("class_name") != "FaceTracker" or not isinstance(cfg, dict):
        name = saved.get("class_name") if isinstance(saved, dict) else None
        raise FacetrackerError(f"{what} is a Keras file but not a FaceTracker ({name or 'unknown class'})", path,
                               _start_fix(path))
    if "head_units" in cfg or cfg.get("backbone") not in BACKBONES:
        raise FacetrackerError(f"{what} is an old single-face FaceTracker that this version cannot load", path,
                               _start_fix(path))
    return cfg


def check_start_options(cfg: dict, path: Path, backbone: str | None = None, image_size: int | None = None,
                        alpha: float | None = None, preprocessing: str = "auto") -> None:
    """Fine-tuning keeps the starting model's input size, preprocessing and head: an option asking for another one
    stops with one line (None / "auto" follow the model)."""
    for flag, asked, saved in (("--backbone", backbone, cfg.get("backbone")),
                               ("--image-size", image_size, cfg.get("image_size")),
                               ("--alpha", alpha, cfg.get("alpha")),
                               ("--preprocessing", None if preprocessing == "auto" else preprocessing,
                                cfg.get("preprocessing"))):
        if asked is not None and saved is not None and asked != saved:
            raise FacetrackerError(f"{flag} {asked} does not match the starting model ({saved})", path,
                                   f"drop {flag} to fine-tune this model, or train from scratch with --weights none")


def load_start_model(path: Path) -> "FaceTracker":
    """The FaceTracker to fine-tune, loaded (safe mode) with its weights; the error names the file and the fix."""
    path = Path(path)
    start_model_config(path)  # the clear errors first
    try:
        return load_model(path, compile=False)
    except FacetrackerError as exc:
        what = "the bundled model" if _is_bundled_file(path) else "the starting model"
        raise FacetrackerError(f"cannot fine-tune {what}: {exc.what}", path, _start_fix(path)) from None


def compact_backbone(image_size, width: int, separable: bool = False) -> keras.Model:
    """A plain 3x3-conv network, designed here for CPU training and inference: (stride 8, 16, 32) features.

    Depthwise convolutions (MobileNet, BlazeFace) are cheap at inference but train several times slower per
    image on a CPU than dense 3x3 convolutions of the same cost (docs/quality.md), and this model is trained on
    CPUs, so every block is a dense conv + BatchNorm + ReLU, halving the resolution at each stage.
    `separable` makes the second conv of the stride-16 and stride-32 stages depthwise-separable: those hold 60 %
    of the weights and run on maps of 12x12 and 6x6, where inference is bound by reading weights, not by
    arithmetic, and where a depthwise conv is too small to slow training down."""
    inputs = keras.Input(input_shape(image_size))
    x = inputs
    taps = []
    for stage, (channels, repeats) in enumerate(((width // 2, 1), (width, 1), (width * 2, 2),
                                                  (width * 4, 2), (width * 8, 2))):
        for repeat in range(repeats):
            conv = layers.SeparableConv2D if separable and stage >= 3 and repeat > 0 else layers.Conv2D
            x = conv(channels, 3, strides=2 if repeat == 0 else 1, padding="same", use_bias=False,
                     name=f"stage{stage}_conv{repeat}")(x)
            x = layers.BatchNormalization(name=f"stage{stage}_bn{repeat}")(x)
            x = layers.ReLU(name=f"stage{stage}_relu{repeat}")(x)
        if stage >= 2:
            taps.append(x)
    return keras.Model(inputs, taps, name="compact")


@keras.saving.register_keras_serializable(package="facetracker")
class ChannelPad(layers.Layer):
    """Zero channels appended to a residual branch so it can be added to a wider one (BlazeBlock's shortcut)."""

    def __init__(self, extra: int, **kwargs):
        super().__init__(**kwargs)
        self.extra = int(extra)

    def call(self, x):
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

    def get_config(self):
        return {**super().get_config(), "extra": self.extra}


def blaze_block(x, channels: int, stride: int, index: int, prefix: str = ""):
    """BlazeFace's block: depthwise 3x3 + pointwise 1x1, added to the input (max-pooled when strided, zero-padded
    to the new width), then ReLU. Layer names follow the .tflite's tensors, so its weights load by name."""
    shortcut = x
    suffix = f"_{index}" if index else ""  # the .tflite names its first depthwise conv without a number
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"{prefix}depthwise_conv2d{suffix}")(x)
    y = layers.Conv2D(channels, 1, name=f"{prefix}conv2d_{index + 1}")(y)
    if stride > 1:
        shortcut = layers.MaxPooling2D(stride, name=f"{prefix}max_pool_{index}")(shortcut)
    if shortcut.shape[-1] < channels:
        shortcut = ChannelPad(channels - shortcut.shape[-1], name=f"{prefix}channel_pad_{index}")(shortcut)
    return layers.ReLU(name=f"{prefix}activation_{index + 1}")(layers.Add(name=f"{prefix}add_{index}")([shortcut, y]))


def blazeface_backbone(image_size) -> keras.Model:
    """MediaPipe BlazeFace's (short range) feature extractor, (stride 8, 16, 32) features: its stem and 16 blocks,
    plus one new strided block for the stride-32 map the feature pyramid takes (BlazeFace stops at 16)."""
    inputs = keras.Input(input_shape(image_size))
    x = layers.Conv2D(24, 5, strides=2, padding="same", name="conv2d")(inputs)
    x = layers.ReLU(name="activation")(x)
    taps = []
    for index, (channels, stride) in enumerate(BLAZE_BLOCKS):
        x = blaze_block(x, channels, stride, index)
        if index in BLAZE_TAPS:
            taps.append(x)
    taps.append(blaze_block(x, 128, 2, 0, prefix="extra_"))
    return keras.Model(inputs, taps, name="blazeface")


def blazeface_lite_backbone(image_size) -> keras.Model:
    """blazeface_backbone with a cheap stem in place of its first stride-4 part: a strided 3x3 conv to 16 channels,
    a strided depthwise conv and a pointwise one to 32, then one 32-channel BlazeBlock. It sees about as far as the
    part it replaces (15 px against 17) with about a quarter of its multiply-adds."""
    inputs = keras.Input(input_shape(image_size))
    x = layers.Conv2D(16, 3, strides=2, padding="same", name=f"{LITE_PREFIX}stem")(inputs)
    x = layers.ReLU(name=f"{LITE_PREFIX}stem_relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name=f"{LITE_PREFIX}stem_depthwise")(x)
    x = layers.Conv2D(BLAZE_BLOCKS[LITE_FIRST_BLOCK - 1][0], 1, name=f"{LITE_PREFIX}stem_pointwise")(x)
    x = layers.ReLU(name=f"{LITE_PREFIX}stem_pointwise_relu")(x)
    x = blaze_block(x, BLAZE_BLOCKS[LITE_FIRST_BLOCK - 1][0], 1, 0, prefix=LITE_PREFIX)
    taps = []
    for index, (channels, stride) in enumerate(BLAZE_BLOCKS[LITE_FIRST_BLOCK:], start=LITE_FIRST_BLOCK):
        x = blaze_block(x, channels, stride, index)
        if index in BLAZE_TAPS:
            taps.append(x)
    taps.append(blaze_block(x, 128, 2, 0, prefix="extra_"))
    return keras.Model(inputs, taps, name="blazeface_lite")


def lite_stem_output(backbone: keras.Model):
    """The stride-4 features after the stem: what blazeface-lite's stem must learn to give (BlazeBlock 2's output
    in blazeface, the stem's own block in blazeface-lite)."""
    last = f"{LITE_PREFIX}activation_1" if backbone.name == "blazeface_lite" else f"activation_{LITE_FIRST_BLOCK}"
    return backbone.get_layer(last).output


BLAZEFACE_WEIGHTS = "blazeface"  # --weights blazeface: the .tflite shipped in facetracker/assets/


def blazeface_weights_file(weights) -> Path:
    """The BlazeFace .tflite whose weights start the `blazeface` backbone: `blazeface` (the shipped copy of
    MediaPipe's face_detection_short_range.tflite) or a path to such a file."""
    if str(weights).lower() == BLAZEFACE_WEIGHTS:
        return Path(__file__).resolve().parent / "assets" / config.BLAZEFACE_WEIGHTS_NAME
    path = Path(weights)
    if path.suffix.lower() != ".tflite" or not path.is_file():
        raise FacetrackerError("the blazeface backbone starts from BlazeFace's .tflite", path,
                               "use --weights blazeface (the shipped file), none, or a FaceTracker .keras file")
    return path


def load_blazeface_weights(backbone: keras.Model, tflite_path: Path) -> int:
    """Copy the weights of MediaPipe's face_detection_short_range.tflite (float16 constants) into the layers of the
    same names; returns how many layers were filled."""
    import warnings

    import numpy as np

    from facetracker.inference import tflite_interpreter_class

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = tflite_interpreter_class()(model_path=str(tflite_path))
    except (ValueError, RuntimeError) as exc:
        raise FacetrackerError(f"cannot read the .tflite ({exc.__class__.__name__})", tflite_path,
                               "pass MediaPipe's face_detection_short_range.tflite, or --weights blazeface") from None
    constants = {}
    for detail in interpreter.get_tensor_details():
        if detail["name"].endswith(("/Kernel", "/Bias")):
            constants[detail["name"]] = np.asarray(interpreter.get_tensor(detail["index"]), np.float32)
    filled = 0
    for layer in backbone.layers:
        kernel, bias = constants.get(f"{layer.name}/Kernel"), constants.get(f"{layer.name}/Bias")
        if kernel is None:
            continue
        # TFLite keeps (out, h, w, in) for convolutions and (1, h, w, channels) for depthwise ones; Keras wants
        # (h, w, in, out) and (h, w, channels, 1): both are the same transpose.
        kernel = kernel.transpose(1, 2, 3, 0)
        if kernel.shape != layer.kernel.shape:
            raise FacetrackerError(f"{layer.name} is {kernel.shape} in the file, {tuple(layer.kernel.shape)} here",
                                   tflite_path, "pass MediaPipe's face_detection_short_range.tflite")
        layer.set_weights([kernel, bias])
        filled += 1
    # blazeface: the stem, then a depthwise and a pointwise one per block; blazeface-lite: the blocks it keeps
    convolutions = sum(1 for layer in backbone.layers
                       if hasattr(layer, "kernel") and not layer.name.startswith(("extra_", LITE_PREFIX)))
    if filled != convolutions:
        raise FacetrackerError(f"only {filled} of BlazeFace's {convolutions} convolutions found", tflite_path,
                               "pass MediaPipe's face_detection_short_range.tflite")
    return filled


def check_backbone_weights(backbone: str, weights) -> None:
    """Backbone-only weights: imagenet or a keras.applications file for those backbones, BlazeFace's .tflite for
    the blazeface one, none for the compact one."""
    if from_scratch(weights) or starts_from_facetracker(weights):
        return
    if backbone.startswith("blazeface"):
        blazeface_weights_file(weights)
    elif backbone == "compact":
        raise FacetrackerError("the compact backbone has no ImageNet or keras.applications weights", weights,
                               "use --weights bundled (fine-tune the face model) or none, or --backbone mobilenetv2 "
                               "with --weights imagenet")


# keras.applications backbones: the layers whose outputs are the stride 8, 16 and 32 features.
FEATURE_LAYERS = {
    "mobilenetv2": ("block_6_expand_relu", "block_13_expand_relu", "out_relu"),
    "vgg16": ("block3_pool", "block4_pool", "block5_pool"),
}


def feature_backbone(backbone: str, image_size, alpha: float, width: int, weights,
                     separable: bool = False) -> keras.Model:
    """image -> [stride-8, stride-16, stride-32 feature maps]. image_size: a square side or (width, height)."""
    if backbone == "compact":
        check_backbone_weights(backbone, weights)
        return compact_backbone(image_size, width, separable)
    if backbone.startswith("blazeface"):
        model = blazeface_backbone(image_size) if backbone == "blazeface" else blazeface_lite_backbone(image_size)
        if not from_scratch(weights):
            load_blazeface_weights(model, blazeface_weights_file(weights))
        return model
    base = make_backbone(backbone, image_size, alpha, weights)
    taps = [base.get_layer(name).output for name in FEATURE_LAYERS[backbone]]
    return keras.Model(base.input, taps, name=f"{backbone}_features")


@keras.saving.register_keras_serializable(package="facetracker")
class FaceTracker(keras.Model):
    """A dense face detector: backbone -> small feature pyramid -> per-cell face logit and box.

    `call` is the detector that inference and every export run: decoding and non-maximum suppression inside
    the graph, (scores (N, K), boxes (N, K, 4)) with the K best faces sorted by score, boxes [x1, y1, x2, y2]
    as fractions of the letterboxed input, zero-padded. `dense` gives the raw per-cell outputs that training
    and the losses use."""

    def __init__(self, image_size: int | None = None, backbone: str = config.DEFAULT_BACKBONE,
                 alpha: float = config.ALPHA, width: int = config.WIDTH, neck_channels: int = config.NECK_CHANNELS,
                 bn_momentum: float = config.BN_MOMENTUM, weights: str | Path | None = None,
                 preprocessing: str | None = None, max_faces: int = config.MAX_FACES,
                 separable: bool = config.SEPARABLE, input_size: tuple[int, int] | None = None, **kwargs):
        kwargs.pop("head_units", None), kwargs.pop("dropout", None)  # options of the old single-box model
        super().__init__(**kwargs)
        self.backbone_name = backbone
        self.image_size = int(image_size or default_image_size(backbone))
        if self.image_size % 32:
            raise FacetrackerError(f"image size {self.image_size} is not a multiple of 32", None,
                                   "use --image-size 160, 192, 224, ...")
        self.preprocessing = preprocessing or BACKBONES[backbone][1]  # None: the backbone's own
        self.alpha, self.width, self.neck_channels = float(alpha), int(width), int(neck_channels)
        # input_size: (width, height) of an input fitted to a frame's aspect (see `fitted`); training stays square.
        fit = _checked_fit(input_size, self.image_size)
        self.input_size = fit or (self.image_size, self.image_size)
        self.max_faces = int(max_faces)
        self.grid = boxes.grid_shape(fit) if fit else boxes.grid_size(self.image_size)
        self.separable = bool(separable)
        self.preprocess = preprocessing_layer(self.preprocessing)
        self.backbone = feature_backbone(backbone, self.input_size, self.alpha, self.width, weights, self.separable)
        self.bn_momentum = float(bn_momentum)
        set_bn_momentum(self.backbone, self.bn_momentum)
        self._build_neck_and_head()
        self._trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "class_loss", "box_loss", "iou")}
        self.loss_options = dict(class_weight=1.0, box_weight=1.0, box_loss=config.BOX_LOSS,
                                 score_loss=config.SCORE_LOSS)
        self.build((None, *input_shape(self.input_size)))

    def _build_neck_and_head(self):
        # Feature pyramid (top-down, as in FPN): the coarse maps see whole heads and context, the stride-8 map
        # places small faces; their sum on the stride-8 grid gives every cell both.
        # `separable`: the two 3x3 convs on the stride-8 grid, a quarter of the network's multiply-adds, become
        # depthwise-separable (config.SEPARABLE).
        c = self.neck_channels
        conv = layers.SeparableConv2D if self.separable else layers.Conv2D
        self.laterals = [layers.Conv2D(c, 1, name=f"lateral{i}") for i in range(3)]
        self.upsample = layers.UpSampling2D(2, interpolation="nearest", name="upsample")
        self.merge = conv(c, 3, padding="same", use_bias=False, name="merge")
        self.merge_bn = layers.BatchNormalization(momentum=self.bn_momentum, name="merge_bn")
        self.head = conv(c, 3, padding="same", activation="relu", name="head")
        # Focal-loss prior (RetinaNet): start every cell at p(face) = 0.01 so the many empty cells do not
        # swamp the first steps.
        self.logit = layers.Conv2D(1, 1, bias_initializer=keras.initializers.Constant(-4.6), name="logit")
        self.distances = layers.Conv2D(4, 1, bias_initializer=keras.initializers.Constant(1.0), name="distances")

    def neck_and_head(self) -> list:
        return [*self.laterals, self.merge, self.merge_bn, self.head, self.logit, self.distances]

    def build(self, input_shape):
        # Build every sublayer by tracing the graph once on a symbolic input.
        if not self.built:
            self.compute_output_spec(keras.KerasTensor(input_shape, dtype="float32"))
            self.built = True

    def dense(self, images, training=False):
        """Raw outputs of every cell: (logits (N, C), side distances (N, C, 4)), C = rows * columns of the grid."""
        c3, c4, c5 = self.backbone(self.preprocess(images), training=training)
        p5 = self.laterals[2](c5)
        p4 = self.laterals[1](c4) + self.upsample(p5)
        p3 = self.laterals[0](c3) + self.upsample(p4)
        x = ops.relu(self.merge_bn(self.merge(p3), training=training))
        x = self.head(x)
        cells = x.shape[1] * x.shape[2]
        logits = ops.reshape(self.logit(x), (-1, cells))
        return logits, ops.reshape(self.distances(x), (-1, cells, 4))

    def call(self, images, training=False):
        logits, distances = self.dense(images, training=training)
        scores = tf.sigmoid(logits)
        decoded = boxes.decode_boxes(distances, self.grid)
        if images.shape[0] == 1:
            # A graph traced for one image (the TFLite export, live video) gets no loop: TFLite's int8
            # calibrator crashes (segfault) on the While op tf.map_fn becomes.
            kept_scores, kept_boxes = (t[tf.newaxis] for t in self._select_faces((scores[0], decoded[0])))
        else:
            kept_scores, kept_boxes = tf.map_fn(
                self._select_faces, (scores, decoded),
                fn_output_signature=(tf.TensorSpec((self.max_faces,), tf.float32),
                                     tf.TensorSpec((self.max_faces, 4), tf.float32)))
        # TFLite's NMS kernel always returns max_faces indices, padding with index 0, so its empty slots would
        # carry cell 0's box; zero every slot without a score so all runtimes give the same padding.
        return kept_scores, kept_boxes * tf.cast(kept_scores > 0, tf.float32)[..., tf.newaxis]

    def _select_faces(self, scores_and_boxes):
        """NMS of one image, for tf.map_fn (TensorFlow's NMS op takes one image at a time)."""
        return boxes.select_faces(*scores_and_boxes, max_faces=self.max_faces)

    # ---- training -------------------------------------------------------------------------------------------
    def compile(self, optimizer="adam", class_weight: float = 1.0, box_weight: float = 1.0,
                box_loss: str = config.BOX_LOSS, score_loss: str = config.SCORE_LOSS, **kwargs):
        losses.check_box_loss(box_loss), losses.check_score_loss(score_loss)
        self.loss_options = dict(class_weight=float(class_weight), box_weight=float(box_weight), box_loss=box_loss,
                                 score_loss=score_loss)
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        if not self.compiled:  # nothing to restore: keras would otherwise build an empty optimizer on load
            return None
        return {**(super().get_compile_config() or {}), **self.loss_options}

    def compile_from_config(self, compile_config):
        # Keras skips compiling a model whose compile() is overridden; resuming needs the optimizer back
        # (its state is then restored from the file by keras' loader).
        self.compile(**keras.saving.deserialize_keras_object(compile_config))
        self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _dual_loss(self, true_boxes, images, training):
        logits, distances = self.dense(images, training=training)
        return losses.dense_losses(true_boxes, logits, distances, self.grid, **self.loss_options)

    def _update_metrics(self, result):
        for name, tracker in self._trackers.items():
            tracker.update_state(result[name], sample_weight=result["positives"] if name == "iou" else None)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def train_step(self, data):
        x, true_boxes = data
        with tf.GradientTape() as tape:
            result = self._dual_loss(true_boxes, x, training=True)
            # Gradients are summed over replicas by tf.distribute, so each replica scales its loss down.
            scaled = result["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self._update_metrics(result)

    def test_step(self, data):
        x, true_boxes = data
        return self._update_metrics(self._dual_loss(true_boxes, x, training=False))

    # ---- saving ---------------------------------------------------------------------------------------------
    def get_config(self):
        # weights are NOT recorded: a loaded model gets its trained weights from the file, never a download.
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "backbone": self.backbone_name, "preprocessing": self.preprocessing, "alpha": self.alpha,
                "width": self.width, "neck_channels": self.neck_channels, "bn_momentum": self.bn_momentum,
                "max_faces": self.max_faces, "separable": self.separable,
                "input_size": None if self.is_square else list(self.input_size)}

    @property
    def is_square(self) -> bool:
        return self.input_size == (self.image_size, self.image_size)

    @classmethod
    def from_config(cls, cfg):
        # Files saved before `separable` existed hold the all-dense network.
        return cls(**{"separable": False, **cfg})


def build_model(backbone: str = config.DEFAULT_BACKBONE, image_size: int | None = None, alpha: float = config.ALPHA,
                weights: str | Path | None = None, **kwargs) -> FaceTracker:
    return FaceTracker(image_size=image_size, backbone=backbone, alpha=alpha, weights=weights, **kwargs)


def rebuilt(model: FaceTracker, image_size: int | None = None, input_size: tuple[int, int] | None = None
            ) -> FaceTracker:
    """A fresh copy of `model` (no optimizer or training state), at another square input side if given, fitted to
    an input of `input_size` = (width, height) if given. Every layer is convolutional, so the same weights run at any
    multiple of 32; only the grid of cells changes. A smaller side is faster and sees small faces smaller
    (docs/quality.md, "Input size"); a fitted input sees them as the square does (see `fitted`)."""
    cfg = model.get_config()
    if image_size is not None:
        cfg["image_size"] = int(image_size)
    cfg["input_size"] = input_size
    copy = FaceTracker.from_config(cfg)
    copy.set_weights(model.get_weights())
    return copy


def fitted(model: FaceTracker, frame_width: int, frame_height: int) -> FaceTracker:
    """`model` for frames of one size: its input holds the letterboxed frame at the scale of the square input with
    only the bars the stride needs (boxes.fitted_input), so a 640x480 frame costs a sixth less and a 16:9 one a
    third less, with the same faces at the same size. For inference and export; training stays square."""
    return rebuilt(model, input_size=boxes.fitted_input(frame_width, frame_height, model.image_size))


def _checked_fit(input_size, image_size: int) -> tuple[int, int] | None:
    if input_size is None:
        return None
    width, height = (int(n) for n in input_size)
    if width % 32 or height % 32 or not (32 <= min(width, height) and max(width, height) <= image_size):
        raise FacetrackerError(f"fitted input {width}x{height} is not made of multiples of 32 up to {image_size}",
                               None, "fit the model to a frame with facetracker.model.fitted")
    return width, height


def lightened(model: FaceTracker) -> FaceTracker:
    """A blazeface FaceTracker as blazeface-lite: every layer but the replaced stem keeps its trained weights; the
    new stem starts untrained, for recipe.distill_stem to teach."""
    if model.backbone_name != "blazeface":
        raise FacetrackerError(f"only a blazeface model can be made lite, this one is {model.backbone_name}", None,
                               "start from a model trained with --backbone blazeface (the bundled one is)")
    lite = FaceTracker.from_config({**model.get_config(), "backbone": "blazeface-lite"})
    trained = {layer.name: layer for layer in model.backbone.layers}
    for layer in lite.backbone.layers:
        if layer.weights and not layer.name.startswith(LITE_PREFIX):
            layer.set_weights(trained[layer.name].get_weights())
    for mine, theirs in zip(lite.neck_and_head(), model.neck_and_head()):
        mine.set_weights(theirs.get_weights())
    return lite


def load_model(path: str | Path, unsafe: bool = False, compile: bool = False) -> FaceTracker:
    """Load a saved FaceTracker. Native `.keras` loads with safe_mode=True; legacy `.h5` only with unsafe=True."""
    path = Path(path)
    if not path.exists():
        raise FacetrackerError("model file not found", path, "train one with `facetracker train` or check the path")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5") and not unsafe:
        raise FacetrackerError("refusing to load a legacy .h5 model (it can run arbitrary code)", path,
                               "re-save it as .keras, or pass --unsafe to load it")
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise FacetrackerError(f"not a Keras model file ({suffix or 'no suffix'})", path, "pass a .keras file")
    check_keras_archive(path)  # a cut-off file: Keras itself would say "File not found"
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=not unsafe)
    except Exception as exc:
        raise FacetrackerError(f"cannot load model ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})",
                               path, "check the file is a FaceTracker model saved by facetracker") from None
    if not isinstance(model, FaceTracker):
        raise FacetrackerError("the file is a Keras model but not a FaceTracker", path, "train one with facetracker")
    return model
