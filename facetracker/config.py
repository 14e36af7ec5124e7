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
# Two face boxes of one label overlapping this much are one face drawn twice (webcam-f has one, at IoU 0.98);
# two people's heads never overlap so much in a photo.
LABEL_DUPLICATE_IOU = 0.8

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
AUG_FULL_FRAME_SHARE = 0.3  # variants showing the whole frame letterboxed into the square, exactly as at inference
AUG_ZOOM_OUT_SHARE = 0.2  # variants showing the whole frame shrunk inside a grey border: smaller faces
AUG_ZOOM_OUT_SCALE = (0.5, 0.9)  # ...to this fraction of the side
AUG_BORDER_FILL = 114  # grey of that border (and of rotations' corners)
AUG_GRAY_SHARE = 0.15  # variants turned to grayscale: skin and room colours differ from person to person
AUG_CROP_SCALE = (0.35, 1.0)  # other variants crop this fraction of the image area...
AUG_CROP_RATIO = (0.75, 4 / 3)  # ...with this width/height, resized to the square (a face stretched 4/3 at most)
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
BATCH_SIZE = 16
# Peak LR: from scratch it must move far; an ImageNet backbone little; a FaceTracker that already finds faces (the
# bundled model, the default start) only has to learn one camera, face and box style, without forgetting the rest.
LEARNING_RATE = {"scratch": 2e-3, "pretrained": 1e-4, "finetune": 5e-4}
# An epoch is this many steps (x BATCH_SIZE images) drawn from the shuffled, repeated train split, not a full pass:
# one person's ~100 frames give ~5 000 augmented images, and 40 full passes took 40 minutes on 2 cores. 40 epochs of
# 20 steps of 16 (12 800 images, each augmented image seen ~3 times) took under 5 minutes on 2 busy cores, and are
# what docs/quality.md ("Your own tracker") measured. 0: a full pass over the train split.
STEPS_PER_EPOCH = 20
VAL_IMAGES = 320  # validation loss (early stopping, best model) on at most this many val images, evenly spread
# One person's frames show their face at about one size, and fine-tuning on them alone makes the model forget faces
# of other sizes (far-away faces first: webcam-g's AP fell from 0.71 to 0.06 after fine-tuning on webcam-d; 0.13 with
# these views, mean AP on the other people 0.898 -> 0.905: a small help, the blend below does more). So this share
# of the training images is shown as a random view like the bundled recipe's: the whole image shrunk by a
# log-uniform factor in TRAIN_ZOOM and placed anywhere on a grey canvas, flipped and recoloured
# (facetracker.data.random_view).
TRAIN_ZOOM_SHARE = 0.5
TRAIN_ZOOM = (0.25, 1.0)
DEFAULT_BACKBONE = "compact"
ALPHA = 0.35  # MobileNet width multiplier: 0.35 keeps inference fast on 2 CPU cores
IMAGE_SIZE = {"compact": 192, "mobilenetv2": 192, "vgg16": 192}  # square input side per backbone
WIDTH = 16  # channels of the compact backbone's stride-4 stage (x2, x4, x8 at strides 8, 16, 32)
NECK_CHANNELS = 32  # feature-pyramid and head channels
# Depthwise-separable convs where inference is bound by reading weights (compact stride 16/32, neck, head): 0.6x
# the TFLite time of the network and 0.44x its weights, but 0.013 lower mean AP@0.5 on the held-out people of a
# fold (docs/quality.md), so off: finding faces comes first.
SEPARABLE = False

# the dense detector (facetracker/boxes.py)
STRIDE = 8  # pixels of the input per grid cell: a 192 px input is a 24 x 24 grid
CENTER_RADIUS = 0.3  # a cell learns a face when its centre is within this share of the box's half-size
MAX_FACES = 32  # faces kept per frame after non-maximum suppression
NMS_IOU = 0.45  # detections overlapping a better one more than this are the same face
MIN_SCORE = 0.05  # cells scoring below this never reach NMS (evaluation ranks everything above it)
# focal: binary focal loss on "is this cell a face" | quality_focal: the score learns the IoU of the cell's own box
# (losses.quality_focal_loss), so a well-placed box outranks a badly placed one. On the 13 sets held out by fold 2
# of docs/quality.md, quality_focal (with VIEW_GAMMA) took mean AP@0.5 from 0.868 to 0.883 and AP@[.5:.95] from
# 0.472 to 0.487 (one run each).
SCORE_LOSS = "quality_focal"
FOCAL_GAMMA = 2.0
FOCAL_ALPHA = 0.25
MAX_BOXES = 32  # face boxes per training image (padded); mosaics of 4 frames need room for several each
MIN_FACE_PIXELS = 3  # faces narrower than this in the model input are dropped from a training view

