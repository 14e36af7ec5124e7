"""The FaceTracker model: an image backbone with a face-score head and a box head, trained with a dual loss.

Contract used by inference/export/evaluate: the model takes float32 RGB pixels in 0..255 of shape
(N, image_size, image_size, 3) and returns `(score (N, 1), box (N, 4))`, box = [x1, y1, x2, y2] in [0, 1].
The backbone's own preprocessing happens inside the graph with serializable layers (no Lambda), so a saved
`.keras` file loads with safe_mode=True and needs no flags.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
from keras import layers, ops

from facetracker import config, losses
from facetracker.errors import FacetrackerError

# backbone name -> (keras.applications constructor name, preprocessing, default input side, imagenet sizes)
BACKBONES = {
    "mobilenetv2": ("MobileNetV2", "tf", 128, (96, 128, 160, 192, 224)),
    "mobilenetv3small": ("MobileNetV3Small", "tf", 128, (224,)),
    "vgg16": ("VGG16", "caffe", 120, None),  # VGG16 without top accepts any size >= 32
}
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
    """Per-image, per-channel standardisation: each colour channel of each image to mean 0, std 1.

    For backbones trained from scratch (no pretrained weights expecting a fixed input range): it removes what
    differs most between rooms and cameras -- exposure, contrast and the colour cast of the light -- before the
    network sees the image, so a bright room or a yellow lamp does not look like a different kind of picture."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        std = ops.sqrt(ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True))
        return (x - mean) / ops.maximum(std, 1.0)  # floor of 1 grey level: a flat image stays finite


PREPROCESSINGS = ("tf", "caffe", "standardize")


def preprocessing_layer(kind: str) -> layers.Layer:
    if kind == "caffe":
        return CaffePreprocess(name="preprocess")
    if kind == "standardize":
        return Standardize(name="preprocess")
    # "tf": MobileNet family expects [-1, 1]
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")


def from_scratch(weights) -> bool:
    """True when `weights` (None, "none", "imagenet" or a file) leaves the backbone randomly initialised."""
    return weights is None or str(weights).lower() == "none"


def pick_preprocessing(choice: str, backbone: str, weights) -> str:
    """`auto`: the backbone's own preprocessing when pretrained weights are loaded (they expect it), per-image
    standardisation when training from scratch. Otherwise the named one."""
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


def make_backbone(backbone: str, image_size: int, alpha: float, weights: str | Path | None) -> keras.Model:
    """A keras.applications feature extractor (no top). `weights`: None, "imagenet" or a local weights file."""
    check_backbone(backbone)
    ctor_name, _, _, imagenet_sizes = BACKBONES[backbone]
    ctor = getattr(keras.applications, ctor_name)
    kwargs = dict(include_top=False, input_shape=(image_size, image_size, 3))
    if backbone != "vgg16":
        kwargs["alpha"] = alpha
    if backbone == "mobilenetv3small":
        kwargs["include_preprocessing"] = False  # done by our own Rescaling layer
    weights = _resolve_weights(weights, backbone, image_size, imagenet_sizes)
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
    if str(weights).lower() == "imagenet":
        if imagenet_sizes and image_size not in imagenet_sizes:
            raise FacetrackerError(f"no ImageNet weights for {backbone} at {image_size}px", None,
                                   f"use --image-size in {imagenet_sizes} or --weights none")
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise FacetrackerError("weights file not found", path, "use --weights imagenet|none or an existing file")
    return str(path)


