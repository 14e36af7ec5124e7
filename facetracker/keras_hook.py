"""Make `keras.models.load_model("facetracker.keras")` work after a plain `import facetracker`.

Keras finds the FaceTracker classes of a saved model only once `facetracker.model` has registered them, and that
module imports TensorFlow (seconds), which `import facetracker` and `facetracker --help` must not do. So the
registration waits for Keras: if Keras is already loaded it happens now; otherwise a finder on sys.meta_path
notices when `keras` or `tensorflow` is first imported and registers right after both have finished loading
(`import tensorflow` loads keras half-way through its own import, so finishing keras alone is not enough).
Only the standard library is imported here.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings

WATCHED = ("keras", "tensorflow")


def register_when_keras_loads() -> None:
    """Register the FaceTracker classes with Keras now if it is loaded, else as soon as it is."""
    if _keras_ready():
        _register()
    elif not any(isinstance(finder, _KerasWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasWatcher())


def _keras_ready(just_loaded: str | None = None) -> bool:
    """Keras is loaded and neither it nor TensorFlow is still executing its import (`just_loaded` has finished:
    its module is still flagged as initialising while the loader returns)."""
    if "keras" not in sys.modules:
        return False
    for name in WATCHED:
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if name != just_loaded and getattr(spec, "_initializing", False):
            return False
    return True


def _register() -> None:
    try:
        import facetracker.model  # noqa: F401  (its decorators register the classes)
    except Exception as exc:  # never break the user's own `import keras` because of ours
        warnings.warn(f"facetracker could not register its Keras classes ({exc.__class__.__name__}: {exc}); "
                      "load models with facetracker.load_model(path) instead", stacklevel=2)


class _KerasWatcher(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find `keras`/`tensorflow` and wraps their loading."""

    def find_spec(self, name, path=None, target=None):
        if name not in WATCHED or name in sys.modules:
            return None
        spec = self._spec_from_other_finders(name, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self._register_after(spec.loader, name)
        return spec

    def _spec_from_other_finders(self, name, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
        return None

    def _register_after(self, loader, name: str) -> None:
        # Shadow exec_module on this loader instance only, so the module keeps its real loader (resources, etc.).
        original = loader.exec_module

        def exec_module(module):
            try:
                original(module)
            finally:
                del loader.exec_module
            if _keras_ready(just_loaded=name):
                self._done()
                _register()

        loader.exec_module = exec_module

    def _done(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
