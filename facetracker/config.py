"""Every default path and setting in one place; commands and tests read them from here."""

from pathlib import Path

# Folder layout (relative to the current directory, every command takes options to point elsewhere).
DATA_DIR = Path("data")
AUG_DIR = Path("aug_data")
MODELS_DIR = Path("models")
LOGS_DIR = Path("logs")
REPORTS_DIR = Path("reports")
IMAGES = "images"
LABELS = "labels"
SPLITS = ("train", "val", "test")
DEFAULT_MODEL = MODELS_DIR / "facetracker.keras"

# Files.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
JPEG_QUALITY = 95

# Labels: labelme label names that count as a face (case-sensitive, repeatable --label).
FACE_LABELS = ("face",)

# collect
COLLECT_COUNT = 30
COLLECT_INTERVAL = 0.5

# split
SPLIT_RATIOS = (0.7, 0.15, 0.15)
SPLIT_SEED = 42

# augment
AUG_VARIANTS = 60
AUG_SEED = 0
AUG_IMAGE_SIZE = 256  # side of the square augmented images; training resizes further
AUG_FULL_FRAME_SHARE = 0.3  # variants showing the whole frame squashed to a square, exactly as at inference
AUG_ZOOM_OUT_SHARE = 0.2  # variants showing the whole frame shrunk inside a grey border: smaller faces
AUG_ZOOM_OUT_SCALE = (0.5, 0.9)  # ...to this fraction of the side
AUG_BORDER_FILL = 114  # grey of that border (and of rotations' corners)
AUG_GRAY_SHARE = 0.15  # variants turned to grayscale: skin and room colours differ from person to person
AUG_CROP_SCALE = (0.35, 1.0)  # other variants crop this fraction of the image area...
AUG_CROP_RATIO = (0.75, 4 / 3)  # ...with this width/height, widened per image to include the image's own aspect
AUG_MIN_VISIBILITY = 0.4  # a face keeping less of its box than this after the crop is labelled "no face"
AUG_BACKGROUND_CROPS = 6  # face-free crops cut from every labelled image as extra negatives (class 0)
AUG_BACKGROUND_SCALE = (0.04, 0.5)  # their area as a fraction of the image
AUG_BACKGROUND_MARGIN = 0.1  # keep this fraction of the box size clear around the face (hand-drawn boxes are loose)
AUG_PASTES = 10  # per labelled image: its face pasted onto a face-free region of another image (class 1)
AUG_PASTE_FACE_SIZE = (0.2, 0.75)  # side of the pasted face box as a fraction of the output side
AUG_PASTE_MARGIN = 0.3  # surroundings cut with the face (fraction of its box), blended in with a soft edge
AUG_BACKGROUND_MIN_SIDE = 32  # pixels: smaller face-free regions are not worth upscaling

# train
EPOCHS = 40
BATCH_SIZE = 8
LEARNING_RATE = {"scratch": 2e-3, "pretrained": 1e-4}  # peak LR: from scratch it must move far; fine-tuning little
DEFAULT_BACKBONE = "mobilenetv2"
ALPHA = 0.35  # MobileNet width multiplier: 0.35 keeps inference fast on 2 CPU cores
IMAGE_SIZE = {"mobilenetv2": 128, "mobilenetv3small": 128, "vgg16": 120}  # square input side per backbone
HEAD_UNITS = 64
BN_MOMENTUM = 0.99  # backbone BatchNorm moving-average momentum (keras.applications uses 0.999 for MobileNets)
WEIGHTS = "none"  # none | imagenet | PATH (no network: imagenet only works where downloads do)
PREPROCESSING = "auto"  # auto: the backbone's own with pretrained weights, per-image standardisation from scratch
CLASS_WEIGHT = 1.0
BOX_WEIGHT = 1.0
BOX_LOSS = "giou"  # giou | giou_l1 | ciou | corner (the notebook's); always on face images only
WARMUP_EPOCHS = 1  # linear LR warm-up, then cosine decay to 0 over the remaining steps
PATIENCE = 10  # early stopping: epochs without a better val loss
STRATEGIES = ("auto", "mirrored", "multiworker")
IMAGE_LOG_EVERY = 5  # epochs between TensorBoard panels of validation predictions
IMAGE_LOG_COUNT = 6
CACHE_LIMIT_BYTES = 2 * 1024**3  # decoded split images are cached in RAM below this size, else re-decoded

# inference
THRESHOLD = 0.5
BUNDLED_MODEL_NAME = "facetracker.keras"  # in facetracker/assets/, used when --model is left out and models/ is empty
BUNDLED_FAST_MODEL_NAME = "facetracker.tflite"  # its TFLite export, what live/predict/evaluate/demo run by default
INFERENCE_THREADS = 1  # TFLite/onnxruntime threads per detector: 1 is fastest for a small model on a busy CPU
# fast-area: ~training's tf.image.resize(method="area") at 1/5 of the cost | area: exact, ~1 ms/frame | linear
RESIZE_INTERPOLATION = "fast-area"

# evaluate
EVAL_DATA = DATA_DIR / "test"
IOU_THRESHOLD = 0.5  # a detection counts as correct at IoU >= 0.5 (AP@0.5)
EVAL_GRID_IMAGES = 16  # predictions vs ground truth drawn in the grid PNG
EVAL_GRID_TILE = 240  # grid tile width in pixels (the height follows the images' aspect ratio)

# predict
PREDICT_OUT = Path("predictions")

# export: tolerated largest |exported - keras| over the check images, (score, box) per --quantize mode; box
# coordinates are fractions of the image (0.03 = 19 px on 640). Measured on the bundled model over all 338 real
# images (benchmarks/export_fidelity.py, docs/benchmarks.md): float ~3e-6; dynamic score 0.02, box 0.011 (mean
# 0.002); int8 score 0.17, box 0.07-0.10 (mean 0.01): int8 is lossy, its tolerance only catches broken conversions.
EXPORT_FORMATS = ("tflite", "onnx", "savedmodel")
QUANTIZE_MODES = ("none", "dynamic", "int8")
EXPORT_TOLERANCE = {"none": (1e-4, 1e-4), "dynamic": (0.05, 0.03), "int8": (0.25, 0.15)}
EXPORT_CALIBRATION_IMAGES = 100  # at most this many --data images calibrate int8
EXPORT_CHECK_IMAGES = 16  # at most this many images compare exported vs keras outputs

# live tracking (facetracker/tracking.py, facetracker/live.py)
TRACK_SMOOTHER = "kalman"  # kalman | ema | none
TRACK_EMA_ALPHA = 0.5  # weight of the newest box in the EMA
# Kalman noises are relative to the measurement noise (1.0): lower = smoother but slower to follow a movement.
TRACK_KALMAN_POSITION_NOISE = 0.01
TRACK_KALMAN_VELOCITY_NOISE = 0.001
TRACK_RESET_IOU = 0.4  # a detection overlapping the track less than this is a jump: restart there, no sliding
TRACK_HYSTERESIS_MARGIN = 0.15  # once on, a face only counts as missed below threshold - margin
TRACK_MAX_MISSES = 3  # consecutive missed frames before the box switches off
LIVE_STALL_SECONDS = 5.0  # a live source silent this long counts as disconnected
LIVE_QUEUE_FRAMES = 8  # frames decoded ahead for a video file (a live source keeps only the newest)
LIVE_WINDOW = "facetracker"
RECORD_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

# demo (facetracker/demo.py)
DEMO_DIR = Path("demo_out")
DEMO_SECONDS = 4.0
DEMO_FPS = 25.0
DEMO_SIZE = (640, 480)
