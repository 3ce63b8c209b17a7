"""Corpora in the BIWI preprocessed layout (METHOD.md section 10), real or synthetic.

    vertices_npy/{S}_e{NN}.npy   (frames, 3V) emotional take;  {S}_{NN}.npy neutral take
    wav/{S}_e{NN}.wav            its audio (any rate)
    templates.npz | templates.pkl  subject -> (V, 3) neutral face (the pickle via a restricted loader)
    neutral/{S}_e{NN}.npy        optional: neutral target of an emotional take (else DTW, section 8)
    poses/{clip}.npz             optional: rotation (N, 3, 3), translation (N, 3)
    corpus.json                  optional: subjects with their split, clip splits, region indices
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import TalkingHeadError
from .safe_pickle import load_restricted

SEEN_SUBJECTS = ("F2", "F3", "F4", "M3", "M4", "M5")
UNSEEN_SUBJECTS = ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6")
TRAIN_SENTENCES = range(1, 33)
VAL_SENTENCES = range(33, 37)
TEST_SENTENCES = range(37, 41)
TUNING_CLIPS_PER_SUBJECT = 6
SUBSETS = ("SN", "SE", "UN", "UE")
CLIP_NAME = re.compile(r"^(?P<subject>[A-Za-z0-9]+)_(?P<emotional>e?)(?P<sentence>\d+)$")


class DatasetError(TalkingHeadError):
    """A corpus folder that does not follow the BIWI layout."""


@dataclass(frozen=True)
class Clip:
    name: str
    subject: str
    sentence: int
    emotional: bool

    @property
    def neutral_take(self) -> str:
        """Name of the same subject's neutral take of the same sentence."""
        return f"{self.subject}_{self.sentence:02d}"


