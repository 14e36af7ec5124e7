"""`facetracker train`: fit a FaceTracker on aug_data with TensorBoard logs, checkpoints, early stopping and resume.

Files of a run with --out models/facetracker.keras:
  models/facetracker.keras          best model so far by val loss (no optimizer state: what inference loads)
  models/facetracker.ckpt/last.keras last epoch WITH optimizer state, for --resume
  models/facetracker.ckpt/state.json epoch counter, best val loss, history, run name
  models/facetracker.loss.png       loss curves, written at the end
  logs/<run-name>/{train,validation} TensorBoard scalars (+ prediction images in validation)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import keras

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import atomic_path, ensure_writable_dir, write_json_atomic


class TrainingInterrupted(FacetrackerError):
    """Ctrl-C during training: the checkpoint is saved, the CLI prints one line and exits 130."""

    exit_code = 130


@dataclass
class TrainOptions:
    data: Path = config.AUG_DIR
    out: Path = config.DEFAULT_MODEL
    epochs: int = config.EPOCHS
    batch_size: int = config.BATCH_SIZE
    backbone: str | None = None  # None: the default, or the checkpoint's on --resume
    image_size: int | None = None  # None: the backbone's default, or the checkpoint's
    alpha: float | None = None
    lr: float | None = None  # None: config.LEARNING_RATE for scratch or pretrained weights
    weights: str = config.WEIGHTS
    logdir: Path = config.LOGS_DIR
    run_name: str | None = None
    resume: bool = False
    force: bool = False
    unsafe: bool = False
    patience: int = config.PATIENCE
    strategy: str = "auto"
    class_weight: float = config.CLASS_WEIGHT
    box_weight: float = config.BOX_WEIGHT
    box_loss: str = config.BOX_LOSS
    preprocessing: str = config.PREPROCESSING
    cache: bool | None = None  # None: cache decoded images in RAM when they fit
    image_every: int = config.IMAGE_LOG_EVERY
    verbose: int | str = "auto"

    def __post_init__(self):
        self.data, self.out, self.logdir = Path(self.data), Path(self.out), Path(self.logdir)


@dataclass
class RunPaths:
    out: Path

    @property
    def ckpt_dir(self) -> Path:
        return self.out.parent / f"{self.out.stem}.ckpt"

    @property
    def last(self) -> Path:
        return self.ckpt_dir / "last.keras"

    @property
    def state(self) -> Path:
        return self.ckpt_dir / "state.json"

    @property
    def curve(self) -> Path:
        return self.out.parent / f"{self.out.stem}.loss.png"


@dataclass
class RunState:
    """What --resume needs besides the model: saved next to the last checkpoint after every epoch."""

    run_name: str
    epoch: int = 0  # completed epochs
    epochs: int = config.EPOCHS
    best_val_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0  # epochs since the best val loss (early stopping)
    stopped_early: bool = False
    seconds: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        state = asdict(self)
        state["best_val_loss"] = None if math.isinf(self.best_val_loss) else self.best_val_loss
        write_json_atomic(path, state)

    @classmethod
    def load(cls, path: Path) -> "RunState":
        try:
            state = json.loads(Path(path).read_text())
            state["best_val_loss"] = math.inf if state.get("best_val_loss") is None else state["best_val_loss"]
            return cls(**state)
        except (OSError, ValueError, TypeError) as exc:
            raise FacetrackerError(f"unreadable training state ({exc.__class__.__name__})", path,
                                   "start again without --resume (add --force)") from None


@dataclass
class TrainResult:
    model_path: Path
    curve_path: Path | None
    logdir: Path
    state: RunState
    train_count: int
    val_count: int
    replicas: int = 1


def train(opts: TrainOptions) -> TrainResult:
    """Train (or resume) and return where everything went. Raises FacetrackerError on bad input."""
    paths = RunPaths(opts.out)
    _check_outputs(opts, paths)
    strategy = make_strategy(opts.strategy)  # before any other TF work: multi-worker needs it first
    from facetracker.data import load_splits

    state = RunState.load(paths.state) if opts.resume else RunState(run_name=opts.run_name or _default_run_name())
    with strategy.scope():
        model = _resume_model(opts, paths) if opts.resume else None
    image_size = model.image_size if model is not None else _image_size(opts)
    train_ds, val_ds, train_labels, val_labels = load_splits(opts.data, image_size, opts.batch_size, opts.cache)
    steps = math.ceil(len(train_labels) / opts.batch_size)
    if model is None:
        with strategy.scope():
            model = _new_model(opts, image_size, steps)
    state.epochs = opts.epochs
    if state.epoch >= opts.epochs:
        raise FacetrackerError(f"training already finished ({state.epoch}/{opts.epochs} epochs)", paths.ckpt_dir,
                               "raise --epochs to train longer, or start again with --force")
    logdir = opts.logdir / state.run_name
    ensure_writable_dir(paths.ckpt_dir)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=str(logdir), update_freq="epoch", write_graph=False),
        PredictionImages(val_labels, image_size, logdir / "validation", every=opts.image_every),
        Checkpointer(paths, state, opts.patience, is_chief(strategy)),
    ]
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=opts.epochs, initial_epoch=state.epoch,
                  callbacks=callbacks, verbose=opts.verbose, shuffle=False)  # tf.data shuffles
    except KeyboardInterrupt:
        if is_chief(strategy):
            save_checkpoint(model, paths, state)
        raise TrainingInterrupted(f"training interrupted after {state.epoch}/{opts.epochs} epochs, checkpoint saved",
                                  paths.ckpt_dir, "rerun the same command with --resume to continue") from None
    if is_chief(strategy):
        state.save(paths.state)
    curve = plot_history(state.history, paths.curve) if state.history else None
    return TrainResult(paths.out, curve, logdir, state, len(train_labels), len(val_labels),
                       strategy.num_replicas_in_sync)


# ---- setup --------------------------------------------------------------------------------------------------
def _check_outputs(opts: TrainOptions, paths: RunPaths) -> None:
    if opts.epochs < 1 or opts.batch_size < 1:
        raise FacetrackerError("--epochs and --batch-size must be at least 1")
    if opts.lr is not None and not 0 < opts.lr < 1:
        raise FacetrackerError(f"--lr {opts.lr:g} is not a usable learning rate", None, "use a value like 2e-3 or 1e-4")
    if opts.strategy not in config.STRATEGIES:
        raise FacetrackerError(f"unknown strategy '{opts.strategy}'", None, f"choose one of: {', '.join(config.STRATEGIES)}")
    from facetracker.losses import check_box_loss
    from facetracker.model import check_backbone, pick_preprocessing

    check_box_loss(opts.box_loss)
    if opts.backbone is not None:
        check_backbone(opts.backbone)
    pick_preprocessing(opts.preprocessing, opts.backbone or config.DEFAULT_BACKBONE, opts.weights)
    if opts.out.suffix != ".keras":
        raise FacetrackerError("the model is saved in the native Keras format", opts.out, "use an --out ending in .keras")
    if opts.resume:
        if not paths.last.is_file() or not paths.state.is_file():
            raise FacetrackerError("nothing to resume: no checkpoint", paths.ckpt_dir,
                                   "run without --resume to start training")
        return
    if not opts.force:
        if opts.out.exists():
            raise FacetrackerError("model already exists", opts.out,
                                   "pass --force to overwrite it, --resume to continue, or choose another --out")
        if paths.ckpt_dir.exists():
            raise FacetrackerError("an earlier run left a checkpoint", paths.ckpt_dir,
                                   "pass --resume to continue it or --force to start again")
    ensure_writable_dir(opts.out.parent)


def _default_run_name() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _image_size(opts: TrainOptions) -> int:
    from facetracker.model import default_image_size

    size = opts.image_size or default_image_size(opts.backbone or config.DEFAULT_BACKBONE)
    if size < 32:
        raise FacetrackerError(f"--image-size {size} is too small", None, "use 32 or more (e.g. 96, 128)")
    return size


def make_strategy(name: str):
    """auto: MirroredStrategy over several GPUs, else TF's default (one device); or the one asked for."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # reads the cluster from TF_CONFIG; alone it is a one-worker cluster
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    return task_type in (None, "chief") or (task_type == "worker" and resolver.task_id == 0)