# the bundled model's recipe (facetracker/recipe.py): random views of labelme photos drawn in tf.data
PHOTO_SIDE = 384  # photos are kept in RAM with their longest side at most this (2 500 photos: ~0.7 GB)
VIEW_ZOOM = (0.35, 1.8)  # the photo's longest side becomes this times the input side (log-uniform)
MOSAIC_SHARE = 0.3  # share of training images that are 2x2 mosaics of four photos
# Share of training images whose faces are pasted, with a margin of their own surroundings (SWAP_MARGIN of the
# face's size), onto another photo's view (data.swap_background). 0: at 0.25 fold 2 of docs/quality.md measured
# the same as without (mean AP@0.5 0.885 against 0.883 / 0.884 for two seeds; "Faces pasted onto other rooms").
BACKGROUND_SWAP_SHARE = 0.0
SWAP_MARGIN = (0.05, 0.5)
# Share of those swapped views whose new background is a busy made-up pattern (data.busy_pattern: stripes, checks
# and blobs in random colours) instead of another room: the held-out man before a patterned curtain is the face
# the model misses most, and the rooms of the training sets are mostly plain. 0: with swap 0.25 and patterns for
# all of them, fold 2 measured 0.876 (webcam-u 0.332), no better (docs/quality.md, "made-up busy patterns").
BACKGROUND_PATTERN_SHARE = 0.0
VIEW_GAMMA = (0.6, 1.6)  # gamma of a training view, log-uniform in this range: under- and over-exposed cameras
RECIPE_EPOCHS = 30
# Each face-free photo is drawn this many times as often as a photo with a face. The data hold few negatives (177 of
# 2 493 photos), and the hard ones (hands over the face, a doorway) score like faces. 4 leaves covered faces empty
# when the training sets hold enough of them (fold 1 of docs/quality.md, "Negatives": 2 of 53 held-out negatives
# flagged against 9 and 7, mean AP level), but a bundle trained with it held the demo's small face and the
# 1280x720 tracking clip worse than two trainings at 1, so every photo is drawn as often.
RECIPE_NEGATIVE_REPEAT = 1
RECIPE_BATCH_SIZE = 16
RECIPE_BOX_WEIGHT = 1.0  # the box loss (GIoU) against the face-score loss's 1 in the bundled recipe
# The bundled model's backbone: BlazeFace's, started from its weights, finds held-out people's faces far more often
# than the compact network from scratch (mean AP@0.5 0.936 against 0.863-0.875 over 23 held-out sets) at about 2.5x
# its inference time (docs/quality.md, "The blazeface backbone").
RECIPE_BACKBONE = "blazeface"
# peak learning rate: from scratch, from BlazeFace's weights, and blazeface-lite going on from a trained blazeface model
RECIPE_LR = {"compact": LEARNING_RATE["scratch"], "blazeface": 1e-3, "blazeface-lite": 1e-3}
# blazeface-lite is made from a trained blazeface FaceTracker: its new stem is first taught the old stem's features
# (recipe.distill_stem, this many passes over the photos, at this peak learning rate), then the whole network
# trains LITE_EPOCHS passes of the recipe at RECIPE_LR["blazeface-lite"].
LITE_DISTILL_EPOCHS = 8
LITE_DISTILL_LR = 2e-3
LITE_EPOCHS = 16
# The shared data sets whose README says some unlabelled images show a face: their unlabelled images are not
# used as negatives by the recipe.
SETS_WITH_MISSING_LABELS = ("webcam-n", "webcam-p")
BN_MOMENTUM = 0.99  # backbone BatchNorm moving-average momentum (keras.applications uses 0.999 for MobileNets)
# Where training starts: bundled (the face model shipped in facetracker/assets/, fine-tuned) | none (from scratch) |
# imagenet (keras.applications' weights for --backbone; needs network) | PATH (a FaceTracker .keras file, or a
# keras.applications weights file for --backbone).
WEIGHTS = "bundled"
FREEZE_BATCHNORM = True  # fine-tuning a FaceTracker keeps its BatchNorm statistics (one person's room would replace them)
FREEZE_BACKBONE = False  # fine-tuning a FaceTracker trains its neck and head only
# Fine-tuning a FaceTracker saves a weight-space blend of the starting and the fine-tuned model (WiSE-FT, Wortsman et
# al. 2022): start + FINETUNE_BLEND x (fine-tuned - start). On a person the start model never saw (docs/quality.md):
# 1.0 lost 0.067 AP@0.5 on the other people, 0.6 lost 0.024 and still took the person's own test IoU from 0.80 to
# 0.82 (AP 0.81 -> 1.00). The frozen BatchNorm statistics are the same in both, so the blend is a clean one.
FINETUNE_BLEND = 0.6
# Unless --blend is given, the blend is chosen at the end of fine-tuning: the smallest of these whose AP@0.5 and
# mean IoU on the validation images are within BLEND_TOLERANCE of the best one's, or reach BLEND_ENOUGH (what
# issue 10 counts as good on a person's own frames), whichever asks less (train.choose_blend, pick_blend). On
# webcam-o (docs/quality.md) validation was level from 0.3 to 1.0 while the other people's AP fell from 0.949 to
# 0.910. The choice never goes further than FINETUNE_BLEND: on webcam-r and -g (tight boxes) validation IoU rose all
# the way (webcam-r 0.72 at 0.3 to 0.86 at 1.0), and taking 0.7 and 1.0 cost the other people 0.035 and 0.49 of
# AP@0.5 (docs/quality.md). FINETUNE_BLEND is also the blend of the best epoch saved while training goes on.
BLEND_CHOICES = (0.3, 0.4, 0.5, 0.6)
BLEND_TOLERANCE = 0.01
BLEND_ENOUGH = (0.98, 0.80)  # (AP@0.5, mean IoU)
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
# Face score from which a detection counts as a face (predict, evaluate). The score learns the IoU of the face's box
# (quality focal loss), so real faces score about 0.5-0.85. The blazeface backbone's fold models, on strangers:
# group photos 94.4 % of faces at 92.2 % precision (0.4: the same faces at 86.9 %); the held-out sets' recall 0.925
# with 0.15 false faces per face-free image (0.4: 0.932, 0.18). docs/quality.md, "Group photos".
THRESHOLD = 0.45
BUNDLED_MODEL_NAME = "facetracker.keras"  # in facetracker/assets/, used when --model is left out and models/ is empty
BUNDLED_FAST_MODEL_NAME = "facetracker.tflite"  # its TFLite export, what live/predict/evaluate/demo run by default
# Its TFLite exports fitted to the frames of common cameras (model.fitted: the same faces, less to compute), which
# `live` picks for the frame size of its source: 4:3 and 16:9, landscape and portrait.
BUNDLED_IMAGE_SIZE = 192  # the bundled model's square input side (a test checks it against the file)
BUNDLED_FITTED_FRAMES = ((640, 480), (1280, 720), (480, 640), (720, 1280))
BUNDLED_FITTED_MODEL_NAME = "facetracker-{width}x{height}.tflite"  # named by its input size
BLAZEFACE_WEIGHTS_NAME = "blazeface_short_range.tflite"  # in facetracker/assets/: MediaPipe's, the blazeface backbone's start
# Still images: the model also looks at overlapping tiles, so the small faces of a group photo are found
# (boxes.tiles, Detector.detect_still; predict, evaluate and label on images, docs/quality.md). On 960x540
# webcam frames tiles found more faces but also clutter (webcam-t: 1.2 false faces per image): only from 1000 px.
TILE_MIN_SIDE = 192  # px: the finest tiles: the model's input (finer would only upsample)
TILE_MIN_SHARE = 0.1  # of the photo's longer side: no finer tiles (docs/quality.md, "Group photos")
TILE_FROM_SIDE = 1000  # px: images whose longer side is at least this get tiles; webcam frames are seen whole
TILE_OVERLAP = 0.3  # of a tile's side shared with its neighbour: faces up to this size lie whole in some tile
TILE_FACE_SHARE = 0.4  # a tile keeps only faces at most this share of its side (bigger ones: the coarser views)
TILE_INSIDE = 0.7  # a box with this share of its area inside a better one is a part of that face, not a face
# TFLite/onnxruntime threads of a detector that runs alone (predict, evaluate, label, `live --workers 1`): both
# cores. benchmarks/live_fps.py could not tell 2 from 1 through the machine's noise (0.16-0.28x decode either way);
# the fastest run was with 2 (532 FPS). `live` itself runs one-thread copies in workers (LIVE_DETECT_WORKERS below).
INFERENCE_THREADS = 2
# fast-area: ~training's tf.image.resize(method="area") at 1/5 of the cost | area: exact, ~1 ms/frame | linear
RESIZE_INTERPOLATION = "fast-area"

