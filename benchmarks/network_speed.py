"""TFLite time of the FaceTracker network itself: the compact network all-dense (bundled until 2026-11-25),
depthwise-separable (config.SEPARABLE), the blazeface backbone (BlazeFace's feature extractor) and blazeface-lite (the
same with a cheap stem).

    .venv/bin/python benchmarks/network_speed.py [--rounds 4] [--calls 10] [--networks dense separable blazeface ...]
                                                 [--frames square 640x480 1280x720]

The networks are built with random weights (the time does not depend on them), exported to TFLite by
facetracker.export, and run by the TFLite runtime `live` uses, with 1 and 2 threads, on 20 real webcam frames
letterboxed as `live` does. Between two calls a 2 MB buffer is copied and the thread sleeps 0.5 ms, as decoding
and drawing do in `live`: a tight loop of calls keeps the weights in cache and the thread pool awake, which `live`
does not. The rounds alternate the networks, and the median of the rounds is reported (the machine's speed drifts).
Training throughput is benchmarks/train_speed.py's; quality is benchmarks/quality.py's (docs/quality.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)

from facetracker.boxes import fitted_input  # noqa: E402


NETWORKS = {  # name -> (build_model options, table label)
    "dense": (dict(preprocessing="standardize", separable=False), "compact, all-dense (the bundled network until 2026-11-25)"),
    "separable": (dict(preprocessing="standardize", separable=True), "compact, depthwise-separable (SEPARABLE = True)"),
    "blazeface": (dict(backbone="blazeface"), "blazeface backbone (BlazeFace's extractor + the same neck and head)"),
    "blazeface-lite": (dict(backbone="blazeface-lite"), "blazeface-lite (the same from stride 4 on, a cheap stem)"),
}


def export_network(name: str, folder: Path, frame: tuple[int, int] | None = None) -> tuple[Path, int]:
    """The network as a .tflite file (its square input, or fitted to frames of `frame` = (width, height))."""
    from facetracker.export import export_model
    from facetracker.model import build_model

    model = build_model(weights=None, **NETWORKS[name][0])
    path = folder / f"{name}.keras"
    model.save(path)
    out = folder / (f"{name}.tflite" if frame is None else f"{name}-{frame[0]}x{frame[1]}.tflite")
    return export_model(path, "tflite", out=out, frame=frame, force=True).path, model.count_params()


def real_inputs(input_size, count: int = 20):
    """Real 640x480 webcam frames letterboxed into an input of `input_size` (a square side or (width, height))."""
    import cv2
    import numpy as np

    from facetracker.inference import FramePreparer

    images = sorted((DATASETS / "webcam-a" / "images").glob("*.jpg"))[:count]
    prepare = FramePreparer(input_size)
    return [prepare(cv2.imread(str(p)))[0].astype(np.float32)[None] for p in images]


def ms_per_call(path: Path, threads: int, inputs: list, calls: int) -> float:
    import numpy as np

    from facetracker.inference import TFLiteRuntime

    runtime = TFLiteRuntime(path, threads)
    other_work = np.random.default_rng(0).integers(0, 255, 2 * 1024 * 1024, dtype=np.uint8)
    scratch = np.empty_like(other_work)
    for x in inputs:  # warm-up
        runtime.run(x)
    total = 0.0
    for _ in range(calls):
        for x in inputs:
            np.copyto(scratch, other_work)
            time.sleep(0.0005)
            start = time.perf_counter()
            runtime.run(x)
            total += time.perf_counter() - start
    return total / (calls * len(inputs)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=10, help="passes over the 20 frames per round")
    parser.add_argument("--networks", nargs="+", choices=tuple(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--frames", nargs="+", default=["square"],
                        help="square (192 x 192) and/or WIDTHxHEIGHT: the input fitted to such frames, as `live` "
                             "runs it (facetracker.model.fitted)")
    args = parser.parse_args()
    require_datasets("webcam-a")
    from facetracker.errors import FacetrackerError
    from facetracker.export import parse_frame_size

    try:
        frames = {text: None if text == "square" else parse_frame_size(text) for text in args.frames}
    except FacetrackerError as error:
        sys.exit(f"error: {error}")
    with tempfile.TemporaryDirectory(prefix="network-speed-") as tmp:
        networks = {(name, text): export_network(name, Path(tmp), frame)
                    for name in args.networks for text, frame in frames.items()}
        inputs = {text: real_inputs(192 if frame is None else fitted_input(*frame, 192))
                  for text, frame in frames.items()}
        times = {(key, t): [] for key in networks for t in (1, 2)}
        for _ in range(args.rounds):
            for key, (path, _) in networks.items():
                for threads in (1, 2):
                    times[key, threads].append(ms_per_call(path, threads, inputs[key[1]], args.calls))
    print(f"`.venv/bin/python benchmarks/network_speed.py --rounds {args.rounds} --calls {args.calls} "
          f"--networks {' '.join(args.networks)} --frames {' '.join(args.frames)}`, load average "
          f"{os.getloadavg()[0]:.2f} after\n")
    print("| network | input | parameters | TFLite ms per frame, 1 thread | 2 threads |")
    print("|---|---|---:|---:|---:|")
    for (name, text), (_, params) in networks.items():
        size = "192 x 192" if frames[text] is None else "{} x {} ({} frames)".format(*fitted_input(*frames[text], 192),
                                                                                    text)
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
                 for v in (times[(name, text), 1], times[(name, text), 2])]
        print(f"| {NETWORKS[name][1]} | {size} | {params:,} | {cells[0]} | {cells[1]} |")
    print("\nmedian of the rounds (lowest-highest)")


if __name__ == "__main__":
    main()