def learning_rate_schedule(lr: float, epochs: int, steps_per_epoch: int):
    """Linear warm-up from lr/10 over the first epoch(s), then cosine decay to lr/100 (per step, like the notebook's
    decayed Adam, but without its too-early drop)."""
    total = max(epochs * steps_per_epoch, 1)
    warmup = min(config.WARMUP_EPOCHS * steps_per_epoch, total // 5)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10, decay_steps=max(total - warmup, 1), alpha=0.01,
        warmup_target=lr, warmup_steps=warmup)


def _new_model(opts: TrainOptions, image_size: int, steps_per_epoch: int):
    from facetracker.model import build_model, pick_preprocessing

    backbone = opts.backbone or config.DEFAULT_BACKBONE
    model = build_model(backbone, image_size=image_size, alpha=opts.alpha if opts.alpha is not None else config.ALPHA,
                        weights=opts.weights, preprocessing=pick_preprocessing(opts.preprocessing, backbone, opts.weights))
    model.compile(keras.optimizers.Adam(learning_rate_schedule(peak_learning_rate(opts), opts.epochs, steps_per_epoch)),
                  class_weight=opts.class_weight, box_weight=opts.box_weight, box_loss=opts.box_loss)
    return model


def peak_learning_rate(opts: TrainOptions) -> float:
    from facetracker.model import from_scratch

    if opts.lr is not None:
        return opts.lr
    return config.LEARNING_RATE["scratch" if from_scratch(opts.weights) else "pretrained"]


