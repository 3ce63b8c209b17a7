"""Speaking styles in Blender: what the panel's Style chooser offers and what the worker gets.

A choice is one of the bundle's training subjects, or a style file (the JSON `talking-head tune`
and the Tune operator write, core/style.py). The style files listed for a bundle are:
- the `.json` files in the bundle folder's `styles/` subfolder (shipped with the bundle);
- the files in the scene's `styles` list (`TalkingHeadSettings.styles`): styles the user added
  with *Add Style File* or tuned with *Tune Style from Clips*. The list holds file paths and is
  saved with the .blend, so a file's styles come back when it is opened again.
Tuned styles are written into the extension's user folder (`styles/`), which survives
reinstalling the extension. Only styles that fit the bundle (core/style.py `Style.check`: its
embedding size, subjects, pivots and fingerprint, read from its files without torch) are offered.

Enum values are stored in .blend files as numbers, so each choice gets a stable number: a
subject its index (0 is the first subject, the default), a style a hash of its path.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bpy

from ..core.style import WEIGHTS, BundleIdentity, Style, TuningError
from ..core.tasks import StyleChoice
from ..core.bundle_info import CONFIG, BundleInfo, read_bundle_info
from ..core.errors import TalkingHeadError
from .choices import bundle_path
from .dependencies import ROOT_PACKAGE

STYLE_PREFIX = "style:"  # enum identifier of a style file: the prefix and the file's path
BUNDLE_STYLES = "styles"  # the bundle's own styles: BUNDLE/styles/*.json
_FIRST_STYLE_NUMBER = 1024  # subjects are numbered 0..S-1, styles from here on


@dataclass(frozen=True)
class StyleEntry:
    """A style file offered for a bundle."""

    path: str
    name: str
    origin: str  # "bundle" (BUNDLE/styles/) or "scene" (added or tuned in this file)

    @property
    def identifier(self) -> str:
        return style_identifier(self.path)


def style_identifier(path: str | Path) -> str:
    return STYLE_PREFIX + _normal(path)


def style_path(identifier: str) -> str | None:
    """The style file of a chooser identifier, None for a subject."""
    return identifier[len(STYLE_PREFIX):] if identifier.startswith(STYLE_PREFIX) else None


def user_styles_folder(create: bool = False) -> Path:
    """Where tuned styles are written: the extension's own user folder, `styles/`."""
    try:
        return Path(bpy.utils.extension_path_user(ROOT_PACKAGE, path="styles", create=create))
    except (ValueError, RuntimeError, AttributeError):  # not running as an extension (scripts, tests)
        return Path(bpy.utils.user_resource("SCRIPTS", path="talking_head/styles", create=create))


def read_style(path: str | Path) -> Style | None:
    """The style in a file, None when it is missing or not a style file (cached by modification time)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return _read_cached(_normal(path), mtime)


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime: int) -> Style | None:
    try:
        return Style.load(path)
    except TuningError:
        return None


def bundle_styles(bundle: str | Path) -> list[str]:
    folder = Path(bundle) / BUNDLE_STYLES
    try:
        return sorted(_normal(p) for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file())
    except OSError:
        return []


def listed_styles(settings, info: BundleInfo) -> list[StyleEntry]:
    """The style files offered for `info`'s bundle: its `styles/` folder, then the scene's list."""
    candidates = [(path, "bundle") for path in bundle_styles(info.path)]
    candidates += [(_normal(bpy.path.abspath(item.filepath)), "scene") for item in settings.styles if item.filepath]
    entries, seen = [], set()
    for path, origin in candidates:
        style = read_style(path)
        if path in seen or style is None or not _fits(style, info):
            continue
        seen.add(path)
        entries.append(StyleEntry(path, style.name, origin))
    return entries


def choice_items(settings) -> list[tuple[str, str, str, str, int]]:
    """EnumProperty items: the bundle's subjects, then its styles (see the module docstring)."""
    try:
        info = read_bundle_info(bundle_path(settings))
    except Exception:  # no bundle chosen yet: offer nothing rather than fail while drawing
        return []
    items = [(name, f"Speaker {name} (trained)", f"Speak like {name}, a person the model was trained on", "USER", index) for index, name in enumerate(info.subjects)]
    for entry in listed_styles(settings, info):
        where = "the model bundle's styles" if entry.origin == "bundle" else "this file's styles"
        number = _FIRST_STYLE_NUMBER + zlib.crc32(entry.identifier.encode()) % (2**31 - 1 - _FIRST_STYLE_NUMBER)
        items.append((entry.identifier, entry.name, f"Tuned style from {where}: {entry.path}", "FUND", number))
    return items


