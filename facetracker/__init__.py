"""facetracker: collect, label, split, augment, train and run a real-time face tracker.

`import facetracker` stays light (no TensorFlow): the Keras classes are registered once Keras is loaded, so a
saved model also loads with plain `keras.models.load_model` (see facetracker/keras_hook.py).
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow 2.21's oneDNN graph path crashes (segfault) on this project's machines since 2026-12 (a Xeon with
# AMX and AVX512-FP16; DNNL_MAX_CPU_ISA=AVX2 does not avoid it) when a FaceTracker backbone runs as a graph:
# tf.function inference, evaluate, the export checks, and training steps of the blazeface network. Eager calls
# survive, which hides it until the first compiled call. TensorFlow's own kernels run everywhere; the variable only
# counts before TensorFlow loads, so it is set here. An explicit setting in the environment wins.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from facetracker.keras_hook import register_when_keras_loads as _register_when_keras_loads

_register_when_keras_loads()

_LAZY = {"FaceTracker": "facetracker.model", "Detector": "facetracker.inference"}


def load_model(path, unsafe: bool = False):
    """Load a saved FaceTracker `.keras` model (imports TensorFlow), with one clear error for a bad file."""
    from facetracker.model import load_model as load_keras_model

    return load_keras_model(path, unsafe=unsafe)


def __getattr__(name: str):
    # facetracker.FaceTracker / facetracker.Detector import their heavy modules only when first used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facetracker' has no attribute {name!r}")