@keras.saving.register_keras_serializable(package="facetracker")
class FaceTracker(keras.Model):
    """Backbone + face score head (sigmoid) + box head ([x1, y1, x2, y2] in [0, 1])."""

    def __init__(self, image_size: int | None = None, backbone: str = config.DEFAULT_BACKBONE,
                 alpha: float = config.ALPHA, head_units: int = config.HEAD_UNITS, dropout: float = 0.2,
                 bn_momentum: float = config.BN_MOMENTUM, weights: str | Path | None = None,
                 preprocessing: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.backbone_name = backbone
        self.image_size = int(image_size or default_image_size(backbone))
        self.preprocessing = preprocessing or BACKBONES[backbone][1]  # None: the backbone's own
        self.alpha = float(alpha)
        self.head_units = int(head_units)
        self.dropout = float(dropout)
        self.preprocess = preprocessing_layer(self.preprocessing)
        self.backbone = make_backbone(backbone, self.image_size, self.alpha, weights)
        self.bn_momentum = float(bn_momentum)
        set_bn_momentum(self.backbone, self.bn_momentum)
        # Score head: presence of a face does not depend on where it is, so pooled features suffice.
        self.score_pool = layers.GlobalAveragePooling2D(name="score_pool")
        self.score_hidden = layers.Dense(self.head_units, activation="relu", name="score_hidden")
        self.score_dropout = layers.Dropout(self.dropout, name="score_dropout")
        self.score_out = layers.Dense(1, activation="sigmoid", name="score")
        # Box head: global pooling throws away WHERE things are, so keep the small spatial grid
        # (e.g. 4x4 at 128 px), squeeze channels with a 1x1 conv and regress from the flattened map.
        self.box_squeeze = layers.Conv2D(32, 1, activation="relu", name="box_squeeze")
        self.box_flatten = layers.Flatten(name="box_flatten")
        self.box_hidden = layers.Dense(self.head_units, activation="relu", name="box_hidden")
        self.box_out = layers.Dense(4, activation="sigmoid", name="box")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "class_loss", "box_loss", "iou")}
        self.loss_options = dict(class_weight=1.0, box_weight=1.0, box_loss=config.BOX_LOSS)
        self.build((None, self.image_size, self.image_size, 3))

    def build(self, input_shape):
        # Build every sublayer by tracing the graph once on a symbolic input.
        if not self.built:
            self.compute_output_spec(keras.KerasTensor(input_shape, dtype="float32"))
            self.built = True

    def call(self, images, training=False):
        features = self.backbone(self.preprocess(images), training=training)
        pooled = self.score_pool(features)
        score = self.score_out(self.score_dropout(self.score_hidden(pooled), training=training))
        raw = self.box_out(self.box_hidden(self.box_flatten(self.box_squeeze(features))))
        # Order the corners so a box is always valid (x1 <= x2, y1 <= y2), which IoU-style losses need.
        box = ops.concatenate([ops.minimum(raw[:, :2], raw[:, 2:]), ops.maximum(raw[:, :2], raw[:, 2:])], axis=-1)
        return score, box

    # ---- training -------------------------------------------------------------------------------------------
    def compile(self, optimizer="adam", class_weight: float = 1.0, box_weight: float = 1.0,
                box_loss: str = config.BOX_LOSS, **kwargs):
        losses.check_box_loss(box_loss)
        self.loss_options = dict(class_weight=float(class_weight), box_weight=float(box_weight), box_loss=box_loss)
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

    def _dual_loss(self, y, score, box):
        true_class, true_box = y
        return losses.face_tracker_losses(true_class, true_box, score, box, **self.loss_options)

    def _update_metrics(self, y, box, result):
        for name in ("loss", "class_loss", "box_loss"):
            self._trackers[name].update_state(result[name])
        true_class, true_box = y
        face = ops.reshape(ops.cast(true_class, "float32"), (-1,))
        self._trackers["iou"].update_state(losses.box_iou(true_box, box), sample_weight=face)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            score, box = self(x, training=True)
            result = self._dual_loss(y, score, box)
            # Gradients are summed over replicas by tf.distribute, so each replica scales its loss down.
            scaled = result["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self._update_metrics(y, box, result)

    def test_step(self, data):
        x, y = data
        score, box = self(x, training=False)
        return self._update_metrics(y, box, self._dual_loss(y, score, box))

    # ---- saving ---------------------------------------------------------------------------------------------
    def get_config(self):
        # weights are NOT recorded: a loaded model gets its trained weights from the file, never a download.
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "backbone": self.backbone_name, "preprocessing": self.preprocessing, "alpha": self.alpha,
                "head_units": self.head_units, "dropout": self.dropout, "bn_momentum": self.bn_momentum}

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)


def build_model(backbone: str = config.DEFAULT_BACKBONE, image_size: int | None = None, alpha: float = config.ALPHA,
                weights: str | Path | None = None, **kwargs) -> FaceTracker:
    return FaceTracker(image_size=image_size, backbone=backbone, alpha=alpha, weights=weights, **kwargs)


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
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=not unsafe)
    except Exception as exc:
        raise FacetrackerError(f"cannot load model ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})",
                               path, "check the file is a FaceTracker model saved by facetracker") from None
    if not isinstance(model, FaceTracker):
        raise FacetrackerError("the file is a Keras model but not a FaceTracker", path, "train one with facetracker")
    return model
