"""`facetracker train`: fit a FaceTracker on aug_data with TensorBoard logs, checkpoints, early stopping and resume.

By default it fine-tunes the bundled face model (--weights bundled): a user's ~100 images only have to teach it
their camera, their face and how they draw boxes, in minutes, without forgetting what a face is. `--weights none`
trains from scratch, `imagenet` or a keras.applications weights file start the backbone only, and any FaceTracker
`.keras` file (your last model) is fine-tuned like the bundled one.

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
import numpy as np

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import atomic_path, ensure_writable_dir, write_json_atomic
from facetracker.safe_moves import watched_interrupt


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
    lr: float | None = None  # None: config.LEARNING_RATE for scratch, pretrained backbone or fine-tuning
    weights: str = config.WEIGHTS  # bundled | none | imagenet | PATH (.keras FaceTracker or backbone weights)
    steps_per_epoch: int = config.STEPS_PER_EPOCH  # 0: a full pass over the train split
    freeze_batchnorm: bool = config.FREEZE_BATCHNORM  # when fine-tuning a FaceTracker
    freeze_backbone: bool = config.FREEZE_BACKBONE  # when fine-tuning a FaceTracker: train the neck and head only
    # fine-tuning: --out = start + blend x (fine-tuned - start); None: chosen on the validation split (choose_blend)
    blend: float | None = None
    zoom_share: float = config.TRAIN_ZOOM_SHARE  # training images shown shrunk on a grey canvas (0: none)
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
    verbose: int | str = "auto"  # 0: silent; otherwise a progress bar with the ETA and one line per epoch

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
    start: str = ""  # where the weights came from: "bundled model (path)", "scratch", "imagenet", a file
    steps_per_epoch: int = 0
    frozen_batchnorm: bool = False
    frozen_backbone: bool = False
    start_path: str = ""  # the FaceTracker file fine-tuned (its weights are blended into every saved model)
    blend: float = 1.0  # the blend of the model now at --out
    choose_blend: bool = False  # at the end, re-blend --out with the blend the validation split prefers
    blend_choices: list[dict] = field(default_factory=list)  # what each blend scored on the validation split

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
    model: object = field(default=None, repr=False)  # the trained keras model (last epoch), for callers in Python


def train(opts: TrainOptions) -> TrainResult:
    """Train (or resume) and return where everything went. Raises FacetrackerError on bad input."""
    paths = RunPaths(opts.out)
    _check_outputs(opts, paths)
    from facetracker.data import make_dataset, read_split

    # Labels, then the starting model's recorded config: plain Python, so every bad input stops in a second.
    train_labels = read_split(opts.data, "train")
    val_labels = spread_subset(read_split(opts.data, "val"), config.VAL_IMAGES)
    start = None if opts.resume else resolve_start(opts)
    strategy = make_strategy(opts.strategy)  # before any other TF work: multi-worker needs it first
    chief = is_chief(strategy)
    state = RunState.load(paths.state) if opts.resume else RunState(run_name=opts.run_name or _default_run_name())
    with strategy.scope():
        model = _resume_model(opts, paths, state) if opts.resume else None
    image_size = model.image_size if model is not None else start.image_size
    steps = state.steps_per_epoch or epoch_steps(len(train_labels), opts.batch_size, opts.steps_per_epoch)
    # Repeated: an epoch is `steps` batches of an endless shuffled stream, so it may be less than a full pass.
    train_ds = zoomed_out_views(make_dataset(train_labels, image_size, opts.batch_size, training=True,
                                             cache=opts.cache), image_size, opts.batch_size, opts.zoom_share).repeat()
    val_ds = make_dataset(val_labels, image_size, opts.batch_size, training=False, cache=opts.cache)
    if model is None:
        with strategy.scope():
            model = _new_model(opts, start, steps)
        _record_start(state, opts, start, steps)
        freeze(model, state)
    if isinstance(strategy, tf_multiworker()):
        _skip_symbolic_build(model)
        _fix_keras_multiworker_logs()
    state.epochs = opts.epochs
    if state.epoch >= opts.epochs:
        raise FacetrackerError(f"training already finished ({state.epoch}/{opts.epochs} epochs)", paths.ckpt_dir,
                               "raise --epochs to train longer, or start again with --force")
    logdir = opts.logdir / state.run_name
    ensure_writable_dir(paths.ckpt_dir)
    # Only the chief writes (TensorBoard, checkpoints, progress): other workers would clobber its files.
    blend_from = start_weights(state, paths, opts.unsafe)
    callbacks = [Checkpointer(paths, state, opts.patience, chief, blend_from)]
    if chief:
        callbacks[:0] = [keras.callbacks.TensorBoard(log_dir=str(logdir), update_freq="epoch", write_graph=False),
                         PredictionImages(val_labels, image_size, logdir / "validation", every=opts.image_every)]
    progress = EpochProgress(state, steps, len(val_ds)) if chief and opts.verbose != 0 else None
    if progress is not None:
        progress.console.print(describe_run(state, model, len(train_labels), len(val_labels), opts.batch_size,
                                            strategy.num_replicas_in_sync), soft_wrap=True, markup=False)
        callbacks.append(progress)
    try:
        with progress or _nothing(), watched_interrupt() as latch:
            model.fit(train_ds, validation_data=val_ds, epochs=opts.epochs, initial_epoch=state.epoch,
                      steps_per_epoch=steps, callbacks=[*callbacks, CtrlCWatch(latch)], verbose=0,
                      shuffle=False)  # tf.data shuffles
    except KeyboardInterrupt:
        if chief:
            save_checkpoint(model, paths, state)
        raise TrainingInterrupted(f"training interrupted after {state.epoch}/{opts.epochs} epochs, checkpoint saved",
                                  paths.ckpt_dir, "rerun the same command with --resume to continue") from None
    if chief and state.choose_blend and blend_from is not None and state.best_epoch:
        _choose_blend_at_end(paths, state, blend_from, val_labels)
    if chief:
        state.save(paths.state)
    curve = plot_history(state.history, paths.curve) if state.history and chief else None
    return TrainResult(paths.out, curve, logdir, state, len(train_labels), len(val_labels),
                       strategy.num_replicas_in_sync, model)


def _record_start(state: RunState, opts: TrainOptions, start, steps: int) -> None:
    """What a new run starts from, in its state file: --resume and the blend at the end read it back."""
    state.start, state.steps_per_epoch = start.describe(), steps
    state.frozen_batchnorm = bool(start.facetracker and opts.freeze_batchnorm)
    state.frozen_backbone = bool(start.facetracker and opts.freeze_backbone)
    if start.facetracker:
        state.start_path, state.choose_blend = str(start.path), opts.blend is None
        state.blend = config.FINETUNE_BLEND if opts.blend is None else opts.blend


def _choose_blend_at_end(paths: RunPaths, state: RunState, blend_from, val_labels) -> None:
    """The fine-tuned run's share of the blend, chosen on the validation images (choose_blend)."""
    try:
        state.blend, state.blend_choices = choose_blend(paths.out, blend_from, state.blend, val_labels)
    except KeyboardInterrupt:  # --out is saved atomically: it still holds the blend training saved
        state.save(paths.state)
        raise TrainingInterrupted(f"interrupted while choosing the blend; the model keeps the best epoch blended "
                                  f"{state.blend:g} with the start", paths.out,
                                  "use it as it is, or train again with --force and a fixed --blend") from None


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
    if opts.blend is not None and not 0 < opts.blend <= 1:
        raise FacetrackerError(f"--blend {opts.blend:g} is not in (0, 1]", None,
                               "use 1 for the fine-tuned weights alone, less to keep more of the starting model")
    if opts.steps_per_epoch < 0:
        raise FacetrackerError(f"--steps-per-epoch {opts.steps_per_epoch} is negative", None,
                               "use 0 for a full pass over the train split, or a number of steps")
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


