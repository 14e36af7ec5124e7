"""`facetracker train --strategy multiworker` for real: two worker processes on 127.0.0.1, a cluster described by
TF_CONFIG, MultiWorkerMirroredStrategy, a few real training steps each on real images, and the same weights at the
end (every gradient all-reduced over both workers; the fine-tuned model's BatchNorm statistics are frozen, so
nothing is per worker)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from augdata import make_aug_data
from conftest import REPO, copy_dataset

STEPS, EPOCHS, BATCH = 3, 1, 4  # 10 train images: 3 steps of 4 (2 per worker) make an epoch
TIMEOUT = 240  # seconds for both workers; a run takes ~30-60 s on 2 busy cores

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from facetracker.train import TrainOptions, train

    data, start, out, logdir, weights_out, steps, epochs, batch = sys.argv[1:9]
    result = train(TrainOptions(data=data, out=out, weights=start, epochs=int(epochs), batch_size=int(batch),
                                steps_per_epoch=int(steps), strategy="multiworker", logdir=logdir, run_name="mw",
                                verbose=0, image_every=0, patience=0, cache=False))
    weights = [np.asarray(w) for w in result.model.get_weights()]
    np.savez(weights_out, *weights)
    from facetracker.model import load_model
    moved = sum(not np.array_equal(a, b) for a, b in zip(load_model(start).get_weights(), weights))
    print("REPLICAS", result.replicas, "STEPS", int(result.model.optimizer.iterations.value.numpy()),
          "LOSS", result.state.history["loss"][-1], "MOVED", moved, flush=True)
""")


def free_ports(count: int) -> list[int]:
    """Ports the OS hands out as free right now (held open together so they differ, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def aug(tmp_path_factory, datasets_dir):
    return make_aug_data(lambda name, limit=None, negatives=None, dest=None: copy_dataset(name, dest, limit, negatives),
                         tmp_path_factory.mktemp("mw"), train=4, val=2, negatives=1, size=64)


@pytest.fixture(scope="module")
def start_model(tmp_path_factory):
    """A small FaceTracker file to fine-tune, what `--weights PATH` takes (the default start is the bundled model)."""
    from facetracker.model import build_model

    path = tmp_path_factory.mktemp("mw-start") / "start.keras"
    build_model(image_size=64, width=8, neck_channels=16).save(path)
    return path


def run_workers(aug, start_model, root, ports):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs = []
    for index in range(len(ports)):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
        args = [str(aug), str(start_model), str(root / f"w{index}" / "m.keras"), str(root / f"w{index}" / "logs"),
                str(root / f"w{index}.npz"), str(STEPS), str(EPOCHS), str(BATCH)]
        (root / f"w{index}").mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, *args], cwd=REPO, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    deadline = time.monotonic() + TIMEOUT
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            outputs.append(proc.communicate())
            report = "\n".join(f"--- worker {i}: rc {p.returncode}\n{out[1][-2500:]}"
                               for i, (p, out) in enumerate(zip(procs, outputs)))
            pytest.fail(f"the two workers did not finish within {TIMEOUT} s (a collective op waiting forever?)\n"
                        f"{report}")
    return procs, outputs


def test_two_workers_train_together_and_end_with_the_same_weights(aug, start_model, tmp_path):
    started = time.monotonic()
    procs, outputs = run_workers(aug, start_model, tmp_path, free_ports(2))
    if any(p.returncode for p in procs) and any("Address already in use" in err for _, err in outputs):
        tmp_path = tmp_path / "again"  # a port was taken between picking it and the worker binding it
        procs, outputs = run_workers(aug, start_model, tmp_path, free_ports(2))
    for index, (proc, (stdout, stderr)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {index} failed (rc {proc.returncode}):\n{stderr[-4000:]}"
        words = stdout.split()
        assert words[words.index("REPLICAS") + 1] == "2", "both workers in one cluster"
        assert words[words.index("STEPS") + 1] == str(STEPS * EPOCHS), "every step taken"
        assert np.isfinite(float(words[words.index("LOSS") + 1]))
        assert int(words[words.index("MOVED") + 1]) > 0, "the weights moved away from the starting model"
    first, second = (np.load(tmp_path / f"w{i}.npz") for i in (0, 1))
    assert len(first.files) == len(second.files) > 0
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=f"weight {name} differs between workers")
    # Only the chief (worker 0) writes the model and the checkpoint; the other worker leaves its --out alone.
    assert (tmp_path / "w0" / "m.keras").is_file() and (tmp_path / "w0" / "m.ckpt" / "state.json").is_file()
    assert not (tmp_path / "w1" / "m.keras").exists()
    print(f"two workers: {time.monotonic() - started:.0f} s")