class Corpus:
    """One corpus folder: its clips, templates, splits and optional ground truth."""

    def __init__(self, root: str | Path, split: str = "paper") -> None:
        self.root = Path(root)
        if not (self.root / "vertices_npy").is_dir():
            raise DatasetError(f"{self.root} is not a corpus in the BIWI layout: it has no vertices_npy/ folder")
        self.info = json.loads((self.root / "corpus.json").read_text()) if (self.root / "corpus.json").is_file() else {}
        self.templates = self._read_templates()
        self.clips: dict[str, Clip] = {}
        for path in sorted((self.root / "vertices_npy").glob("*.npy")):
            match = CLIP_NAME.match(path.stem)
            if not match:
                continue
            if not self.wav_path(path.stem).is_file():
                raise DatasetError(f"clip {path.stem} has vertices but no wav/{path.stem}.wav")
            clip = Clip(path.stem, match["subject"], int(match["sentence"]), bool(match["emotional"]))
            if clip.subject not in self.templates:
                raise DatasetError(f"clip {clip.name}: subject {clip.subject} has no template in templates.npz/.pkl")
            self.clips[clip.name] = clip
        if not self.clips:
            raise DatasetError(f"{self.root}/vertices_npy holds no clips named like F2_e01.npy or F2_01.npy")
        if split not in ("paper", "faceformer"):
            raise DatasetError(f"unknown split {split!r}; use paper or faceformer")
        self.split = split
        self.seen, self.unseen = self._subject_split()
        self.tuning = self._tuning_clips()

    # ------------------------------------------------------------------ files
    def wav_path(self, name: str) -> Path:
        return self.root / "wav" / f"{name}.wav"

    def vertices(self, name: str) -> np.ndarray:
        """(frames, V, 3) float32, without head pose."""
        flat = np.load(self.root / "vertices_npy" / f"{name}.npy")
        return flat.reshape(flat.shape[0], -1, 3).astype(np.float32)

    def template(self, subject: str) -> np.ndarray:
        return self.templates[subject]

    def neutral_target(self, name: str) -> np.ndarray | None:
        """The given neutral counterpart (neutral/{clip}.npy), or None (then DTW is used)."""
        path = self.root / "neutral" / f"{name}.npy"
        if not path.is_file():
            return None
        flat = np.load(path)
        return flat.reshape(flat.shape[0], -1, 3).astype(np.float32)

    def poses(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.root / "poses" / f"{name}.npz"
        if not path.is_file():
            return None
        with np.load(path) as data:
            return data["rotation"].astype(np.float32), data["translation"].astype(np.float32)

    @property
    def has_poses(self) -> bool:
        return (self.root / "poses").is_dir() and any((self.root / "poses").glob("*.npz"))

    @property
    def n_vertices(self) -> int:
        return int(next(iter(self.templates.values())).shape[0])

    def regions(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Lip and upper-face vertex indices recorded in corpus.json, if any."""
        if "lip_vertices" in self.info and "upper_face_vertices" in self.info:
            return np.asarray(self.info["lip_vertices"]), np.asarray(self.info["upper_face_vertices"])
        return None

    # ------------------------------------------------------------------ splits
    def subset(self, name: str) -> list[Clip]:
        """train / val, or the paper's test subsets SN, SE (seen) and UN, UE (unseen, minus tuning)."""
        clips = list(self.clips.values())
        if name == "train":
            return [c for c in clips if c.subject in self.seen and c.sentence in TRAIN_SENTENCES and self._in_split(c)]
        if name == "val":
            return [c for c in clips if c.subject in self.seen and c.sentence in VAL_SENTENCES and self._in_split(c)]
        if name in ("SN", "SE"):
            return [c for c in clips if c.subject in self.seen and c.sentence in TEST_SENTENCES and c.emotional == (name == "SE") and self._in_split(c)]
        if name in ("UN", "UE"):
            tuned = {(c.subject, c.sentence) for c in self.tuning}
            return [c for c in clips if c.subject in self.unseen and c.emotional == (name == "UE") and (c.subject, c.sentence) not in tuned and self._in_split(c)]
        if name == "tuning":
            return list(self.tuning)
        raise DatasetError(f"unknown subset {name!r}; use train, val, tuning or {', '.join(SUBSETS)}")

    def _in_split(self, clip: Clip) -> bool:
        # FaceFormer's BIWI split uses the emotional takes only.
        return clip.emotional or self.split == "paper"

    def _subject_split(self) -> tuple[list[str], list[str]]:
        subjects = sorted({c.subject for c in self.clips.values()})
        if "subjects" in self.info:
            seen = [s["name"] for s in self.info["subjects"] if s.get("split") == "seen" and s["name"] in subjects]
            unseen = [s["name"] for s in self.info["subjects"] if s.get("split") == "unseen" and s["name"] in subjects]
        else:
            seen = [s for s in subjects if s in SEEN_SUBJECTS]
            unseen = [s for s in subjects if s not in SEEN_SUBJECTS]
        if not seen:
            raise DatasetError(f"{self.root}: none of the subjects {subjects} is a seen (training) subject")
        return seen, unseen

    def _tuning_clips(self) -> list[Clip]:
        listed = self.info.get("splits", {}).get("tuning")
        if listed is not None:
            return [self.clips[n] for n in listed if n in self.clips]
        tuning = []
        for subject in self.unseen:
            emotional = sorted((c for c in self.clips.values() if c.subject == subject and c.emotional), key=lambda c: c.sentence)
            tuning += emotional[:TUNING_CLIPS_PER_SUBJECT]
        return tuning

    def _read_templates(self) -> dict[str, np.ndarray]:
        npz, pkl = self.root / "templates.npz", self.root / "templates.pkl"
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        elif pkl.is_file():
            raw = load_restricted(pkl)
            if not isinstance(raw, dict):
                raise DatasetError(f"{pkl} must hold a dict subject -> (V, 3) array")
        else:
            raise DatasetError(f"{self.root} has neither templates.npz nor templates.pkl")
        return {str(k): np.asarray(v, dtype=np.float32).reshape(-1, 3) for k, v in raw.items()}
