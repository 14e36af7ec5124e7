# Every target creates what it needs: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench quality bundle clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	@# albumentations depends on opencv-python-headless, which shares the cv2 folder with the GUI build;
	@# put the GUI build's files back on top so preview windows work (same version, no new download).
	$(PY) -m pip install -q --force-reinstall --no-deps \
		"opencv-python==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opencv-python"))')"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/facetracker demo

test: $(STAMP)
	bash .ci/system-packages
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

bundle: $(STAMP)
	$(PY) benchmarks/train_bundle.py

# BlazeFace, the reference of the quality benchmark, needs its own virtualenv (MediaPipe's protobuf vs TensorFlow's).
MP_VENV := .venv-mediapipe
MP_STAMP := $(MP_VENV)/.installed-stamp

$(MP_STAMP): benchmarks/setup_mediapipe_venv.sh
	PYTHON=$(PYTHON) bash benchmarks/setup_mediapipe_venv.sh $(MP_VENV)

quality: $(STAMP) $(MP_STAMP)
	$(PY) benchmarks/quality.py

clean-venv:
	rm -rf $(VENV)