def style_choice(identifier: str, info: BundleInfo, speaking_style: str = "") -> StyleChoice:
    """The worker's form of a chooser value (core/pipeline.py `person_for`); raises TuningError
    when a style file is gone, broken or was tuned for another bundle (BundleError when the
    bundle's weights cannot be read). `speaking_style`, for a style,
    names the subject whose speaking style Gn uses instead of the style's own."""
    path = style_path(identifier)
    if path is None:
        return StyleChoice(subject=identifier if identifier in info.subjects else info.subjects[0])
    style = Style.load(path)
    style.check(_bundle_identity(info), Path(path).name)
    if speaking_style:
        info.config.subject_index(speaking_style)
    return StyleChoice(subject=speaking_style, file=str(path))


def speaking_subject(identifier: str, info: BundleInfo) -> str:
    """The training subject a chooser value speaks like (a style: its `subject`)."""
    path = style_path(identifier)
    if path is None:
        return identifier if identifier in info.subjects else info.subjects[0]
    style = read_style(path)
    return style.subject if style is not None and style.subject in info.subjects else info.subjects[0]


def add_style_file(settings, path: str | Path) -> str:
    """Add a style file to the scene's list (once) and return its chooser identifier; raises
    TuningError when the file is not a style file."""
    path = _normal(bpy.path.abspath(str(path)))
    Style.load(path)  # a clear error now rather than a silently missing entry
    if not any(_normal(bpy.path.abspath(item.filepath)) == path for item in settings.styles):
        settings.styles.add().filepath = path
    return style_identifier(path)


def in_scene_list(settings, identifier: str) -> bool:
    """Whether a chooser value is a style on the scene's list (not one of the bundle's own)."""
    return _list_index(settings, identifier) is not None


def remove_style_file(settings, identifier: str) -> bool:
    """Take a style off the scene's list (the file stays). False if it is not on the list."""
    index = _list_index(settings, identifier)
    if index is None:
        return False
    settings.styles.remove(index)
    return True


def _list_index(settings, identifier: str) -> int | None:
    path = style_path(identifier)
    for index, item in enumerate(settings.styles):
        if path is not None and item.filepath and _normal(bpy.path.abspath(item.filepath)) == path:
            return index
    return None


def save_tuned_style(data: dict, folder: Path | None = None) -> Path:
    """Write a tuned style (the worker's JSON) into the user styles folder under a new name."""
    folder = folder or user_styles_folder(create=True)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", str(data.get("name") or "style")).strip("._") or "style"
    path, number = folder / f"{stem}.json", 2
    while path.exists():
        path, number = folder / f"{stem}-{number}.json", number + 1
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _fits(style: Style, info: BundleInfo) -> bool:
    try:
        style.check(_bundle_identity(info))
    except TalkingHeadError:  # another bundle's style, or a bundle whose weights cannot be read
        return False
    return True


def _bundle_identity(info: BundleInfo) -> BundleIdentity:
    """The bundle's identity for style checks (cached by the modification times of its files)."""
    try:
        stamps = tuple(os.stat(Path(info.path) / name).st_mtime_ns for name in (CONFIG, WEIGHTS))
    except OSError:
        stamps = ()
    return _identity_cached(_normal(info.path), stamps)


@lru_cache(maxsize=8)
def _identity_cached(path: str, stamps: tuple) -> BundleIdentity:
    return BundleIdentity.read(path, read_bundle_info(path).config)


def _normal(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))