def tf_multiworker():
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy


def _skip_symbolic_build(model) -> None:
    """Keras 3 starts fit() under a strategy by MEAN-reducing a first batch to build the model symbolically, which
    MultiWorkerMirroredStrategy cannot do for a tuple of per-replica tensors ("Attempt to convert a value
    (PerReplica...)"). A FaceTracker is fully built before fit (layers and metrics at construction, the optimizer in
    _new_model or by compile_from_config), so that build has nothing to do: skip it."""
    object.__setattr__(model, "_maybe_symbolic_build", lambda iterator=None, data_batch=None: None)


def _fix_keras_multiworker_logs() -> None:
    """Keras 3 averages each step's logs over MultiWorkerMirroredStrategy workers with reduce(MEAN, axis=0), which
    fails on the scalar loss and metrics every model logs ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388, unfixed in Keras 3.15). Scalars are averaged with axis=None instead: the
    same all-reduce, so every worker gets the same logs (and early stopping stops them all at the same epoch)."""
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "facetracker_fix", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            def mean(value):
                local = strategy.experimental_local_results(value)[0]
                return strategy.reduce("MEAN", value, axis=0 if local.shape.rank else None)

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.facetracker_fix = True
    tf_trainer.reduce_per_replica = reduce_per_replica


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


@dataclass
class StartPoint:
    """Where a new run's weights come from, resolved from --weights before TensorFlow starts."""

    weights: str  # as given: bundled | none | imagenet | a path
    backbone: str
    image_size: int
    preprocessing: str
    path: Path | None = None  # the FaceTracker file to fine-tune (bundled or .keras), else None

    @property
    def facetracker(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        """What the run does, as RunState.start records it: "fine-tuning the bundled model (path)", ..."""
        from facetracker.model import BUNDLED, from_scratch

        if self.path is not None:
            what = "the bundled model" if str(self.weights).lower() == BUNDLED else "FaceTracker"
            return f"fine-tuning {what} {self.path}"
        if from_scratch(self.weights):
            return "training from scratch"
        return f"training from {self.backbone} weights {self.weights}"


def resolve_start(opts: TrainOptions) -> StartPoint:
    """--weights as a StartPoint. A FaceTracker file (the bundled model by default) fixes the backbone, input size,
    preprocessing and head: an option asking for others stops with one line."""
    from facetracker.model import (check_backbone_weights, check_start_options, default_image_size,
                                   pick_preprocessing, start_model_config, start_model_path)

    path = start_model_path(opts.weights)
    if path is not None:
        cfg = start_model_config(path)
        check_start_options(cfg, path, opts.backbone, opts.image_size, opts.alpha, opts.preprocessing)
        return StartPoint(str(opts.weights), cfg["backbone"], int(cfg["image_size"]), cfg["preprocessing"], path)
    backbone = opts.backbone or config.DEFAULT_BACKBONE
    check_backbone_weights(backbone, opts.weights)
    size = opts.image_size or default_image_size(backbone)
    if size < 32:
        raise FacetrackerError(f"--image-size {size} is too small", None, "use 32 or more (e.g. 128, 192)")
    return StartPoint(str(opts.weights), backbone, size, pick_preprocessing(opts.preprocessing, backbone, opts.weights))


def epoch_steps(train_images: int, batch_size: int, steps_per_epoch: int = config.STEPS_PER_EPOCH) -> int:
    """Steps of one epoch: `steps_per_epoch` batches, but never more than one full pass (0: always a full pass)."""
    full_pass = max(1, math.ceil(train_images / batch_size))
    return min(steps_per_epoch, full_pass) if steps_per_epoch else full_pass


def spread_subset(labels, count: int):
    """At most `count` entries of a SplitLabels, evenly spread over it (augmented variants of one photo sit
    together, so the first `count` would be a few photos only); all of them when it is small enough."""
    import numpy as np

    from facetracker.data import SplitLabels

    if not count or len(labels) <= count:
        return labels
    picks = np.unique(np.linspace(0, len(labels) - 1, count).round().astype(int))
    return SplitLabels(labels.name, [labels.paths[i] for i in picks], labels.classes[picks], labels.boxes[picks])


def zoomed_out_views(batches, side: int, batch_size: int, share: float = config.TRAIN_ZOOM_SHARE,
                     zoom=config.TRAIN_ZOOM):
    """The training batches with `share` of their images replaced by a random zoomed-out view of themselves
    (facetracker.data.random_view: shrunk by a log-uniform factor in `zoom`, placed anywhere on a grey canvas,
    flipped, recoloured; boxes follow). One person's frames show faces of one size: without smaller ones, fine-tuning
    forgets them (config.TRAIN_ZOOM_SHARE)."""
    if not share:
        return batches
    import tensorflow as tf

    from facetracker.data import pad_box_tensor, random_view

    def view(image, boxes):
        def zoomed():
            shown, visible = random_view(image, tf.boolean_mask(boxes, boxes[:, 2] > 0), side, zoom)
            return shown, pad_box_tensor(visible)

        return tf.cond(tf.random.uniform(()) < share, zoomed, lambda: (image, boxes))

    return (batches.unbatch().map(view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _new_model(opts: TrainOptions, start: StartPoint, steps_per_epoch: int):
    from facetracker.model import build_model, load_start_model

    if start.facetracker:
        model = load_start_model(start.path)
    else:
        model = build_model(start.backbone, image_size=start.image_size,
                            alpha=opts.alpha if opts.alpha is not None else config.ALPHA,
                            weights=opts.weights, preprocessing=start.preprocessing)
    model.compile(keras.optimizers.Adam(learning_rate_schedule(peak_learning_rate(opts), opts.epochs, steps_per_epoch)),
                  class_weight=opts.class_weight, box_weight=opts.box_weight, box_loss=opts.box_loss)
    # Built now, over every variable that a reloaded checkpoint makes trainable, so --resume finds the same slots
    # even when BatchNorm is then frozen (its gamma/beta slots simply stay unused).
    model.optimizer.build(model.trainable_variables)
    return model


def peak_learning_rate(opts: TrainOptions) -> float:
    from facetracker.model import from_scratch, starts_from_facetracker

    if opts.lr is not None:
        return opts.lr
    if from_scratch(opts.weights):
        return config.LEARNING_RATE["scratch"]
    return config.LEARNING_RATE["finetune" if starts_from_facetracker(opts.weights) else "pretrained"]


def start_weights(state: RunState, paths: RunPaths, unsafe: bool = False):
    """The starting model's weights when the saved models blend them in (fine-tuning with blend < 1), else None.
    Read from the file, so a resumed run blends with the same start."""
    if not state.start_path or state.blend >= 1:
        return None
    from facetracker.model import load_model

    path = Path(state.start_path)
    if not path.is_file():
        raise FacetrackerError("the model this run started from is gone", path,
                               "put it back to resume, or start again with --force")
    return load_model(path, unsafe=unsafe).get_weights()


def freeze(model, state: RunState) -> None:
    """What the run keeps frozen (recorded in its state, so --resume freezes the same)."""
    if state.frozen_batchnorm:
        freeze_batchnorm(model)
    if state.frozen_backbone:
        model.backbone.trainable = False


def freeze_batchnorm(model) -> None:
    """Every BatchNormalization layer in inference mode with its statistics, scale and offset kept (Keras runs a
    non-trainable BatchNorm in inference mode). Fine-tuning on one person's room would otherwise replace the
    statistics the model learned on everyone's, which is most of what it forgets."""
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _all_layers(model):
    return model._flatten_layers(include_self=False, recursive=True)


def _resume_model(opts: TrainOptions, paths: RunPaths, state: RunState):
    """The last checkpoint with its optimizer state; options that would change the model must match it."""
    from facetracker.model import load_model

    model = load_model(paths.last, unsafe=opts.unsafe, compile=True)
    for flag, asked, saved in (("--backbone", opts.backbone, model.backbone_name),
                               ("--image-size", opts.image_size, model.image_size),
                               ("--alpha", opts.alpha, model.alpha)):
        if asked is not None and asked != saved:
            raise FacetrackerError(f"{flag} {asked} does not match the checkpoint ({saved})", paths.last,
                                   f"drop {flag} to resume, or start again with --force")
    freeze(model, state)
    return model


# ---- saving -------------------------------------------------------------------------------------------------
def blend_weights(start: list, tuned: list, share: float) -> list:
    """start + share x (tuned - start), array by array: a weight-space blend (WiSE-FT) of a fine-tuned model with
    the model its fine-tuning started from."""
    return [s + share * (t - s) for s, t in zip(start, tuned)]


def unblend_weights(start: list, blended: list, share: float) -> list:
    """The fine-tuned weights that blend_weights(start, tuned, share) was made from."""
    return [s + (b - s) / share for s, b in zip(start, blended)]


def save_inference_model(model, path: Path, start_weights=None, blend: float = 1.0) -> None:
    """Save weights + architecture without optimizer state (a few MB), atomically. With `start_weights`, the
    weights saved are blend_weights(start_weights, model's, blend)."""
    from facetracker.model import rebuilt

    clean = rebuilt(model)
    if start_weights is not None and blend != 1:
        clean.set_weights(blend_weights(start_weights, model.get_weights(), blend))
    with atomic_path(path) as tmp:
        clean.save(tmp)


def choose_blend(out: Path, start: list, blend: float, val_labels) -> tuple[float, list[dict]]:
    """Re-save `out` (the best epoch, saved `blend` of the way from the `start` weights) with the one of
    config.BLEND_CHOICES that pick_blend takes by AP@0.5 and mean IoU on the validation images; return that blend
    and every choice's scores.

    Going less of the way forgets less of other people, and how far a person's frames need the model to go
    differs: a labeller who draws boxes like the bundled model's is served by a small step, one who draws tight
    boxes needs most of the way (docs/quality.md, "How the defaults were chosen")."""
    from facetracker.evaluate import metrics
    from facetracker.files import read_image
    from facetracker.inference import Detector
    from facetracker.model import load_model

    model = load_model(out)
    tuned = unblend_weights(start, model.get_weights(), blend)
    detector = Detector.from_model(model)  # traced once: set_weights below changes the values it reads
    frames = [read_image(path) for path in val_labels.paths]
    truths = [face_pixels(boxes, frame.shape) for boxes, frame in zip(val_labels.boxes, frames)]
    choices = []
    for choice in config.BLEND_CHOICES:
        model.set_weights(blend_weights(start, tuned, choice))
        found = [detector.detect(frame) for frame in frames]
        scored = metrics(truths, [[d.score for d in faces] for faces in found], [[d.box for d in faces] for faces in found])
        choices.append({"blend": choice, "ap50": scored["ap50"] or 0.0, "mean_iou": scored["mean_iou"] or 0.0})
    chosen = pick_blend(choices)
    model.set_weights(tuned)
    save_inference_model(model, out, start, chosen)
    return chosen, choices


def pick_blend(choices: list[dict]) -> float:
    """The smallest blend whose validation AP@0.5 and mean IoU both reach blend_needs. The best AP and the best IoU
    may come from different blends, and then none may reach both: the blend with the highest AP + IoU is taken."""
    need_ap, need_iou = blend_needs(choices)
    reaching = [c["blend"] for c in choices if c["ap50"] >= need_ap and c["mean_iou"] >= need_iou]
    if reaching:
        return min(reaching)
    return max(choices, key=lambda c: (c["ap50"] + c["mean_iou"], -c["blend"]))["blend"]


def blend_needs(choices: list[dict]) -> tuple[float, float]:
    """The validation AP@0.5 and mean IoU a blend must reach: within BLEND_TOLERANCE of the best blend's, or
    BLEND_ENOUGH if that is lower (a person whose boxes the model already matches well gains nothing from going
    further, and a labeller of tight boxes would otherwise always take the whole way and forget the most)."""
    best_ap, best_iou = max(c["ap50"] for c in choices), max(c["mean_iou"] for c in choices)
    enough_ap, enough_iou = config.BLEND_ENOUGH
    return min(best_ap - config.BLEND_TOLERANCE, enough_ap), min(best_iou - config.BLEND_TOLERANCE, enough_iou)


def blend_advice(choices: list[dict], chosen: float) -> str | None:
    """A hint when even the largest blend leaves the validation frames below BLEND_ENOUGH: the user's boxes differ
    from the bundled model's more than the blend follows (tight boxes, docs/quality.md). None otherwise."""
    top = max(choices, key=lambda c: c["blend"])
    enough_ap, enough_iou = config.BLEND_ENOUGH
    if chosen < top["blend"] or (top["ap50"] >= enough_ap and top["mean_iou"] >= enough_iou):
        return None
    return (f"validation AP {top['ap50']:.3f} / IoU {top['mean_iou']:.3f} at the largest blend ({top['blend']:g}), "
            f"below {enough_ap:g} / {enough_iou:g}: your boxes differ from the bundled model's; `--blend 1` follows "
            "them fully but forgets more of other people")


def face_pixels(boxes: np.ndarray, shape) -> np.ndarray:
    """A SplitLabels row of padded boxes (fractions) -> its face boxes in the pixels of an image of `shape`."""
    height, width = shape[:2]
    return boxes[boxes[:, 2] > 0] * np.array([width, height, width, height], np.float32)


def save_checkpoint(model, paths: RunPaths, state: RunState) -> None:
    """The model with optimizer state, then the state file (a crash in between only repeats one epoch)."""
    with atomic_path(paths.last) as tmp:
        model.save(tmp)
    state.save(paths.state)


class Checkpointer(keras.callbacks.Callback):
    """After each epoch: record history, save the best model (by val loss) to --out and the last checkpoint,
    and stop after `patience` epochs without improvement. Keeps its counters in RunState so --resume goes on."""

    def __init__(self, paths: RunPaths, state: RunState, patience: int, chief: bool = True, start_weights=None):
        super().__init__()
        self.paths, self.state, self.patience, self.chief = paths, state, patience, chief
        self.start_weights = start_weights  # fine-tuning: blended into the saved best model (state.blend)
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
                save_inference_model(self.model, self.paths.out, self.start_weights, self.state.blend)
        else:
            self.state.wait += 1
        if self.patience and self.state.wait >= self.patience:
            self.state.stopped_early = True
            self.model.stop_training = True
        if self.chief:
            save_checkpoint(self.model, self.paths, self.state)


class EpochProgress(keras.callbacks.Callback):
    """A progress bar over the whole run with the time left (ETA), and one line per epoch with its losses.

    The ETA counts the remaining training steps at the recent step time plus, per remaining epoch, the last
    validation pass and the epoch's own overhead (saving); early stopping can only end the run sooner."""

    def __init__(self, state: RunState, steps: int, val_steps: int):
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.state, self.steps, self.val_steps = state, steps, val_steps
        self.console = Console(highlight=False)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=self.console,
                            transient=True)
        self.task, self.epoch, self.epochs = None, state.epoch, state.epochs
        self.step_seconds = None  # moving average of one training step
        self.val_seconds = None  # the last validation pass
        self.overhead_seconds = 0.0  # rest of an epoch: callbacks, checkpoint saving
        self._last = self._epoch_started = self._val_started = 0.0
        self._train_seconds = 0.0

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc):
        self.bar.stop()
        return False

    # -- timing
    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs") or self.state.epochs
        self.task = self.bar.add_task("training", total=self.epochs * self.steps,
                                      completed=self.state.epoch * self.steps, eta="after the first steps")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._epoch_started = self._last = time.monotonic()
        self._train_seconds = 0.0
        self.bar.update(self.task, description=f"epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        took, self._last = now - self._last, now
        self._train_seconds += took
        if batch > 0 or self.step_seconds is not None:  # the run's very first step traces the graph: not typical
            self.step_seconds = took if self.step_seconds is None else 0.9 * self.step_seconds + 0.1 * took
        self.bar.update(self.task, advance=1, eta=self.eta(self.epoch, batch + 1))

    def on_test_begin(self, logs=None):
        self._val_started = time.monotonic()

    def on_test_end(self, logs=None):
        self.val_seconds = time.monotonic() - self._val_started

    def on_epoch_end(self, epoch, logs=None):
        took = time.monotonic() - self._epoch_started
        self.overhead_seconds = max(0.0, took - self._train_seconds - (self.val_seconds or 0.0))
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        parts += [f"{label} {logs[key]:.3f}" for key, label in (("loss", "loss"), ("val_loss", "val loss"),
                                                                  ("val_iou", "val IoU")) if key in logs]
        parts.append(f"{took:.0f} s")
        if epoch + 1 < self.epochs:
            parts.append(f"ETA {self.eta(epoch + 1, 0)}")
        if self.state.best_epoch == epoch + 1:
            parts.append("best so far, saved")
        self.console.print("  ".join(parts), soft_wrap=True, markup=False)

    def eta(self, epoch: int, steps_done: int) -> str:
        seconds = self.eta_seconds(epoch, steps_done)
        if seconds is None:
            return "after the first steps"
        minutes, secs = divmod(int(round(seconds)), 60)
        return f"{minutes}:{secs:02d}"

    def eta_seconds(self, epoch: int, steps_done: int) -> float | None:
        """Seconds left when `steps_done` steps of epoch `epoch` (0-based) are done, its validation not yet."""
        if self.step_seconds is None:
            return None
        validation = self.val_seconds if self.val_seconds is not None else 0.35 * self.val_steps * self.step_seconds
        epochs_left = self.epochs - epoch  # this one's validation and saving still to come
        return ((epochs_left * self.steps - steps_done) * self.step_seconds
                + epochs_left * (validation + self.overhead_seconds))


def describe_run(state: RunState, model, train_count: int, val_count: int, batch_size: int, replicas: int) -> str:
    """The line printed before training starts: where it starts, what it trains on, how long an epoch is."""
    start = f"resuming ({state.start}) after epoch {state.epoch}" if state.epoch else state.start
    frozen = ", BatchNorm frozen" if state.frozen_batchnorm else ""
    frozen += ", backbone frozen" if state.frozen_backbone else ""
    if state.start_path:
        frozen += ", saved blended with the start as validation prefers" if state.choose_blend else \
            f", saved blended {state.blend:g} with the start" if state.blend < 1 else ""
    devices = f" on {replicas} devices" if replicas > 1 else ""
    return (f"{start} ({model.backbone_name} {model.image_size} px{frozen}){devices}: {train_count} train and "
            f"{val_count} validation images; {state.epochs} epochs of {state.steps_per_epoch} steps of "
            f"{batch_size} images")


class CtrlCWatch(keras.callbacks.Callback):
    """Makes sure Ctrl-C stops training: a Ctrl-C that Python lost in a finalizer (safe_moves.watched_interrupt)
    is raised again at the next batch or epoch end."""

    def __init__(self, latch):
        super().__init__()
        self.latch = latch

    def _raise_if_pending(self, *args, **kwargs):
        self.latch.raise_if_pending()

    on_train_batch_end = on_test_batch_end = on_epoch_end = _raise_if_pending


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class PredictionImages(keras.callbacks.Callback):
    """Every `every` epochs, a TensorBoard image panel of validation images: label boxes green, predicted faces
    red (those scoring at least the threshold)."""

    def __init__(self, labels, image_size: int, logdir: Path, every: int = config.IMAGE_LOG_EVERY,
                 count: int = config.IMAGE_LOG_COUNT):
        super().__init__()
        import numpy as np

        self.every, self.logdir, self.image_size = every, Path(logdir), image_size
        picks = np.unique(np.linspace(0, len(labels) - 1, min(count, len(labels))).astype(int))
        self.paths = [labels.paths[i] for i in picks]
        self.boxes = labels.boxes[picks]
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
        panel = draw_boxes(self._images, self.boxes, boxes.numpy(), scores.numpy())
        with self._writer.as_default():
            tf.summary.image("predictions (green: label, red: model)", panel, step=epoch, max_outputs=len(panel))
        self._writer.flush()


def draw_boxes(images_uint8, true_boxes, pred_boxes, scores, threshold: float = config.THRESHOLD):
    """Float [0,1] images with every label box (green) and every predicted face above the threshold (red).

    true_boxes (N, M, 4) with zero rows as padding, pred_boxes (N, K, 4) and scores (N, K) from the model."""
    import numpy as np
    import tensorflow as tf

    images = tf.cast(images_uint8, tf.float32) / 255.0
    drawn = []
    for i in range(images.shape[0]):
        truth = [b for b in true_boxes[i] if b[2] > 0]
        found = [b for b, s in zip(pred_boxes[i], scores[i]) if s >= threshold]
        image = images[i:i + 1]
        if truth or found:
            boxes = np.array([[b[1], b[0], b[3], b[2]] for b in truth + found], np.float32)[None]
            colors = [(0.0, 1.0, 0.0, 1.0)] * len(truth) + [(1.0, 0.0, 0.0, 1.0)] * len(found)
            image = tf.image.draw_bounding_boxes(image, boxes, tf.constant(colors, tf.float32))
        drawn.append(image)
    return tf.concat(drawn, axis=0)


def plot_history(history: dict[str, list[float]], path: Path) -> Path:
    """Loss curves (total, class, box) and face IoU, train vs validation, as a PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", "total loss"), ("class_loss", "class loss (face score)"), ("box_loss", "box loss"),
              ("iou", "IoU on face cells")]
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
        ("start", state.start or "-"),
        ("images", f"{result.train_count} train, {result.val_count} validation"),
        ("epochs", f"{state.epoch}/{state.epochs}" + (" (stopped early)" if state.stopped_early else "")),
        ("time", f"{state.seconds / 60:.1f} min on {result.replicas} device(s)"),
        ("best epoch", f"{state.best_epoch} (val loss {state.best_val_loss:.4f})" if state.best_epoch else "-"),
        ("last train", _metrics_line(last, "")),
        ("last validation", _metrics_line(last, "val_")),
        ("model", str(result.model_path) + (f" (the best epoch's weights blended {state.blend:g} with the start's)"
                                            if state.start_path and state.blend < 1 else "")),
        *([("blends tried", f"validation {_blend_choices(state)}")] if state.blend_choices else []),
        *([("note", advice)] if state.blend_choices and (advice := blend_advice(state.blend_choices, state.blend))
          else []),
        ("loss curves", str(result.curve_path or "-")),
        ("TensorBoard", f"tensorboard --logdir {result.logdir.parent}"),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _blend_choices(state: RunState) -> str:
    return ", ".join(f"{c['blend']:g}: AP {c['ap50']:.3f} IoU {c['mean_iou']:.3f}" for c in state.blend_choices)


def _metrics_line(last: dict, prefix: str) -> str:
    parts = [f"{name} {last[prefix + name]:.4f}" for name in ("loss", "class_loss", "box_loss", "iou")
             if prefix + name in last]
    return ", ".join(parts) or "-"