# evaluate
EVAL_DATA = DATA_DIR / "test"
IOU_THRESHOLD = 0.5  # a detection counts as correct at IoU >= 0.5 (AP@0.5)
EVAL_GRID_IMAGES = 16  # predictions vs ground truth drawn in the grid PNG
EVAL_GRID_TILE = 240  # grid tile width in pixels (the height follows the images' aspect ratio)
EVAL_ROW_DETECTIONS = 3  # report rows list every detection at/above the threshold, and at least this many
# benchmarks/quality.py: leave-people-out folds over the shared data sets, BlazeFace as the reference
# Folds of whole held-out sets (caltech-faces is one set: its recurring people stay together). Each fold trains
# the recipe from scratch for RECIPE_EPOCHS on the other sets, ~0.03-0.04 s per photo and epoch on 2 cores: at 40
# epochs 3 folds (each on two thirds of the ~2 500 photos) take ~1.5-2 hours, 4 folds ~2.5-3 hours, 2 folds ~1 hour.
QUALITY_FOLDS = 2  # leave-people-out folds of `make quality`: 2 fit in about an hour on 2 cores at the recipe's epochs
BLAZEFACE_BOX_SCALE = 1.4  # BlazeFace's tight face box scaled about its centre to the head-sized labels' size...
BLAZEFACE_BOX_SHIFT_UP = 0.2  # ...and moved up this share of its (tight) height: labels include hair and forehead

