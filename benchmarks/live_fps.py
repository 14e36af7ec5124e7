"""Live tracking speed, end to end, on a real video file: decode -> preprocess -> model -> smoothing -> draw.

    .venv/bin/python benchmarks/live_fps.py [--model PATH] [--frames 300] [--json]

Builds a 640x480 mp4v video from the real images in ../shared/datasets, then runs each configuration in its own
subprocess (so peak memory, ru_maxrss, is per configuration and nothing is shared or warmed across them):

  decode only          cv2.VideoCapture.read() in a loop: the ceiling for any tracker on this file
  default .keras       `facetracker live` loop (run_live, headless) with Detector on the model: compiled tf.function
  default .tflite      same, the model exported by facetracker.export (TFLite interpreter, XNNPACK)
  default .onnx        same, exported to ONNX (onnxruntime)
  notebook VGG16       the notebook's per-frame code: cv2 -> tf.image.resize -> /255 -> model.predict, VGG16 120 px
                       with its Dense(2048) heads (untrained: speed does not depend on the weights)
  Haar cascade         OpenCV's haarcascade_frontalface_default in the same live loop: the classic reference

For the facetracker runtimes it also times each stage alone, frame by frame without the reader thread, to show where
the time goes. The load average before and after is printed: other processes on the machine slow everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATASETS = Path(os.environ.get("FACETRACKER_DATASETS", REPO.parent / "shared" / "datasets"))
SIZE = (640, 480)
WARMUP = 10
SLOW_FRAMES = {"vgg16-predict": 60, "haar": 100}  # seconds per run stay reasonable; FPS is a rate anyway
CONFIGS = ("decode", "keras", "tflite", "onnx", "vgg16-predict", "haar")
LABELS = {"decode": "decode only (cv2.VideoCapture.read)", "keras": "default model, .keras via tf.function",
          "tflite": "default model, .tflite (TFLite interpreter)", "onnx": "default model, .onnx (onnxruntime)",
          "vgg16-predict": "notebook VGG16 120 px, model.predict per frame", "haar": "OpenCV Haar cascade"}


# ---------------------------------------------------------------- the parent: build inputs, run workers, report


def build_video(path: Path, frames: int) -> Path:
    """`frames` real webcam images from all data sets, in name order, as a 640x480 mp4v video at 30 FPS."""
    import cv2

    images = sorted(p for name in ("webcam-a", "webcam-b", "webcam-c") for p in (DATASETS / name / "images").glob("*.jpg"))
    if not images:
        sys.exit(f"no images in {DATASETS}: set FACETRACKER_DATASETS")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    for i in range(frames):
        writer.write(cv2.resize(cv2.imread(str(images[i % len(images)])), SIZE))
    writer.release()
    return path


def worker(config: str, video: Path, model: Path | None, frames: int) -> dict:
    command = [sys.executable, __file__, "--worker", config, "--video", str(video), "--frames", str(frames)]
    if model is not None:
        command += ["--model", str(model)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"config": config, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def export(model: Path, folder: Path) -> dict[str, Path]:
    """The .tflite and .onnx files of `model`, written by facetracker.export in a subprocess."""
    code = ("import sys, json; from pathlib import Path; from facetracker.export import export_model\n"
            "out = {f: str(export_model(Path(sys.argv[1]), f, out=Path(sys.argv[2]) / ('model.' + f)).path)"
            " for f in ('tflite', 'onnx')}\nprint(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code, str(model), str(folder)], capture_output=True, text=True,
                          cwd=REPO)
    if done.returncode != 0:
        sys.exit(f"export failed: {done.stderr.strip().splitlines()[-1]}")
    return {k: Path(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def report(results: list[dict], load: tuple, command: str) -> str:
    rows = ["| configuration | FPS | p50 ms | p95 ms | peak RSS MB | frames |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {LABELS[r['config']]} | failed: {r['error']} | | | | |")
            continue
        rows.append(f"| {LABELS[r['config']]} | {r['fps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
                    f"| {r['maxrss_mb']:.0f} | {r['frames']} |")
    profile = ["", "Per stage, ms per frame, each stage timed alone (no reader thread):", "",
               "| runtime | decode | resize+RGB | invoke | tracker | draw | sum | FPS if sequential |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p = r.get("profile")
        if p:
            total = sum(p.values())
            profile.append(f"| {r['config']} | {p['decode']:.3f} | {p['preprocess']:.3f} | {p['invoke']:.3f} "
                           f"| {p['track']:.3f} | {p['draw']:.3f} | {total:.3f} | {1000 / total:.0f} |")
    machine = (f"load average before {load[0]:.2f}, after {load[1]:.2f} on {os.cpu_count()} cores (the run itself "
               "adds about 1; a load above ~0.5 before means other processes were competing for the CPU)")
    return "\n".join([f"`{command}`", "", *rows, *profile, "", machine])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: the model bundled in the package")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--only", nargs="*", choices=CONFIGS, help="run only these configurations")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON lines too")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.video, args.model, args.frames)))
        return

    from facetracker.inference import bundled_model_path

    model = args.model or bundled_model_path()
    command = "python benchmarks/live_fps.py" + (f" --model {args.model}" if args.model else "") + \
              (f" --frames {args.frames}" if args.frames != 300 else "")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="live-fps-") as tmp:
        video = build_video(Path(tmp) / "webcams.mp4", args.frames)
        configs = args.only or CONFIGS
        exported = export(model, Path(tmp)) if {"tflite", "onnx"} & set(configs) else {}
        models = {"keras": model, **exported}
        results = []
        for config in configs:
            result = worker(config, video, models.get(config), args.frames)
            results.append(result)
            print(f"{config}: {json.dumps(result) if args.json else result.get('fps', result.get('error'))}",
                  file=sys.stderr)
    print(report(results, (load_before, os.getloadavg()[0]), command))


# ---------------------------------------------------------------- the workers (one configuration per process)


def run_worker(config: str, video: Path, model: Path | None, frames: int) -> dict:
    if config == "decode":
        result = decode_only(video, frames)
    else:
        detector = make_detector(config, model)
        warm_up(detector, video)
        from facetracker.live import run_live

        stats = run_live(video, detector=detector, show=False, max_frames=SLOW_FRAMES.get(config, frames))
        result = {"fps": stats.fps, "p50_ms": stats.latency_p50_ms, "p95_ms": stats.latency_p95_ms,
                  "frames": stats.frames}
        if config in ("keras", "tflite", "onnx"):
            result["profile"] = profile_stages(detector, video, min(frames, 200))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    return {"config": config, **result, "maxrss_mb": peak_kb / 1024}


def decode_only(video: Path, frames: int) -> dict:
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(video))
    times = []
    start = time.perf_counter()
    for _ in range(frames):
        t = time.perf_counter()
        ok, _frame = capture.read()
        if not ok:
            break
        times.append(time.perf_counter() - t)
    seconds = time.perf_counter() - start
    capture.release()
    p50, p95 = np.percentile(times, [50, 95]) * 1000
    return {"fps": len(times) / seconds, "p50_ms": float(p50), "p95_ms": float(p95), "frames": len(times)}


def make_detector(config: str, model: Path | None):
    if config == "haar":
        from facetracker.haar import HaarDetector

        return HaarDetector()
    if config == "vgg16-predict":
        return NotebookVGG16()
    from facetracker.inference import Detector

    return Detector.load(model)


def warm_up(detector, video: Path) -> None:
    """A live app loads and warms its model once; first calls (tracing, allocation) are not per-frame cost."""
    import cv2

    ok, frame = cv2.VideoCapture(str(video)).read()
    for _ in range(WARMUP):
        detector.detect(frame)


class NotebookVGG16:
    """The notebook's model and per-frame code, timed as it ran: model.predict on one frame at a time."""

    runtime_name = "keras model.predict (notebook)"

    def __init__(self):
        import keras
        from keras import layers

        inputs = layers.Input(shape=(120, 120, 3))
        vgg = keras.applications.VGG16(include_top=False, weights=None)(inputs)
        f1 = layers.GlobalMaxPooling2D()(vgg)
        class_out = layers.Dense(1, activation="sigmoid")(layers.Dense(2048, activation="relu")(f1))
        f2 = layers.GlobalMaxPooling2D()(vgg)
        box_out = layers.Dense(4, activation="sigmoid")(layers.Dense(2048, activation="relu")(f2))
        self.model = keras.Model(inputs=inputs, outputs=[class_out, box_out])

    def detect(self, frame_bgr):
        import cv2
        import numpy as np
        import tensorflow as tf

        from facetracker.inference import Detection

        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        resized = tf.image.resize(rgb, (120, 120))
        score, box = self.model.predict(np.expand_dims(resized / 255, 0), verbose=0)
        h, w = frame_bgr.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box[0])
        return Detection(float(score[0][0]), (x1 * w, y1 * h, x2 * w, y2 * h))