def _resume_model(opts: TrainOptions, paths: RunPaths):
    """The last checkpoint with its optimizer state; options that would change the model must match it."""
    from facetracker.model import load_model

    model = load_model(paths.last, unsafe=opts.unsafe, compile=True)
    for flag, asked, saved in (("--backbone", opts.backbone, model.backbone_name),
                               ("--image-size", opts.image_size, model.image_size),
                               ("--alpha", opts.alpha, model.alpha)):
        if asked is not None and asked != saved:
            raise FacetrackerError(f"{flag} {asked} does not match the checkpoint ({saved})", paths.last,
                                   f"drop {flag} to resume, or start again with --force")
    return model


# ---- saving -------------------------------------------------------------------------------------------------
def save_inference_model(model, path: Path) -> None:
    """Save weights + architecture without optimizer state (a few MB), atomically."""
    from facetracker.model import FaceTracker

    clean = FaceTracker.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        clean.save(tmp)


def save_checkpoint(model, paths: RunPaths, state: RunState) -> None:
    """The model with optimizer state, then the state file (a crash in between only repeats one epoch)."""
    with atomic_path(paths.last) as tmp:
        model.save(tmp)
    state.save(paths.state)


class Checkpointer(keras.callbacks.Callback):
    """After each epoch: record history, save the best model (by val loss) to --out and the last checkpoint,
    and stop after `patience` epochs without improvement. Keeps its counters in RunState so --resume goes on."""

    def __init__(self, paths: RunPaths, state: RunState, patience: int, chief: bool = True):
        super().__init__()
        self.paths, self.state, self.patience, self.chief = paths, state, patience, chief
        self._epoch_started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.state.history.setdefault(key, []).append(value)
        self.state.epoch = epoch + 1
        self.state.seconds += time.monotonic() - self._epoch_started
        val_loss = logs.get("val_loss", logs.get("loss", math.inf))
        if val_loss < self.state.best_val_loss:
            self.state.best_val_loss, self.state.best_epoch, self.state.wait = val_loss, epoch + 1, 0
            if self.chief:
                save_inference_model(self.model, self.paths.out)
        else:
            self.state.wait += 1
        if self.patience and self.state.wait >= self.patience:
            self.state.stopped_early = True
            self.model.stop_training = True
        if self.chief:
            save_checkpoint(self.model, self.paths, self.state)