# predict
PREDICT_OUT = Path("predictions")

# export: tolerated largest |exported - keras| over the check images, (score, box) per --quantize mode, faces
# compared as export.compare_outputs does; box coordinates are fractions of the model input (0.03 = 19 px on a
# 640 px wide frame). Measured with benchmarks/export_fidelity.py on a dense model trained 12 epochs by the recipe
# (452 real images of webcam-b/f/g/k, none seen in training; the bundled model is being retrained): float <= 1e-5;
# dynamic score 0.01, box 0.018 (mean 5e-4); int8 score 0.19 on all images but one, where int8 moved a face's box
# below IoU 0.5 of the Keras one (0.52: a face found by one output only counts its whole score), box 0.12 (mean
# 0.006). int8 is lossy: its tolerance only catches broken conversions. The tiny test model (tests/tiny_model.py,
# 248 images of webcam-b/c): float 2e-6; dynamic 0.011 / 0.004; int8 0.31 (again a face lost at IoU 0.5) / 0.028.
EXPORT_FORMATS = ("tflite", "onnx", "savedmodel")
QUANTIZE_MODES = ("none", "dynamic", "int8")
# The blazeface bundle (2026-11-25): int8 score 0.66 on the built-in pictures (a face found by one output only), box 0.067.
EXPORT_TOLERANCE = {"none": (1e-4, 1e-4), "dynamic": (0.05, 0.03), "int8": (0.8, 0.15)}
EXPORT_CALIBRATION_IMAGES = 100  # at most this many --data images calibrate int8
EXPORT_CHECK_IMAGES = 16  # at most this many images compare exported vs keras outputs
# Multi-face outputs are compared face by face (export.compare_outputs): faces scoring at least this in either
# output... (below ~0.3 neighbouring cells predict the same blob with different boxes at nearly equal scores, so
# which one survives NMS flips with 0.01 score changes: 0.07 box differences at 0.2, 0.018 from 0.3 on, dynamic)
EXPORT_SCORE_FLOOR = 0.3
EXPORT_MATCH_IOU = 0.5  # ...are paired across the two outputs when their boxes overlap this much
# A confident face overlapping a better face of its own output this much is a near-duplicate that NMS keeps or
# drops on tiny box changes (its threshold is NMS_IOU): it is not compared.
EXPORT_DUPLICATE_IOU = 0.3

