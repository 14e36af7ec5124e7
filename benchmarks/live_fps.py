"""Live tracking speed, end to end, on a real video of two people: decode -> preprocess -> model -> tracker -> draw.

    .venv/bin/python benchmarks/live_fps.py [--model PATH] [--frames 300] [--size 640x480] [--detections truth]
                                            [--only CONFIG ...] [--rounds N] [--json]

Composes a 300-frame mp4v video (30 FPS) of two real people of ../shared/datasets crossing over a real room
(facetracker.demo.crossing_routes, as benchmarks/tracking_quality.py), then runs each configuration in its own
subprocess (so peak memory, ru_maxrss, is per configuration and nothing is shared or warmed across them):

  decode only          cv2.VideoCapture.read() in a loop: the ceiling for any tracker on this file
  default .keras       `facetracker live` loop (run_live, headless) with Detector on the model: compiled tf.function
  default .tflite      same, the model exported by facetracker.export (TFLite interpreter, XNNPACK)
  .tflite fitted       same, the export fitted to the clip's frames (what `live` runs for the bundled model), with
                       live's detection workers (config.LIVE_DETECT_WORKERS one-thread copies run the next frames)
  fitted, serial       same file, `--workers 1`: the loop runs one interpreter on config.INFERENCE_THREADS threads
  .tflite + --record   same, also recording the annotated video (mp4v, encoded in its own thread)
  .tflite, 1 thread    same, the TFLite interpreter on one thread instead of config.INFERENCE_THREADS
  default .onnx        same, exported to ONNX (onnxruntime)
  notebook VGG16       the notebook's per-frame code: cv2 -> tf.image.resize -> /255 -> model.predict, VGG16 120 px
                       with its Dense(2048) heads (untrained: speed does not depend on the weights)
  Haar cascade         OpenCV's haarcascade_frontalface_default in the same live loop: the classic reference

--detections truth: the model still runs on every frame (same cost), but the tracker is handed the clip's true boxes
plus noise instead of the model's detections, so two faces are tracked whatever the model finds (for a model that
does not find these people, or an untrained one timed for its architecture). The "faces" column says how many
faces were shown per frame on average.

--rounds N runs the configurations N times, interleaved (decode, model, decode, model, ...), and reports for each
the run of median FPS and, as "x decode", the median of each round's ratio to that round's decode-only run: this
machine's speed drifts by up to 2x within minutes, so a single decode-only run is a noisy yardstick.

For the facetracker runtimes it also times each stage alone, frame by frame without the reader thread, to show where
the time goes. The load average before and after is printed: other processes on the machine slow everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from shared_data import require_datasets  # noqa: E402  (benchmarks/shared_data.py)
SIZE = (640, 480)
WARMUP = 10
SLOW_FRAMES = {"vgg16-predict": 60, "haar": 100}  # seconds per run stay reasonable; FPS is a rate anyway
CONFIGS = ("decode", "keras", "tflite", "tflite-fitted", "tflite-serial", "tflite-record", "tflite-1thread", "onnx",
           "vgg16-predict", "haar")
LABELS = {"decode": "decode only (cv2.VideoCapture.read)", "keras": "default model, .keras via tf.function",
          "tflite": "default model, .tflite (TFLite interpreter)",
          "tflite-fitted": "default model, .tflite fitted to the frames (`export --frame`; what `live` runs)",
          "tflite-serial": "default model, .tflite fitted to the frames, --workers 1 (the model in the loop)",
          "tflite-record": "default model, .tflite fitted to the frames, --record out.mp4",
          "tflite-1thread": "default model, .tflite, one inference thread",
          "onnx": "default model, .onnx (onnxruntime)",
          "vgg16-predict": "notebook VGG16 120 px, model.predict per frame", "haar": "OpenCV Haar cascade"}
MODEL_CONFIGS = ("keras", "tflite", "tflite-fitted", "tflite-serial", "tflite-record", "tflite-1thread", "onnx")
TFLITE_CONFIGS = ("tflite", "tflite-1thread")  # both run the same square .tflite file
FITTED_CONFIGS = ("tflite-fitted", "tflite-serial", "tflite-record")  # the .tflite fitted to the frames, as `live` runs
SERIAL_CONFIGS = ("tflite-serial", "tflite-1thread")  # the model in the loop (live --workers 1), not in workers


# ---------------------------------------------------------------- the parent: build inputs, run workers, report


def build_video(path: Path, frames: int, size: tuple[int, int] = SIZE) -> Path:
    """Two real people crossing (benchmarks/tracking_quality.py's clip) as an mp4v video at 30 FPS; the true boxes
    plus noise are written beside it (<video>.truth.json) for --detections truth."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from tracking_quality import BACKGROUND, PEOPLE, compose

    from facetracker.demo import detections_from_truth

    require_datasets(*PEOPLE, BACKGROUND)  # the sets the clip is composed from

    clip, truth = compose(path.parent, size, frames)
    clip.replace(path.with_suffix(".avi"))
    # Re-encode as mp4v, the codec of a typical recorded clip (MJPG decodes at a different speed).
    import cv2

    capture, writer = cv2.VideoCapture(str(path.with_suffix(".avi"))), None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer = writer or cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
        writer.write(frame)
    capture.release()
    writer.release()
    path.with_suffix(".truth.json").write_text(json.dumps(detections_from_truth(truth, seed=0, size=size)))
    return path


def worker(config: str, video: Path, model: Path | None, frames: int, truth: bool) -> dict:
    command = [sys.executable, __file__, "--worker", config, "--video", str(video), "--frames", str(frames)]
    if model is not None:
        command += ["--model", str(model)]
    if truth:
        command += ["--detections", "truth"]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"config": config, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def export(model: Path, folder: Path, frame: tuple[int, int]) -> dict[str, Path]:
    """The .tflite and .onnx files of `model`, and its .tflite fitted to `frame` (what `live` runs for the bundled
    model), written by facetracker.export in a subprocess."""
    code = ("import sys, json; from pathlib import Path; from facetracker.export import export_model\n"
            "model, folder, frame = Path(sys.argv[1]), Path(sys.argv[2]), (int(sys.argv[3]), int(sys.argv[4]))\n"
            "out = {f: str(export_model(model, f, out=folder / ('model.' + f)).path) for f in ('tflite', 'onnx')}\n"
            "fitted = export_model(model, 'tflite', out=folder / 'fitted.tflite', frame=frame)\n"
            "out['tflite-fitted'] = str(fitted.path)\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code, str(model), str(folder), *map(str, frame)],
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        sys.exit(f"export failed: {done.stderr.strip().splitlines()[-1]}")
    return {k: Path(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def median_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One row per configuration from several interleaved rounds: the round with the median FPS, its "x decode" the
    median of the rounds' own ratios (each model run against the decode-only run of the same round), and every
    round's FPS. The machine's speed drifts by 2x within minutes, so one round can flatter or wrong either side."""
    decodes = [next((r for r in results if r["config"] == "decode" and "fps" in r), None) for results in rounds]
    merged = []
    for runs in zip(*rounds):
        ok = sorted((r for r in runs if "fps" in r), key=lambda r: r["fps"])
        if not ok:
            merged.append(runs[0])
            continue
        ratios = [r["fps"] / d["fps"] for r, d in zip(runs, decodes) if "fps" in r and d]
        merged.append({**ok[len(ok) // 2], "ratio": statistics.median(ratios) if ratios else None,
                       "fps_rounds": [round(r["fps"]) for r in runs if "fps" in r]})
    return merged


def report(results: list[dict], load: tuple, command: str) -> str:
    decode = next((r["fps"] for r in results if r["config"] == "decode" and "fps" in r), None)
    rounds = len(results[0].get("fps_rounds", [])) if results else 0
    rows = ["| configuration | FPS | x decode | p50 ms | p95 ms | CPU ms/frame | faces | peak RSS MB | frames |"
            + (" FPS of each round |" if rounds > 1 else ""),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---|" if rounds > 1 else "")]
    for r in results:
        if "error" in r:
            rows.append(f"| {LABELS[r['config']]} | failed: {r['error']} | | | | | | | |")
            continue
        ratio = r.get("ratio", r["fps"] / decode if decode else None)
        ratio = f"{ratio:.2f}" if ratio is not None else "-"
        faces = f"{r['faces']:.2f}" if "faces" in r else "-"
        each = f" {', '.join(map(str, r['fps_rounds']))} |" if rounds > 1 else ""
        rows.append(f"| {LABELS[r['config']]} | {r['fps']:.0f} | {ratio} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
                    f"| {r.get('cpu_ms', 0):.2f} | {faces} | {r['maxrss_mb']:.0f} | {r['frames']} |{each}")
    profile = ["", "Per stage, ms per frame, each stage timed alone (no reader thread; encode is what --record adds "
               "on its own thread):", "",
               "| runtime | decode | resize+RGB | invoke | to detections | tracker | draw | sum | FPS if sequential "
               "| encode |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p = r.get("profile")
        if p:
            total = sum(v for k, v in p.items() if k != "encode")
            profile.append(f"| {r['config']} | {p['decode']:.3f} | {p['preprocess']:.3f} | {p['invoke']:.3f} "
                           f"| {p['detections']:.3f} | {p['track']:.3f} | {p['draw']:.3f} | {total:.3f} "
                           f"| {1000 / total:.0f} | {p['encode']:.3f} |")
    machine = (f"load average before {load[0]:.2f}, after {load[1]:.2f} on {os.cpu_count()} cores (the run itself "
               "adds about 1; a load above ~0.5 before means other processes were competing for the CPU)")
    return "\n".join([f"`{command}`", "", *rows, *profile, "", machine])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: the model bundled in the package")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default=f"{SIZE[0]}x{SIZE[1]}", help="frame size WxH of the clip")
    parser.add_argument("--detections", choices=("model", "truth"), default="model",
                        help="truth: the model runs, but the tracker gets the true boxes plus noise")
    parser.add_argument("--only", nargs="*", choices=CONFIGS, help="run only these configurations")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the configurations this many times, interleaved; report medians")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON lines too")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    truth = args.detections == "truth"
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.video, args.model, args.frames, truth)))
        return

    from facetracker.inference import bundled_model_path

    model = args.model or bundled_model_path()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    command = "python benchmarks/live_fps.py" + (f" --model {args.model}" if args.model else "") + \
              (f" --frames {args.frames}" if args.frames != 300 else "") + \
              (f" --size {args.size}" if size != SIZE else "") + (" --detections truth" if truth else "") + \
              (f" --only {' '.join(args.only)}" if args.only else "") + \
              (f" --rounds {args.rounds}" if args.rounds > 1 else "")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="live-fps-") as tmp:
        video = build_video(Path(tmp) / "two-people.mp4", args.frames, size)
        configs = args.only or CONFIGS
        exported = export(model, Path(tmp), size) if (set(MODEL_CONFIGS) - {"keras"}) & set(configs) else {}
        models = {"keras": model, **{name: exported.get("tflite") for name in TFLITE_CONFIGS},
                  **{name: exported.get("tflite-fitted") for name in FITTED_CONFIGS}, "onnx": exported.get("onnx")}
        rounds = []
        for _ in range(max(1, args.rounds)):
            rounds.append([])
            for config in configs:
                result = worker(config, video, models.get(config), args.frames, truth and config in MODEL_CONFIGS)
                rounds[-1].append(result)
                print(f"{config}: {json.dumps(result) if args.json else result.get('fps', result.get('error'))}",
                      file=sys.stderr)
    results = median_rounds(rounds) if len(rounds) > 1 else rounds[0]
    print(report(results, (load_before, os.getloadavg()[0]), command))


# ---------------------------------------------------------------- the workers (one configuration per process)


def run_worker(config: str, video: Path, model: Path | None, frames: int, truth: bool = False) -> dict:
    if config == "decode":
        result = decode_only(video, frames)
    else:
        detector = make_detector(config, model)
        warm_up(detector, video)
        from facetracker.config import LIVE_DETECT_WORKERS
        from facetracker.live import run_live

        live_detector = TruthAfterModel(detector, video) if truth else detector
        record = video.with_name("recorded.mp4") if config == "tflite-record" else None
        before = cpu_seconds()
        # --detections truth replays the boxes frame by frame in the loop: it cannot run in detection workers.
        workers = 1 if config in SERIAL_CONFIGS or truth else LIVE_DETECT_WORKERS
        stats = run_live(video, detector=live_detector, show=False, max_frames=SLOW_FRAMES.get(config, frames),
                         record=record, force=True, workers=workers)
        result = {"fps": stats.fps, "p50_ms": stats.latency_p50_ms, "p95_ms": stats.latency_p95_ms,
                  "frames": stats.frames, "cpu_ms": (cpu_seconds() - before) / max(1, stats.frames) * 1000,
                  "faces": stats.face_boxes / max(1, stats.frames),
                  "tracks_seen": stats.tracks_seen, "workers": stats.workers}
        if record is not None:
            result["recorded_frames"] = stats.recorded_frames
        if config in ("keras", "tflite", "tflite-fitted", "tflite-serial", "onnx"):
            result["profile"] = profile_stages(detector, video, min(frames, 200), truth)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    return {"config": config, **result, "maxrss_mb": peak_kb / 1024}


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: what a frame costs whatever else runs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_only(video: Path, frames: int) -> dict:
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(video))
    times = []
    cpu = cpu_seconds()
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
    return {"fps": len(times) / seconds, "p50_ms": float(p50), "p95_ms": float(p95), "frames": len(times),
            "cpu_ms": (cpu_seconds() - cpu) / max(1, len(times)) * 1000}


class TruthAfterModel:
    """--detections truth: run the model on the frame (its whole cost), then hand the tracker the frame's true boxes
    plus noise (written by build_video) instead of what the model found."""

    def __init__(self, detector, video: Path):
        self.detector, self.runtime_name = detector, detector.runtime_name
        self.per_frame = json.loads(video.with_suffix(".truth.json").read_text())
        self.calls = 0

    def detect(self, frame, min_score: float = 0.0):
        from facetracker.inference import Detection

        self.detector.detect(frame, min_score=min_score)
        if not frame.any():  # the live loop's black warm-up frames
            return []
        found = self.per_frame[self.calls % len(self.per_frame)]
        self.calls += 1
        return [Detection(score, tuple(box)) for score, box in found]


def make_detector(config: str, model: Path | None):
    if config == "haar":
        from facetracker.haar import HaarDetector

        return HaarDetector()
    if config == "vgg16-predict":
        return NotebookVGG16()
    from facetracker.inference import Detector

    if config == "tflite-1thread":
        return Detector.load(model, threads=1)
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


def profile_stages(detector, video: Path, frames: int, truth: bool = False) -> dict:
    """Mean ms per frame of each stage of the live loop, timed one after the other on the same frames."""
    import cv2
    import numpy as np

    from facetracker import config
    from facetracker.draw import draw_status, draw_tracks
    from facetracker.inference import Detection, to_detections
    from facetracker.tracking import Tracker

    capture = cv2.VideoCapture(str(video))
    tracker = Tracker()
    replay = json.loads(video.with_suffix(".truth.json").read_text()) if truth else None
    totals = dict.fromkeys(("decode", "preprocess", "invoke", "detections", "track", "draw", "encode"), 0.0)
    inputs = np.empty((1, detector.input_size[1], detector.input_size[0], 3), np.float32)
    prepare = detector.preparer()
    writer = None
    count = 0
    for i in range(frames):
        t0 = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        t1 = time.perf_counter()
        pixels, layout = prepare(frame)
        inputs[0] = pixels
        t2 = time.perf_counter()
        scores, boxes = detector.runtime.run(inputs)
        t3 = time.perf_counter()
        found = to_detections(scores[0], boxes[0], layout, config.TRACK_LOW_SCORE)
        if replay is not None:
            found = [Detection(score, tuple(box)) for score, box in replay[i % len(replay)]]
        t4 = time.perf_counter()
        tracks = tracker.update(found)
        t5 = time.perf_counter()
        draw_tracks(frame, tracks, max((d.score for d in found), default=0.0))
        draw_status(frame, 100.0)
        t6 = time.perf_counter()
        if writer is None:
            writer = cv2.VideoWriter(str(video.with_name("profile.mp4")), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                                     (frame.shape[1], frame.shape[0]))
        writer.write(frame)
        t7 = time.perf_counter()
        for stage, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
            totals[stage] += seconds
        count += 1
    capture.release()
    if writer is not None:
        writer.release()
    return {stage: total / count * 1000 for stage, total in totals.items()}


if __name__ == "__main__":
    main()
