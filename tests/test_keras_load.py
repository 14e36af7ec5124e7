"""A saved model loads in plain Keras after `import facetracker`, which itself never imports TensorFlow.

Every check runs in a fresh Python process: what matters is which modules are imported, and in which order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import facetracker
from facetracker import config
from facetracker.errors import FacetrackerError

BUNDLED = Path(facetracker.__file__).parent / "assets" / config.BUNDLED_MODEL_NAME  # whichever model is bundled


def run_python(code: str, timeout: float = 180) -> str:
    """Run `code` in a fresh interpreter; return its last stdout line (fails with its stderr when it fails)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_import_facetracker_does_not_import_tensorflow():
    assert run_python("""
        import sys, facetracker
        print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))""") == "[]"


def test_help_does_not_import_tensorflow():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "facetracker", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "train" in result.stdout, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "facetracker.cli" in imported
    assert not {"tensorflow", "keras", "facetracker.model"} & imported


IMPORT_ORDERS = {
    "facetracker, then keras": "import facetracker\nimport keras",
    "facetracker, then tensorflow's keras": "import facetracker\nimport tensorflow as tf\nkeras = tf.keras",
    "keras, then facetracker": "import keras\nimport facetracker",
}


@pytest.mark.parametrize("imports", IMPORT_ORDERS.values(), ids=IMPORT_ORDERS.keys())
def test_bundled_model_loads_with_plain_keras(imports):
    assert BUNDLED.is_file()
    out = run_python(imports + f"""
model = keras.models.load_model({str(BUNDLED)!r})
assert isinstance(model, facetracker.FaceTracker)
print(type(model).__name__)""")
    assert out == "FaceTracker"


def test_model_saved_here_loads_with_plain_keras_and_gives_the_same_outputs(tmp_path, datasets_dir):
    import cv2
    import keras

    from facetracker.model import build_model

    model = build_model(image_size=64, weights=None)
    image = cv2.imread(str(sorted((datasets_dir / "webcam-a" / "images").glob("*.jpg"))[0]))
    pixels = cv2.cvtColor(cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    batch = pixels[None].astype(np.float32)
    expected = [np.asarray(x) for x in keras.tree.flatten(model(batch))]
    path = tmp_path / "saved-here.keras"
    model.save(path)
    np.save(tmp_path / "batch.npy", batch)

    out = run_python(f"""
        import json, facetracker, keras, numpy as np
        model = keras.models.load_model({str(path)!r})
        outputs = keras.tree.flatten(model(np.load({str(tmp_path / "batch.npy")!r})))
        again = facetracker.load_model({str(path)!r})  # the same through facetracker's own loader
        assert type(again) is type(model)
        print(json.dumps([np.asarray(x).tolist() for x in outputs]))""")
    loaded = [np.asarray(x) for x in json.loads(out)]
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_load_model_of_a_cut_off_file_is_one_clear_error(tmp_path):
    cut = tmp_path / "cut.keras"
    cut.write_bytes(BUNDLED.read_bytes()[:100_000])
    with pytest.raises(FacetrackerError, match="not a valid or complete Keras model file"):
        facetracker.load_model(cut)


def test_lazy_attributes_import_their_module_only_when_used():
    from facetracker.inference import Detector

    assert facetracker.Detector is Detector
    with pytest.raises(AttributeError, match="no_such_thing"):
        facetracker.no_such_thing  # noqa: B018
