"""Where results are written: output paths checked before anything runs, files written whole.

The command line checks every output path before it loads a model (a bad `--out` costs a
moment, not an inference): a known kind of file, a folder that exists or can be made and that a
file can really be created in (a write probe, not permission bits), never the input file, never
a folder where a file is meant or a file where a folder is meant.

Files are written under a temporary name in their own folder and renamed into place
(`os.replace` is atomic on one file system): a run that is killed, fails or fills the disk leaves
the earlier file or none, and two runs writing one path at once leave one of the two, whole.
Per-frame meshes are written into a temporary folder and moved in; an earlier take's frames that
the new take does not replace are removed (only files named as we name frames).
Plain Python, no bpy: used by app/ and by anything in core/ that writes a result.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import TalkingHeadError

MESH_SUFFIXES = (".ply", ".obj")
ANIMATE_OUTPUTS = ".npz (arrays), .csv (Live Link Face), .ply or .obj (one mesh per frame), or a folder without a suffix"


class OutputError(TalkingHeadError):
    """An output path that cannot or must not be written, or a write that failed (disk full, ...)."""


# --- checks before anything runs -----------------------------------------------------------------


def check_writable_folder(folder: str | Path, option: str, target: str | Path | None = None) -> None:
    """`folder` (where `option`'s `target` goes) exists or can be made, and a file can be created
    there (probed: the permission bits do not say it for root, read-only mounts or network folders)."""
    folder = Path(folder)
    option = f"{option} {target if target is not None else folder}"
    existing = folder
    while not existing.exists() and existing.parent != existing:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise OutputError(f"{option}: {existing} is a broken link, not a folder")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option}: {existing} is a file, not a folder; choose another place to write")
    try:
        handle, probe = tempfile.mkstemp(prefix=".talking-head-probe-", dir=existing)
    except OSError as exc:
        raise OutputError(f"{option}: cannot write into {existing} ({_reason(exc)}); choose a folder you can write to") from None
    os.close(handle)
    os.unlink(probe)


Inputs = Mapping[str, "str | Path | None"] | Iterable[tuple[str, "str | Path | None"]]


def check_output_file(path: str | Path, suffixes: tuple[str, ...], option: str, inputs: Inputs = ()) -> Path:
    """A file to write: one of `suffixes`, not a folder, not one of `inputs` ({what: path} or
    (what, path) pairs), in a writable folder. -> the path"""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise OutputError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    check_not_input(path, inputs, option)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; name a {suffixes[0]} file")
    check_writable_folder(path.parent, option, path)
    return path


def check_not_input(path: str | Path, inputs: Inputs, option: str) -> None:
    """Refuse an output path that names one of the run's input files ({what: path} or pairs)."""
    path = Path(path)
    for what, source in inputs.items() if isinstance(inputs, Mapping) else inputs:
        if source is None or str(source) == "":
            continue
        source = Path(source)
        same = path.resolve() == source.resolve()
        if not same and path.exists() and source.exists():
            try:
                same = path.samefile(source)
            except OSError:
                same = False
        if same:
            raise OutputError(f"{option} {path} is the input {what}: it would be overwritten; choose another name")


def check_animate_out(out: str | Path, audio: str | Path | None = None) -> str:
    """`talking-head animate --out`: -> "npz", "csv", "meshes" (OUT.ply / OUT.obj: OUT_00000.ply
    next to it) or "folder" (one mesh per frame inside)."""
    out = Path(out)
    suffix = out.suffix.lower()
    check_not_input(out, {"audio file": audio}, "--out")
    if suffix in (".npz", ".csv"):
        check_output_file(out, (suffix,), "--out")
        return suffix[1:]
    if suffix in MESH_SUFFIXES:
        check_writable_folder(out.parent, "--out", out)
        return "meshes"
    if suffix and not out.is_dir():
        raise OutputError(f"--out {out}: unknown kind of output {out.suffix!r}; use {ANIMATE_OUTPUTS}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder: name a folder for one mesh per frame, or OUT.npz, OUT.csv, OUT.ply")
    check_writable_folder(out, "--out")
    return "folder"


# --- writing whole files -------------------------------------------------------------------------


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in `path`'s folder, with its suffix, to write the file to. When the block
    ends without an error it is renamed over `path`; otherwise it is removed and `path` is left as
    it was. OSErrors (a full disk, ...) become one-line OutputErrors."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}.partial-", suffix=path.suffix, dir=path.parent)
        os.close(handle)
    except OSError as exc:
        raise OutputError(_cannot_write(path, exc)) from None
    temporary = Path(name)
    try:
        yield temporary
        _flush_to_disk(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 -> what a plain open would give
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(_cannot_write(path, exc)) from None
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class FrameFiles:
    """Per-frame meshes of one take: FOLDER/frame_00000.ply ..., or OUT_00000.ply ... next to OUT.ply."""

    folder: Path
    stem: str  # "frame_" or "OUT_"
    suffix: str  # ".ply" or ".obj"

    @classmethod
    def of(cls, target: str | Path, mesh_format: str = "ply") -> "FrameFiles":
        target = Path(target)
        if target.suffix.lower() in MESH_SUFFIXES:
            return cls(target.parent, target.stem + "_", target.suffix.lower())
        return cls(target, "frame_", "." + mesh_format)

    def name(self, index: int) -> str:
        return f"{self.stem}{index:05d}{self.suffix}"

    def existing(self) -> list[Path]:
        """Frames of an earlier take at this place: files named as we name them, nothing else.
        In a folder of frames both formats count (the folder is the take); OUT_00000.ply only its own."""
        suffixes = MESH_SUFFIXES if self.stem == "frame_" else (self.suffix,)
        pattern = re.compile(re.escape(self.stem) + r"\d{5,}(" + "|".join(re.escape(s) for s in suffixes) + ")")
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def write_frame_files(files: FrameFiles, count: int, write_one: Callable[[Path, int], None]) -> list[Path]:
    """Write `count` frames with write_one(path, index) into a temporary folder, then move them
    into place: a new folder appears whole (one rename); into an existing folder the frames are
    renamed in one by one, after the earlier take's other frames are removed. A failure while
    writing (a full disk, ...) leaves the earlier frames as they were. -> the frame paths"""
    folder = files.folder
    new_folder = not folder.is_dir()
    was = "the earlier frames are unchanged" if files.existing() else "no frames were written"
    home = folder.parent if new_folder else folder  # the temporary folder lives on the same file system
    try:
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{files.stem}partial-", dir=home))
    except OSError as exc:
        raise OutputError(_cannot_write(folder, exc, was)) from None
    names = [files.name(i) for i in range(count)]
    try:
        for i, name in enumerate(names):
            write_one(staging / name, i)
        if new_folder:
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 -> what mkdir would give
            try:
                os.rename(staging, folder)
                return [folder / name for name in names]
            except OSError as exc:  # another run made the folder meanwhile: move in file by file
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                    raise
        keep = set(names)
        for stale in files.existing():
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        for name in names:
            os.replace(staging / name, folder / name)
    except OSError as exc:
        raise OutputError(_cannot_write(folder, exc, was)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / name for name in names]


def _flush_to_disk(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _cannot_write(path: Path, exc: OSError, was: str | None = None) -> str:
    was = was or ("the earlier file is unchanged" if path.is_file() else "nothing was written there")
    return f"could not write {path}: {_reason(exc)} ({was})"