class PredictionImages(keras.callbacks.Callback):
    """Every `every` epochs, a TensorBoard image panel of validation images: true box green, predicted box red
    (drawn when the face score is at least the threshold)."""

    def __init__(self, labels, image_size: int, logdir: Path, every: int = config.IMAGE_LOG_EVERY,
                 count: int = config.IMAGE_LOG_COUNT):
        super().__init__()
        import numpy as np

        self.every, self.logdir, self.image_size = every, Path(logdir), image_size
        picks = np.unique(np.linspace(0, len(labels) - 1, min(count, len(labels))).astype(int))
        self.paths = [labels.paths[i] for i in picks]
        self.boxes, self.classes = labels.boxes[picks], labels.classes[picks]
        self._images = None
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if not self.every or (epoch + 1) % self.every:
            return
        import tensorflow as tf

        from facetracker.data import decode_image

        if self._images is None:
            self._images = tf.stack([decode_image(p, self.image_size) for p in self.paths])
            self._writer = tf.summary.create_file_writer(str(self.logdir))
        scores, boxes = self.model(tf.cast(self._images, tf.float32), training=False)
        panel = draw_boxes(self._images, self.boxes, self.classes, boxes.numpy(), scores.numpy()[:, 0])
        with self._writer.as_default():
            tf.summary.image("predictions (green: label, red: model)", panel, step=epoch, max_outputs=len(panel))
        self._writer.flush()


def draw_boxes(images_uint8, true_boxes, true_classes, pred_boxes, scores, threshold: float = config.THRESHOLD):
    """Float [0,1] images with the label box (green) and predicted box (red) drawn by tf.image."""
    import tensorflow as tf

    images = tf.cast(images_uint8, tf.float32) / 255.0
    drawn = []
    for i in range(images.shape[0]):
        boxes, colors = [], []
        if true_classes[i] > 0.5:
            boxes.append(true_boxes[i]), colors.append((0.0, 1.0, 0.0, 1.0))
        if scores[i] >= threshold:
            boxes.append(pred_boxes[i]), colors.append((1.0, 0.0, 0.0, 1.0))
        image = images[i:i + 1]
        if boxes:
            yxyx = tf.constant([[[b[1], b[0], b[3], b[2]] for b in boxes]], tf.float32)
            image = tf.image.draw_bounding_boxes(image, yxyx, tf.constant(colors, tf.float32))
        drawn.append(image)
    return tf.concat(drawn, axis=0)


def plot_history(history: dict[str, list[float]], path: Path) -> Path:
    """Loss curves (total, class, box) and face IoU, train vs validation, as a PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", "total loss"), ("class_loss", "class loss (BCE)"), ("box_loss", "box loss"),
              ("iou", "IoU on faces")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, title) in zip(axes, panels):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="." if len(values) < 30 else None, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def summary_table(result: TrainResult):
    """A one-screen rich table of the run."""
    from rich.table import Table

    state = result.state
    last = {key: values[-1] for key, values in state.history.items() if values}
    table = Table(title="facetracker train", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("images", f"{result.train_count} train, {result.val_count} validation"),
        ("epochs", f"{state.epoch}/{state.epochs}" + (" (stopped early)" if state.stopped_early else "")),
        ("time", f"{state.seconds / 60:.1f} min on {result.replicas} device(s)"),
        ("best epoch", f"{state.best_epoch} (val loss {state.best_val_loss:.4f})" if state.best_epoch else "-"),
        ("last train", _metrics_line(last, "")),
        ("last validation", _metrics_line(last, "val_")),
        ("model", str(result.model_path)),
        ("loss curves", str(result.curve_path or "-")),
        ("TensorBoard", f"tensorboard --logdir {result.logdir.parent}"),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _metrics_line(last: dict, prefix: str) -> str:
    parts = [f"{name} {last[prefix + name]:.4f}" for name in ("loss", "class_loss", "box_loss", "iou")
             if prefix + name in last]
    return ", ".join(parts) or "-"