# live tracking (facetracker/tracking.py, facetracker/live.py)
# A track is born at this score (held down to TRACK_THRESHOLD - TRACK_HYSTERESIS_MARGIN): lower than THRESHOLD,
# because a track needs TRACK_BIRTH_HITS detections in a row, which a one-frame false positive rarely has; the demo's
# smaller second face scores 0-0.6 (median 0.28) and is held in 66 of 100 frames at 0.3. At 0.25 the false
# positives of the tracking benchmark (docs/benchmarks.md) went from 23 / 20 to 62 / 137.
TRACK_THRESHOLD = 0.3
TRACK_SMOOTHER = "kalman"  # kalman | ema | none
TRACK_EMA_ALPHA = 0.5  # weight of the newest box in the EMA
# Kalman noises are relative to the measurement noise (1.0): lower = smoother but slower to follow a movement.
TRACK_KALMAN_POSITION_NOISE = 0.01
TRACK_KALMAN_VELOCITY_NOISE = 0.001
TRACK_HYSTERESIS_MARGIN = 0.15  # a face is born at >= threshold; once shown, >= threshold - margin keeps it
TRACK_MAX_MISSES = 3  # consecutive missed frames before a shown face is hidden (lost)
TRACK_BIRTH_HITS = 2  # consecutive detections >= threshold before a new face is shown and gets an id
TRACK_MAX_LOST = 30  # frames a hidden face keeps its id, waiting to be found again near where it was heading
TRACK_MAX_FACES = 10  # tracks at most (shown, being born or lost); --max-faces
TRACK_LOW_SCORE = 0.1  # detections from this score up may keep a shown face (ByteTrack's low-score association)
TRACK_MATCH_DIOU = 0.0  # a detection matches a track's prediction at DIoU >= this (about 3/4 of a width apart)
TRACK_LOW_MATCH_DIOU = 0.45  # ...and a low-score detection only this close (about IoU 0.5)
TRACK_MISS_PENALTY = 0.05  # cost added per frame a track went unseen: the most recently seen track wins a tie
LIVE_STALL_SECONDS = 5.0  # a live source silent this long counts as disconnected
LIVE_QUEUE_FRAMES = 8  # frames decoded ahead for a video file (a live source keeps only the newest)
# live with a TFLite/ONNX model: this many detection workers, each a copy of the model on LIVE_WORKER_THREADS threads,
# run it on the next frames while the loop tracks and draws (facetracker/live.py, _DetectAhead); 1: the loop runs the
# model itself, on INFERENCE_THREADS threads. Two one-thread copies beat one two-thread interpreter on 2 cores
# (docs/benchmarks.md, "live": detection workers).
LIVE_DETECT_WORKERS = 2
LIVE_WORKER_THREADS = 1
# live runs a .keras model (your trained one) through its TFLite export fitted to the frames, made the first time
# and kept under the user's cache folder ($XDG_CACHE_HOME, else ~/.cache) in this subfolder, in a folder named by
# the model file's contents: through tf.function the same network ran at a quarter of the file's frame rate
# (docs/benchmarks.md).
LIVE_EXPORTS_DIR = Path("facetracker") / "live-exports"
LIVE_WINDOW = "facetracker"
RECORD_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

# demo (facetracker/demo.py)
DEMO_DIR = Path("demo_out")
DEMO_SECONDS = 4.0
DEMO_FPS = 25.0
DEMO_SIZE = (640, 480)

# live recording and track log (facetracker/recording.py)
RECORD_QUEUE_FRAMES = 32  # annotated frames waiting for the encoder thread (~30 MB at 640x480) before the loop waits

# label --prelabel and label --check --model (facetracker/prelabel.py)
PRELABEL_THRESHOLD = 0.45  # a face (frame + mirror averaged) scoring this becomes a pre-label; --check: "sees a face"
PREDICTED_FLAG = "predicted"  # labelme shape flag on the boxes the model drew; unticked in labelme once reviewed
CHECK_MISSING_SCORE = PRELABEL_THRESHOLD  # --check: an unlabelled image the model would pre-label is a missing label
CHECK_MISPLACED_IOU = 0.3  # --check: a label the model's best box overlaps less than this is misplaced or misfiled
CHECK_FINDINGS_SHOWN = 100  # --check: findings listed (worst first); the rest are counted
PRELABEL_MATCH_IOU = 0.6  # benchmarks/prelabel_quality.py: a pre-label is right at this IoU with the human box
