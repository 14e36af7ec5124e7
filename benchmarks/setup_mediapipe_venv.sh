#!/usr/bin/env bash
# The virtualenv benchmarks/blazeface.py runs in: MediaPipe (with BlazeFace inside its wheel) pins a protobuf
# that conflicts with TensorFlow's, so it cannot share .venv. PyPI only, ~1 minute; does nothing when the venv
# already holds these exact requirements.
#   bash benchmarks/setup_mediapipe_venv.sh [VENV_DIR]      (default .venv-mediapipe; PYTHON=python3.11 to choose)
set -euo pipefail
VENV="${1:-.venv-mediapipe}"
PYTHON="${PYTHON:-python3}"  # mediapipe 0.10.21 has wheels for CPython 3.9-3.12
REQUIREMENTS=("mediapipe==0.10.21" "opencv-python-headless" "numpy<2")
STAMP="$VENV/.installed-stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${REQUIREMENTS[*]}" ]; then
    exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${REQUIREMENTS[@]}"
# BlazeFace's models are inside the wheel: loading one proves the venv works without any download.
"$VENV/bin/python" -c "import mediapipe as mp; mp.solutions.face_detection.FaceDetection(model_selection=1).close()"
echo "${REQUIREMENTS[*]}" > "$STAMP"
touch "$STAMP"  # newer than this script, for make