def profile_stages(detector, video: Path, frames: int) -> dict:
    """Mean ms per frame of each stage of the live loop, timed one after the other on the same frames."""
    import cv2
    import numpy as np

    from facetracker.live import _draw_track
    from facetracker.draw import draw_status
    from facetracker.tracking import Tracker

    capture = cv2.VideoCapture(str(video))
    tracker = Tracker()
    totals = dict.fromkeys(("decode", "preprocess", "invoke", "track", "draw"), 0.0)
    inputs = np.empty((1, detector.image_size, detector.image_size, 3), np.float32)
    count = 0
    for _ in range(frames):
        t0 = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        t1 = time.perf_counter()
        detector.preprocess(frame, inputs[0])
        t2 = time.perf_counter()
        scores, boxes = detector.runtime.run(inputs)
        t3 = time.perf_counter()
        box = boxes[0] * [frame.shape[1], frame.shape[0], frame.shape[1], frame.shape[0]]
        track = tracker.update(float(scores[0]), tuple(box))
        t4 = time.perf_counter()
        _draw_track(frame, track)
        draw_status(frame, 100.0)
        t5 = time.perf_counter()
        for stage, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[stage] += seconds
        count += 1
    capture.release()
    return {stage: total / count * 1000 for stage, total in totals.items()}


if __name__ == "__main__":
    main()
