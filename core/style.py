"""A tuned speaking style (METHOD.md section 9) as a file: plain Python and numpy, no torch, so
that Blender can list and check style files without loading the model.

A style file is checked twice: on load for what it says on its own (the schema, finite numbers,
alpha on the simplex), and against a bundle (`BundleIdentity`) for whether it belongs to it:
the embedding width, the subjects, a sane size of `p` next to the pivots, and the bundle's
fingerprint, which `tune` records."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelConfig
from .errors import BundleError, TalkingHeadError

MAX_DURATION_MISMATCH_S = 0.5
MIN_CLIPS = 2  # one clip is held out to stop early
MODES = ("convex", "direct")
# alpha lies on the simplex: each weight >= -ALPHA_TOLERANCE and |sum - 1| <= SUM_TOLERANCE.
# Tuning projects alpha exactly and JSON keeps 17 digits, so these only absorb hand-rounding.
ALPHA_TOLERANCE = 1e-6
SUM_TOLERANCE = 1e-3
# |p| bounds. Against a bundle: a convex style's p is in the pivots' hull (|p| <= the largest
# pivot's norm); a direct one starts there and moves by at most lr per coordinate per Adam step
# (tune's 150 steps x 0.005: at most 0.75 sqrt(d), about 4x the demo bundle's pivots). 100x the
# largest pivot leaves room for other tuning settings and still refuses nonsense. Without a
# bundle (loading the file alone), 1e6: no trained embedding is near it.
MAX_P_PER_PIVOT = 100.0
MAX_P_NORM = 1e6
# A style without a fingerprint (written before tune recorded one) whose p is alpha times the
# pivots within this fraction of the largest pivot's norm was tuned for these pivots (float16
# packing moves a pivot by about 5e-4 of its norm; another bundle's pivots by far more).
LEGACY_MATCH_TOLERANCE = 1e-2
# The pivots p_1..p_S in model.safetensors: the emotion stage's W_p (d, S), core/model.py.
PIVOTS_TENSOR = "emotion.person_in.weight"
WEIGHTS = "model.safetensors"


class TuningError(TalkingHeadError):
    """Clips that cannot be used for tuning (too few, wrong vertex count, wrong duration), or a
    style file that cannot be used."""


@dataclass(frozen=True)
class BundleIdentity:
    """What a style is checked against: the bundle's embedding width, subjects, pivots (S, d)
    (None: a bundle without an emotion stage) and fingerprint (`bundle_fingerprint`)."""

    d_model: int
    subjects: tuple[str, ...]
    pivots: np.ndarray | None
    fingerprint: str

    @classmethod
    def of(cls, config: ModelConfig, pivots: np.ndarray | None) -> "BundleIdentity":
        if pivots is not None:
            pivots = np.asarray(pivots, np.float32).reshape(len(config.subjects), config.d_model)
        return cls(config.d_model, tuple(config.subjects), pivots, bundle_fingerprint(config, pivots))

    @classmethod
    def read(cls, bundle_dir: str | Path, config: ModelConfig) -> "BundleIdentity":
        """The identity of a bundle folder without torch: the pivots are read straight from its
        model.safetensors (for Blender, which lists styles without loading the model)."""
        return cls.of(config, read_pivots(Path(bundle_dir) / WEIGHTS, config))


def bundle_fingerprint(config: ModelConfig, pivots: np.ndarray | None) -> str:
    """What identifies a bundle to its styles: a hash of its vertex count, embedding width,
    subject names and pivots, rounded to float16 so that `bundle pack` (float16 weights) keeps
    it. Moving, renaming or re-describing the bundle keeps it too; retraining changes it."""
    digest = hashlib.sha256(json.dumps([config.n_vertices, config.d_model, list(config.subjects)]).encode())
    if pivots is not None:
        digest.update(np.ascontiguousarray(np.asarray(pivots, np.float32).astype("<f2")).tobytes())
    return digest.hexdigest()[:16]


def read_pivots(weights: Path, config: ModelConfig) -> np.ndarray | None:
    """The pivots (S, d) float32 from a safetensors file, read with numpy (8-byte header length,
    JSON header, raw little-endian data); None when the bundle has no emotion stage."""
    kinds = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}
    try:
        with open(weights, "rb") as file:
            size = int.from_bytes(file.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError("bad header size")
            entry = json.loads(file.read(size)).get(PIVOTS_TENSOR)
            if entry is None:
                return None
            begin, end = entry["data_offsets"]
            file.seek(8 + size + begin)
            raw = np.frombuffer(file.read(end - begin), kinds[entry["dtype"]])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"cannot read the pivots from {weights}: {exc}") from None
    if entry["dtype"] == "BF16":
        raw = (raw.astype("<u4") << 16).view("<f4")
    if raw.size != config.d_model * len(config.subjects):
        raise BundleError(f"{weights.name} does not match config.json: {PIVOTS_TENSOR} has {raw.size} values")
    return raw.astype(np.float32).reshape(config.d_model, len(config.subjects)).T.copy()


@dataclass
class Style:
    """A tuned speaking style: weights over the bundle's pivots and the embedding they make.

    `bundle` is where the bundle was when it was tuned (informative); `bundle_fingerprint` is
    what identifies it (None in styles from before tune recorded it)."""

    name: str
    bundle: str
    alpha: list[float]
    p: list[float]
    subject: str
    mode: str = "convex"
    clips: list[list[str]] = field(default_factory=list)
    error_before: float | None = None
    error_after: float | None = None
    bundle_fingerprint: str | None = None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Style":
        """Read and check a style file; `TuningError` (one line) when it is not a usable style."""
        path = Path(path)
        if not path.is_file():
            raise TuningError(f"style file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise TuningError(f"{path} is not a Talking Head style file ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise TuningError(f"{path} is not a Talking Head style file (it holds {_kind(data)}, not a JSON object)")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = [n for n in ("name", "bundle", "alpha", "p", "subject") if n not in data]
        if unknown or missing:
            what = f"unknown keys {unknown}" if unknown else f"it lacks {missing}"
            raise TuningError(f"{path} is not a Talking Head style file ({what})")
        for name, ok, expected in _SCHEMA:
            if name in data and not ok(data[name]):
                raise TuningError(f"style file {path}: {name} must be {expected}, got {_kind(data[name])}")
        style = cls(**data)
        style.validate(path)
        return style

    def validate(self, where: str | Path = "") -> None:
        """The checks that need no bundle: finite p of sane size, alpha on the simplex."""
        label = f"style file {where}" if where else f"style {self.name!r}"
        p = np.asarray(self.p, np.float64)
        if not np.isfinite(p).all():
            raise TuningError(f"{label}: p has values that are not finite numbers (NaN or inf)")
        if np.linalg.norm(p) > MAX_P_NORM:
            raise TuningError(f"{label}: p has norm {np.linalg.norm(p):.3g}, beyond any person embedding (at most {MAX_P_NORM:g})")
        alpha = np.asarray(self.alpha, np.float64)
        if not np.isfinite(alpha).all():
            raise TuningError(f"{label}: alpha has values that are not finite numbers (NaN or inf)")
        if alpha.size and alpha.min() < -ALPHA_TOLERANCE:
            raise TuningError(f"{label}: alpha has a negative weight ({alpha.min():.3g}); weights over the pivots are >= 0 and sum to 1")
        if alpha.size and abs(alpha.sum() - 1) > SUM_TOLERANCE:
            raise TuningError(f"{label}: alpha sums to {alpha.sum():.6g}; weights over the pivots are >= 0 and sum to 1")

    @property
    def legacy(self) -> bool:
        """Written before tune recorded the bundle's fingerprint."""
        return self.bundle_fingerprint is None

    def check(self, bundle: BundleIdentity, where: str | Path = "") -> None:
        """Raise `TuningError` unless this style was tuned for this bundle (see the module
        docstring). A style without a fingerprint is checked by what it says: its width, alpha's
        length, its subject and, for a convex style, that p is alpha times these pivots."""
        label = f"style {where or self.name!r}"
        if len(self.p) != bundle.d_model:
            raise TuningError(f"{label} was tuned for another bundle ({len(self.p)}-d embedding, this bundle's is {bundle.d_model}-d)")
        if self.alpha and len(self.alpha) != len(bundle.subjects):
            raise TuningError(
                f"{label} was tuned for another bundle ({len(self.alpha)} weights in alpha, this bundle has {len(bundle.subjects)} subjects)"
            )
        if self.bundle_fingerprint is not None and self.bundle_fingerprint != bundle.fingerprint:
            raise TuningError(
                f"{label} was tuned for another bundle (fingerprint {self.bundle_fingerprint}, this bundle's is "
                f"{bundle.fingerprint}); tune it again for this one"
            )
        if self.subject not in bundle.subjects:
            raise TuningError(f"{label} speaks like subject {self.subject!r}, which this bundle does not have")
        if bundle.pivots is None:
            return
        p, largest = np.asarray(self.p, np.float64), float(np.linalg.norm(bundle.pivots, axis=1).max())
        if np.linalg.norm(p) > MAX_P_PER_PIVOT * largest:
            raise TuningError(
                f"{label}: p has norm {np.linalg.norm(p):.3g}, more than {MAX_P_PER_PIVOT:g} times this bundle's "
                f"largest pivot ({largest:.3g}); it is not a person embedding of this bundle"
            )
        if self.legacy and self.mode == "convex" and self.alpha:
            gap = float(np.linalg.norm(p - np.asarray(self.alpha, np.float64) @ bundle.pivots))
            if gap > LEGACY_MATCH_TOLERANCE * largest:
                raise TuningError(f"{label} was tuned for another bundle (its p is not its alpha times this bundle's pivots)")

    def note_if_legacy(self, where: str | Path = "") -> None:
        """One line on stderr for a style from before fingerprints: it was checked by its
        contents only (a convex one against the pivots), so say how to get the full check."""
        if self.legacy:
            print(
                f"note: style {where or self.name!r} has no bundle fingerprint (written by an older version); "
                "checked by its size, subject and weights only: tune it again to record one",
                file=sys.stderr,
            )

    @staticmethod
    def interpolate(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
        """p_new = w p_i + (1 - w) p_j (section 9); w = 1 gives a and w = 0 gives b exactly."""
        return (w * np.asarray(a, np.float32) + (1 - w) * np.asarray(b, np.float32)).astype(np.float32)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_numbers(value: Any) -> bool:
    return isinstance(value, list) and all(_is_number(v) for v in value)


def _kind(value: Any) -> str:
    """A JSON value's kind, in the user's words: 'a number', 'null', 'a list with a string'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, numbers.Real):
        return "a number" if math.isfinite(value) else f"{value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        odd = [v for v in value if not _is_number(v)]
        return f"a list with {_kind(odd[0])}" if odd else "a list of numbers" if value else "an empty list"
    return "an object" if isinstance(value, dict) else type(value).__name__


# (key, check, what it must be) for every field of a style file.
_SCHEMA = (
    ("name", lambda v: isinstance(v, str), "a string"),
    ("bundle", lambda v: isinstance(v, str), "a string"),
    ("alpha", _is_numbers, "a list of numbers"),
    ("p", lambda v: _is_numbers(v) and len(v) > 0, "a non-empty list of numbers"),
    ("subject", lambda v: isinstance(v, str) and v != "", "a subject name"),
    ("mode", lambda v: v in MODES, f"one of {', '.join(MODES)}"),
    ("clips", lambda v: isinstance(v, list) and all(isinstance(c, list) and all(isinstance(x, str) for x in c) for c in v), "a list of [audio, mesh] lists"),
    ("error_before", lambda v: v is None or _is_number(v), "a number or null"),
    ("error_after", lambda v: v is None or _is_number(v), "a number or null"),
    ("bundle_fingerprint", lambda v: v is None or isinstance(v, str), "a string or null"),
)
