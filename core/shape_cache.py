"""A disk cache of a template's ARKit shapes (core/arkit.py `template_arkit_shapes`).

Why: building the 52 shapes of a paper-size template (BIWI, 23,370 vertices) takes 0.11-0.15 s of
a whole `talking-head animate` run of about 4 s on the 2-core CPU, and gives the same numbers
every time for the same template. The key is a SHA-256 of everything the shapes depend on: the
template's vertices and faces, the bundle's landmark indices, the source of the modules that
build them and the demo head's assets they read, and numpy's version. A changed input or a
changed line of that code is a new key, never a stale answer. Anything that goes wrong with the
cache (unwritable folder, a damaged file) means the shapes are built as before; the cache never
changes what a take contains (tests compare both).

Where: $TALKING_HEAD_CACHE, else $XDG_CACHE_HOME/talking-head, else ~/.cache/talking-head;
TALKING_HEAD_CACHE=off turns it off. Files are safetensors (no pickles).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

_CORE = Path(__file__).resolve().parent
# What the shapes are computed by: a change to any of these files is a new key.
_SOURCES = ("arkit.py", "face_rig.py", "template_head.py", "assets/head.ply", "assets/head.json")
_KEY_VERSION = "arkit-shapes-1"


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is off."""
    chosen = os.environ.get("TALKING_HEAD_CACHE", "")
    if chosen.lower() in ("off", "0", "none"):
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "talking-head"


def shapes_key(vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int] | None) -> str:
    """SHA-256 (hex) of the template, the landmark indices, the code and numpy's version."""
    digest = hashlib.sha256(_KEY_VERSION.encode())
    for array in (np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.int64)):
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(landmarks, sort_keys=True).encode())
    for name in _SOURCES:
        digest.update((_CORE / name).read_bytes())
    digest.update(np.__version__.encode())
    return digest.hexdigest()


def cached_shapes(vertices: np.ndarray, faces: np.ndarray, landmarks: dict[str, int] | None,
                  build: Callable[[], np.ndarray]) -> np.ndarray:
    """The template's (52, V, 3) shapes from the cache, or `build()` (then stored for next time).
    Exceptions from `build` (a template without landmarks) pass through; cache trouble does not."""
    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / f"arkit-{shapes_key(vertices, faces, landmarks)}.safetensors"
    shapes = _read(path, len(vertices))
    if shapes is not None:
        return shapes
    shapes = build()
    _write(path, shapes)
    return shapes


def _read(path: Path, n_vertices: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        from safetensors.numpy import load_file

        shapes = load_file(str(path))["shapes"]
    except Exception:  # noqa: BLE001 - a damaged or foreign file: build the shapes instead
        return None
    if shapes.dtype != np.float32 or shapes.shape[1:] != (n_vertices, 3) or not np.isfinite(shapes).all():
        return None
    return shapes


def _write(path: Path, shapes: np.ndarray) -> None:
    """Atomically (a temporary file renamed over the name), so a reader never sees half a file."""
    try:
        from safetensors.numpy import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        os.close(handle)
        try:
            save_file({"shapes": np.ascontiguousarray(shapes, np.float32)}, temporary)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError:
        pass  # a read-only home or a full disk: no cache, same shapes
