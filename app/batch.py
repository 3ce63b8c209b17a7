"""Several sound files in one run: `talking-head animate` and `bake` given more than one AUDIO or a
folder (a game's dialogue lines, say).

The inputs are listed and named first (`sound_files`), and every output is checked before the model
loads (`check_output_folder`, `check_not_inputs`): a mistake costs a moment, not a run. Then one
progress bar runs over the files (`run_each`): each file is read and checked in its turn; a file that
fails (unreadable, too short, ...) gets one line and is skipped, the others are written, and the run
ends with a summary line and exit code 2. Outputs are written whole (core/outputs.py), so Ctrl-C
leaves every finished file as it is and no half-written one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core.audio import AUDIO_EXTENSIONS
from ..core.errors import AudioError, TalkingHeadError
from ..core.outputs import OutputError, check_writable_folder

# Suffixes of the single-file outputs: a --out or --blend ending in one of these, with several
# inputs, is a mistake (a file is meant), not a folder's name.
FILE_SUFFIXES = (".npz", ".csv", ".ply", ".obj", ".blend", ".fbx", ".abc", ".png")
# Failed files the summary line names; the others are counted.
SUMMARY_NAMES = 5


@dataclass(frozen=True)
class SoundFile:
    """One input of a run: the sound file, and the name its outputs get, without a suffix and
    relative to the output folder (`line01`; `guard/line01` for a sub-folder's file with --recursive)."""

    path: Path
    name: Path

    def output(self, folder: Path, suffix: str = "") -> Path:
        """FOLDER/NAME.suffix; without a suffix, the folder FOLDER/NAME (one mesh per frame)."""
        return folder / self.name.parent / (self.name.name + suffix)


def several(paths: list[Path]) -> bool:
    """Whether a command line names several inputs: more than one, or a folder."""
    return len(paths) > 1 or any(path.is_dir() for path in paths)


def sound_files(paths: Iterable[Path], recursive: bool = False) -> list[SoundFile]:
    """The sound files the command line names, in its order. A file counts as given (it is read,
    and refused when bad, in its turn); a folder gives its sound files (core/audio.py's extensions,
    any case) sorted by name, leaving out hidden files such as macOS's `._line01.wav`; with
    `recursive` its sub-folders' too, named by their path inside it. Refuses, before anything runs,
    a folder without sound files and two inputs whose outputs would have one name."""
    found: list[SoundFile] = []
    for path in paths:
        if not path.is_dir():
            found.append(SoundFile(path, Path(path.stem)))
            continue
        inside = sorted(_sound_files_in(path, recursive))
        if not inside:
            deeper = "" if recursive or not any(p.is_dir() for p in path.iterdir()) else "; --recursive reads its sub-folders"
            raise AudioError(f"folder {path} holds no sound files (.wav, .flac, .ogg, .mp3, .aiff or another format libsndfile reads){deeper}")
        found += [SoundFile(path / relative, relative.with_suffix("")) for relative in inside]
    _check_distinct_names(found)
    return found


def _sound_files_in(folder: Path, recursive: bool) -> Iterator[Path]:
    """Paths relative to `folder` of its sound files (and its sub-folders', when `recursive`;
    linked folders are not followed, so a link cannot make a loop)."""
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")] if recursive else []
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                yield (Path(root) / name).relative_to(folder)


def _check_distinct_names(files: list[SoundFile]) -> None:
    """Two inputs must not write one output. Names differing only in case count as one: on Windows
    and macOS they are one file."""
    seen: dict[str, SoundFile] = {}
    for file in files:
        key = file.name.as_posix().casefold()
        earlier = seen.setdefault(key, file)
        if earlier is file:
            continue
        if earlier.path.resolve() == file.path.resolve():
            raise OutputError(f"{file.path} is given twice; each sound file is animated once")
        raise OutputError(f"{earlier.path} and {file.path} would write outputs of one name ({file.name}); "
                          "rename one, or run them separately")


def check_output_folder(folder: Path, option: str, suffix: str = "", because: str = "with several inputs") -> None:
    """`option` with several inputs: a folder, where each input writes NAME`suffix`. Refuses a file
    (an existing one, or a name ending in a single output's suffix such as `take.npz`) and a
    folder that cannot be made or written (core/outputs.py). `because`: why a folder is meant."""
    what = f"NAME{suffix}" if suffix else "a folder NAME/ of per-frame meshes"
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder} is a file: {because}, {option} names a folder, where each input writes {what}")
    if not folder.is_dir() and folder.suffix.lower() in FILE_SUFFIXES:
        raise OutputError(f"{option} {folder}: {because}, {option} names a folder, where each input writes {what}, "
                          f"not one {folder.suffix} file")
    check_writable_folder(folder, option)


def check_not_inputs(outputs: Iterable[Path], option: str, inputs: Iterable[tuple[str, Path | str | None]]) -> None:
    """No output names one of the run's inputs ((what, path) pairs): it would be overwritten.
    One set look-up per output, so thousands of files cost no more than a moment."""
    known = {Path(path).resolve(): what for what, path in inputs if path is not None and str(path) != ""}
    for output in outputs:
        what = known.get(output.resolve())
        if what is not None:
            raise OutputError(f"{option}: {output} is the input {what}: it would be overwritten; choose another folder")


def run_each(files: list[SoundFile], work: Callable[[SoundFile], str], verb: str, into: Path) -> int:
    """Run `work(file)` on each file under one progress bar over files (on a terminal; a log gets
    the lines only). `work` makes the file's outputs and returns the line that says so (stdout).
    A `TalkingHeadError` (a sound file that cannot be read, is too short, an output that cannot be
    written, ...) is that file's one line on stderr, and the run goes on; any other exception is a
    bug and stops the run with its traceback. Ctrl-C stops the run with a line that says how far it
    got, and goes on up (the command says `cancelled`); finished files are whole. -> exit code: 0,
    or 2 when a file failed (after a summary line naming them)."""
    from tqdm import tqdm

    failed: list[SoundFile] = []
    written = 0
    bar = tqdm(files, desc=verb, unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        for file in bar:
            try:
                said = work(file)
            except TalkingHeadError as exc:
                failed.append(file)
                bar.write(f"talking-head: skipped {file.path}: {_without_path(str(exc), file.path)}", file=sys.stderr)
                continue
            written += 1
            if said:
                bar.write(said, file=sys.stdout)
    except KeyboardInterrupt:
        bar.close()
        print(f"talking-head: stopped at file {written + len(failed) + 1} of {len(files)}; "
              f"{written} done are whole in {into}, the one under way was not written", file=sys.stderr)
        raise
    finally:
        bar.close()
    print(f"{verb} {written} of {len(files)} sound files into {into}")
    if not failed:
        return 0
    names = ", ".join(str(file.path) for file in failed[:SUMMARY_NAMES])
    if len(failed) > SUMMARY_NAMES:
        names += f" and {len(failed) - SUMMARY_NAMES} more"
    print(f"talking-head: {len(failed)} of {len(files)} files failed: {names}", file=sys.stderr)
    return 2


def _without_path(message: str, path: Path) -> str:
    """A file's error line names the file once: the loader's messages end in ': PATH'."""
    ending = f": {path}"
    return message[: -len(ending)] if message.endswith(ending) and len(message) > len(ending) else message
