"""File helpers: listing images, and writes that never leave a half-written file behind."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facetracker.config import IMAGE_SUFFIXES, JPEG_QUALITY
from facetracker.errors import FacetrackerError


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name. Missing folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacetrackerError("folder not found", folder, "check the path or run the previous step first")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def file_digest(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256: what names or keys a model by its contents, not its path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def ensure_writable_dir(folder: Path) -> Path:
    """Create `folder` if needed and check we can write into it, with one clear error if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacetrackerError(f"cannot create folder ({exc.strerror})", folder, "choose another output path") from None
    # Probe with a real file: os.access says yes to root on a read-only (immutable, ro-mounted...) folder.
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-probe."):
            pass
    except OSError as exc:
        raise FacetrackerError(f"output folder is not writable ({exc.strerror})", folder,
                               "fix its permissions or choose another path") from None
    return folder


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure delete it.

    Readers never see a half-written file, and an interrupted write leaves the old file intact."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; the published file gets the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, obj: object, indent: int | None = 2) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=indent) + "\n").encode())


def write_image_atomic(path: Path, image_bgr, quality: int = JPEG_QUALITY) -> None:
    """Encode with OpenCV (format from the suffix) and write atomically."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if Path(path).suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(Path(path).suffix, image_bgr, params)
    if not ok:
        raise FacetrackerError("could not encode image", path)
    write_bytes_atomic(path, buf.tobytes())


def read_image(path: Path):
    """Decode an image as BGR uint8, or raise FacetrackerError for a missing, corrupt or truncated file."""
    import cv2
    import numpy as np

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise FacetrackerError(f"cannot read image ({exc.strerror})", path) from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None or _is_truncated_jpeg(path, data):
        raise FacetrackerError("corrupt or truncated image", path, "delete or replace the file")
    return image


def _is_truncated_jpeg(path: Path, data) -> bool:
    # OpenCV silently decodes a truncated JPEG with a grey bottom; the missing end-of-image marker gives it away.
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    tail = bytes(data[-16:]).rstrip(b"\x00")
    return not tail.endswith(b"\xff\xd9")


KERAS_ARCHIVE_MEMBERS = ("config.json",)  # what every Keras 3 `.keras` zip holds besides the weights


def check_keras_archive(path: Path) -> Path:
    """Raise one clear error when a `.keras` file is not a complete Keras zip archive (cut-off download or copy);
    any other path is returned as it is.

    Keras itself reports such a file as "File not found", although it exists; this check reads only the zip
    directory and CRCs (a few ms), without TensorFlow."""
    import zipfile

    path = Path(path)
    if path.suffix.lower() != ".keras" or not path.is_file():
        return path  # other formats, and missing files, are reported by the loaders with their own advice
    try:
        problem = _keras_archive_problem(path)
    except (zipfile.BadZipFile, EOFError):
        problem = "it is not a complete zip archive"
    except OSError as exc:
        problem = f"it cannot be read: {exc.strerror or exc}"
    if problem:
        raise FacetrackerError(f"not a valid or complete Keras model file ({problem})", path,
                               "copy or download it again, or re-train it with `facetracker train`")
    return path


def _keras_archive_problem(path: Path) -> str | None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        missing = [name for name in KERAS_ARCHIVE_MEMBERS if name not in archive.namelist()]
        if missing:
            return f"it has no {missing[0]}"
        damaged = archive.testzip()  # first member whose CRC does not match
    return f"{damaged} inside it is damaged" if damaged else None
