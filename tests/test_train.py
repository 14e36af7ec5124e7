"""`facetracker train`: real training steps on real images, checkpoints, resume after Ctrl-C, tf.distribute,
and one-line refusals of bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from augdata import make_aug_data
from conftest import REPO, copy_dataset
from facetracker import config
from facetracker.cli import app
from facetracker.model import FaceTracker, load_model
from facetracker.train import TrainOptions, peak_learning_rate, train

SIZE = 48


def copier(name, limit=None, negatives=None, dest=None):
    return copy_dataset(name, dest, limit=limit, negatives=negatives)


@pytest.fixture(scope="module")
def aug(tmp_path_factory, datasets_dir):
    """aug_data with train (6 real faces + 1 negative, and mirrors: 14 images) and val (2 faces + 1 negative)."""
    return make_aug_data(copier, tmp_path_factory.mktemp("train"), train=6, val=2, negatives=1, size=64)


@pytest.fixture(scope="module")
def trained(aug, tmp_path_factory):
    """One real training run: the same handful of images for 3 epochs x 7 steps."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("run")
    opts = TrainOptions(data=aug, out=root / "models" / "ft.keras", epochs=3, batch_size=2, image_size=SIZE,
                        lr=2e-3, logdir=root / "logs", run_name="test", image_every=3, verbose=0, patience=0)
    return opts, train(opts)


