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

# train
EPOCHS = 40
BATCH_SIZE = 8
LEARNING_RATE = 1e-4
DEFAULT_BACKBONE = "mobilenetv2"

# inference
THRESHOLD = 0.5