def run_cli(*args: str):
    result = CliRunner().invoke(app, ["train", *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines


def test_training_overfits_a_handful_of_real_images(trained):
    _, result = trained
    history = result.state.history
    assert len(history["loss"]) == 3 and result.state.epoch == 3
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    assert history["box_loss"][-1] < history["box_loss"][0]
    assert {"val_loss", "val_class_loss", "val_box_loss", "val_iou"} <= set(history)


def test_saved_model_reloads_safely_and_predicts(trained, aug):
    opts, result = trained
    model = keras.models.load_model(result.model_path, safe_mode=True)
    assert isinstance(model, FaceTracker) and model.image_size == SIZE and model.backbone_name == "mobilenetv2"
    assert model.preprocessing == "standardize", "from scratch (weights none) the default is per-image standardisation"
    assert getattr(model, "optimizer", None) is None, "the inference model carries no optimizer state"
    image = keras.utils.img_to_array(keras.utils.load_img(sorted((aug / "val" / "images").iterdir())[0],
                                                          target_size=(SIZE, SIZE)))
    score, box = model(image[None], training=False)
    assert score.shape == (1, 1) and box.shape == (1, 4)
    assert result.state.best_epoch >= 1
    assert result.model_path.stat().st_size < 5_000_000


def test_run_writes_loss_curves_checkpoint_and_tensorboard_logs(trained):
    opts, result = trained
    assert result.curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = json.loads((result.model_path.parent / "ft.ckpt" / "state.json").read_text())
    assert state["epoch"] == 3 and state["run_name"] == "test"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for part in ("train", "validation"):
        events = EventAccumulator(str(opts.logdir / "test" / part), size_guidance={"tensors": 0})
        events.Reload()
        tags[part] = set(events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_class_loss", "epoch_box_loss", "epoch_iou", "epoch_learning_rate"} <= tags["train"]
    assert {"epoch_loss", "epoch_iou"} <= tags["validation"]
    assert any(tag.startswith("predictions") for tag in tags["validation"]), "image panel of val predictions"
    assert not list(result.model_path.parent.rglob("*.tmp*")), "atomic writes leave no temp files"


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_it(aug, tmp_path):
    out = tmp_path / "models" / "ft.keras"
    state_file = tmp_path / "models" / "ft.ckpt" / "state.json"
    command = [sys.executable, "-m", "facetracker", "train", "--data", str(aug), "--out", str(out),
               "--epochs", "50", "--batch-size", "4", "--image-size", str(SIZE), "--logdir", str(tmp_path / "logs"),
               "--run-name", "ctrlc", "--patience", "0"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not state_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state_file.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "checkpoint saved" in error_lines[0] and "--resume" in error_lines[0]
    assert "Traceback" not in stderr
    saved = json.loads(state_file.read_text())
    done = saved["epoch"]
    assert 1 <= done < 50 and len(saved["history"]["loss"]) == done
    steps_before = int(load_model(out.parent / "ft.ckpt" / "last.keras", compile=True).optimizer.iterations)

    result = train(TrainOptions(data=aug, out=out, epochs=done + 1, batch_size=4, resume=True, verbose=0,
                                logdir=tmp_path / "logs", image_every=0))
    assert result.state.epoch == done + 1 and result.state.run_name == "ctrlc"
    assert len(result.state.history["loss"]) == done + 1
    resumed = load_model(out.parent / "ft.ckpt" / "last.keras", compile=True)
    assert int(resumed.optimizer.iterations) == steps_before + 4, "optimizer state carried on (14 images / 4)"


def test_mirrored_strategy_on_two_logical_cpus(aug, tmp_path):
    # Logical devices must be configured before TensorFlow initialises, hence a fresh process.
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from facetracker.train import TrainOptions, train
        result = train(TrainOptions(data={str(aug)!r}, out={str(tmp_path / "m.keras")!r}, epochs=1, batch_size=4,
                                    image_size={SIZE}, strategy="mirrored", verbose=0, image_every=1,
                                    logdir={str(tmp_path / "logs")!r}))
        print("REPLICAS", result.replicas, "LOSS", result.state.history["loss"][-1])
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    words = run.stdout.split()
    assert words[words.index("REPLICAS") + 1] == "2"
    assert np.isfinite(float(words[words.index("LOSS") + 1]))
    assert isinstance(load_model(tmp_path / "m.keras"), FaceTracker)


# ---- bad input: one line, non-zero exit ---------------------------------------------------------------------------
def test_missing_aug_data(tmp_path):
    code, lines = run_cli("--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.keras"))
    assert code == 2 and len(lines) == 1
    assert "augmented data folder not found" in lines[0] and "facetracker augment" in lines[0]


def test_empty_split(tmp_path):
    for part in ("train", "val"):
        for sub in ("images", "labels"):
            (tmp_path / "aug" / part / sub).mkdir(parents=True)
    code, lines = run_cli("--data", str(tmp_path / "aug"), "--out", str(tmp_path / "m.keras"))
    assert code == 2 and len(lines) == 1 and "the train split has no images" in lines[0]


def test_labels_not_matching_images(aug, tmp_path):
    broken = tmp_path / "aug"
    import shutil

    shutil.copytree(aug, broken)
    next((broken / "train" / "labels").iterdir()).unlink()
    code, lines = run_cli("--data", str(broken), "--out", str(tmp_path / "m.keras"))
    assert code == 2 and len(lines) == 1 and "have no label" in lines[0]


def test_split_without_faces(aug, tmp_path):
    import shutil

    shutil.copytree(aug, tmp_path / "aug")
    for label in (tmp_path / "aug" / "val" / "labels").glob("*.json"):
        label.write_text(json.dumps({"image": label.stem + ".jpg", "bbox": [0, 0, 0, 0], "class": 0}))
    code, lines = run_cli("--data", str(tmp_path / "aug"), "--out", str(tmp_path / "m.keras"))
    assert code == 2 and len(lines) == 1 and "the val split has no face images" in lines[0]


def test_existing_model_is_not_overwritten(trained, aug):
    _, result = trained
    before = result.model_path.read_bytes()
    code, lines = run_cli("--data", str(aug), "--out", str(result.model_path))
    assert code == 2 and len(lines) == 1 and "model already exists" in lines[0] and "--force" in lines[0]
    assert result.model_path.read_bytes() == before


def test_resume_without_checkpoint(aug, tmp_path):
    code, lines = run_cli("--data", str(aug), "--out", str(tmp_path / "m.keras"), "--resume")
    assert code == 2 and len(lines) == 1 and "nothing to resume" in lines[0]


@pytest.mark.parametrize("flag,value,saved", [("--image-size", "64", str(SIZE)), ("--backbone", "vgg16", "mobilenetv2")])
def test_resume_refuses_a_different_model(trained, aug, flag, value, saved):
    _, result = trained
    code, lines = run_cli("--data", str(aug), "--out", str(result.model_path), "--resume", "--epochs", "9",
                          flag, value)
    assert code == 2 and len(lines) == 1
    assert f"{flag} {value} does not match the checkpoint ({saved})" in lines[0]


@pytest.mark.parametrize("args,message", [
    (("--backbone", "resnet"), "unknown backbone 'resnet'"),
    (("--box-loss", "l1"), "unknown box loss 'l1'"),
    (("--strategy", "tpu"), "unknown strategy 'tpu'"),
    (("--out", "model.h5"), "use an --out ending in .keras"),
    (("--lr", "0"), "not a usable learning rate"),
    (("--preprocessing", "zscore"), "unknown preprocessing 'zscore'"),
])
def test_bad_options(aug, tmp_path, args, message):
    defaults = {"--out": str(tmp_path / "m.keras")}
    pairs = dict(zip(args[::2], args[1::2]))
    argv = ["--data", str(aug), *[x for k, v in {**defaults, **pairs}.items() for x in (k, v)]]
    code, lines = run_cli(*argv)
    assert code == 2 and len(lines) == 1 and message in lines[0]


def test_learning_rate_default_depends_on_the_weights():
    assert peak_learning_rate(TrainOptions(weights="none")) == config.LEARNING_RATE["scratch"]
    assert peak_learning_rate(TrainOptions(weights="imagenet")) == config.LEARNING_RATE["pretrained"]
    assert peak_learning_rate(TrainOptions(weights="imagenet", lr=5e-4)) == 5e-4


@pytest.mark.parametrize("command", [["train", "--data"], ["evaluate", "--data"], ["export", "--format", "tflite",
                                                                                     "--model"]])
def test_tensorflow_commands_fail_with_one_line_on_the_real_stderr(command, tmp_path):
    """In a real process: TensorFlow's C++ start-up notes go straight to fd 2, where CliRunner cannot see them."""
    missing = str(tmp_path / "missing")
    run = subprocess.run([sys.executable, "-m", "facetracker", *command, missing], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and missing in lines[0], run.stderr
