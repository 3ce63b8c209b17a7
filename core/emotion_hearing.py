"""Hearing the emotion of a voice from its prosody: pitch, loudness, voice quality and timing.

Why beside the emotion encoder: the small wav2vec2 emotion encoder, trained on synthetic voices,
hears real acted speech at chance (EmoDB, README "Emotion you can hear"); its input is normalised
per window, which removes vocal effort, and it learns little pitch. The marks that acted emotion
leaves in a voice (Banse & Scherer 1996; the eGeMAPS set of Eyben et al. 2016) are a few
numbers over a stretch of speech: F0 level, range, contour and its rises and falls, loudness
dynamics, spectral balance (alpha ratio, Hammarberg index, slopes, band energies: vocal effort),
aperiodicity (breathiness), jitter and shimmer, voiced share and syllable rate. A multinomial
logistic regression over them, trained on speech given audible emotion
(training/emotion_hearing.py), is what a bundle's `emotion_hearing.json` holds.

What it drives: the take's `emotion_probs` (what the voice was heard as, per second: the panel,
`--emotion voice`'s report, Live Link) when the bundle has it; Ge and Gh still read the emotion
encoder's features, so lips are unchanged by it. Pure numpy + pyworld (WORLD's F0 and
aperiodicity), no torch: it runs in the worker like the rest of core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError

FILE = "emotion_hearing.json"
SAMPLE_RATE = 16_000
HOP_S = 0.01  # one analysis frame every 10 ms
WINDOW_S = 2.0  # what a take is heard over, per moment: the length of the training utterances
STEP_S = 0.5  # one heard window every half second, interpolated to the frames
SPEECH_DB = 35.0  # frames within this many dB of the loudest one in the stretch are speech
BANDS = (0, 300, 500, 1000, 2000, 4000, 8000)
NAMES = (
    "f0_mean", "f0_std", "f0_p20", "f0_p50", "f0_p80", "f0_range", "f0_rise", "f0_fall", "f0_slope", "f0_half",
    "loud_std", "loud_range", "loud_voiced_minus_all", "alpha", "hammarberg", "slope_0_500", "slope_500_1500",
    *(f"band_{a}_{b}" for a, b in zip(BANDS[:-1], BANDS[1:])),
    "centroid", "flux", "ap_lo", "ap_hi", "jitter", "shimmer", "voiced_share", "seg_mean", "rate",
)


PIECE_S = 60.0  # long takes are analysed a minute at a time (WORLD's arrays of a whole take are large)
MARGIN_S = 1.0  # audio either side of a piece that its analysis sees and drops


@dataclass
class Tracks:
    """Frame tracks of a recording, every 10 ms: F0 in Hz (0 unvoiced), power spectrum, and
    WORLD's aperiodicity (0 periodic .. 1 noise) averaged over 100-1000 Hz and 1-4 kHz."""

    f0: np.ndarray  # (T,)
    power: np.ndarray  # (T, F) float32, of a 512-point FFT
    ap_lo: np.ndarray  # (T,)
    ap_hi: np.ndarray  # (T,)
    freqs: np.ndarray  # (F,)

    def __len__(self) -> int:
        return len(self.f0)


def _piece_tracks(y: np.ndarray) -> Tracks:
    import pyworld

    f0, t = pyworld.dio(y, SAMPLE_RATE, f0_floor=60.0, f0_ceil=600.0, frame_period=HOP_S * 1000)
    f0 = pyworld.stonemask(y, f0, t, SAMPLE_RATE)
    aperiodicity = pyworld.d4c(y, f0, t, SAMPLE_RATE)
    af = np.linspace(0, SAMPLE_RATE / 2, aperiodicity.shape[1])
    ap_lo = aperiodicity[:, (af > 100) & (af < 1000)].mean(axis=1)
    ap_hi = aperiodicity[:, (af > 1000) & (af < 4000)].mean(axis=1)
    del aperiodicity
    hop, size = int(SAMPLE_RATE * HOP_S), 512
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (size // 2, size // 2 + len(f0) * hop)), size)[::hop][:len(f0)]
    power = (np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2).astype(np.float32)
    return Tracks(f0, power, ap_lo, ap_hi, np.fft.rfftfreq(size, 1 / SAMPLE_RATE))


def tracks(samples: np.ndarray) -> Tracks:
    """WORLD's F0 (DIO + StoneMask, 60-600 Hz) and aperiodicity and a 32 ms power spectrum, every
    10 ms; audio over PIECE_S is analysed in pieces, each with MARGIN_S of audio either side."""
    y = np.asarray(samples, dtype=np.float64)
    y = y / (np.abs(y).max() + 1e-9) * 0.5  # level never counts: every feature is relative
    hop = int(SAMPLE_RATE * HOP_S)
    piece, margin = int(PIECE_S / HOP_S), int(MARGIN_S / HOP_S)
    total = len(y) // hop + 1  # DIO's frame count
    if total <= piece + 2 * margin:
        return _piece_tracks(y)
    parts = []
    for start in range(0, total, piece):
        begin = max(0, start - margin)
        part = _piece_tracks(y[begin * hop: (min(total, start + piece + margin)) * hop])
        keep = slice(start - begin, start - begin + min(piece, total - start))
        parts.append((part.f0[keep], part.power[keep], part.ap_lo[keep], part.ap_hi[keep]))
        freqs = part.freqs
    return Tracks(*(np.concatenate([p[i] for p in parts]) for i in range(4)), freqs)


def _db(x: np.ndarray | float) -> np.ndarray | float:
    return 10 * np.log10(x + 1e-10)


def functionals(tr: Tracks, start: int = 0, end: int | None = None) -> np.ndarray | None:
    """The NAMES numbers over frames [start, end), or None where the stretch holds no voiced speech."""
    f0, power = tr.f0[start:end], tr.power[start:end].astype(np.float64)
    freqs = tr.freqs
    db = _db(power.sum(axis=1))
    if len(db) < 5:
        return None
    speech = db > db.max() - SPEECH_DB
    voiced = (f0 > 0) & speech
    if voiced.sum() < 5:
        return None
    st = 12 * np.log2(f0[voiced] / 55.0)  # semitones above 55 Hz
    steps = np.diff(st)
    loud, loud_voiced = db[speech], db[voiced]
    pv = power[voiced]

    def band(lo: float, hi: float) -> float:
        return float(_db(pv[:, (freqs >= lo) & (freqs < hi)].sum()))

    def slope(lo: float, hi: float) -> float:  # dB per kHz of the mean voiced spectrum
        m = (freqs >= lo) & (freqs < hi)
        return float(np.polyfit(freqs[m] / 1000, _db(pv[:, m].mean(axis=0)), 1)[0])

    bands = np.array([band(a, b) for a, b in zip(BANDS[:-1], BANDS[1:])])
    low = pv[:, freqs < 2000].max(axis=1).mean()
    high = pv[:, (freqs >= 2000) & (freqs < 5000)].max(axis=1).mean()
    centroid = (pv * freqs).sum(axis=1) / (pv.sum(axis=1) + 1e-10)
    ps = np.log(power[speech] + 1e-10)
    flux = float(np.sqrt((np.diff(ps, axis=0) ** 2).mean(axis=1)).mean()) if len(ps) > 2 else 0.0
    edges = np.diff(np.r_[0, voiced.astype(int), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    span = np.flatnonzero(speech)
    duration = (span[-1] - span[0] + 1) * HOP_S
    half = len(st) // 2
    values = [
        st.mean(), st.std(), np.percentile(st, 20), np.median(st), np.percentile(st, 80),
        np.percentile(st, 80) - np.percentile(st, 20),
        steps[steps > 0].mean() if (steps > 0).any() else 0.0, -steps[steps < 0].mean() if (steps < 0).any() else 0.0,
        np.polyfit(np.arange(len(st)), st, 1)[0] / HOP_S, st[half:].mean() - st[:half].mean(),
        loud.std(), np.percentile(loud, 80) - np.percentile(loud, 20), loud_voiced.mean() - loud.mean(),
        band(50, 1000) - band(1000, 5000), _db(low) - _db(high), slope(50, 500), slope(500, 1500),
        *(bands - bands.max()),
        np.median(centroid) / 1000, flux,
        tr.ap_lo[start:end][voiced].mean(), tr.ap_hi[start:end][voiced].mean(),
        np.median(np.abs(steps)), np.median(np.abs(np.diff(loud_voiced))),
        voiced.sum() / speech.sum(), (ends - starts).mean() * HOP_S, len(starts) / max(duration, 0.2),
    ]
    return np.asarray(values, dtype=np.float64)


def clip_features(samples: np.ndarray) -> np.ndarray | None:
    """The NAMES numbers of a whole clip (what training and the EmoDB bench classify)."""
    return functionals(tracks(samples))


@dataclass
class EmotionHearing:
    """A multinomial logistic regression over standardised NAMES: p = softmax(W ((x - mean) / scale) + b)."""

    labels: list[str]
    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,)
    weights: np.ndarray  # (C, F)
    bias: np.ndarray  # (C,)
    measure: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(..., F) features -> (..., C) class probabilities."""
        z = ((np.asarray(features) - self.mean) / self.scale) @ self.weights.T + self.bias
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    def clip(self, samples: np.ndarray) -> np.ndarray:
        """(C,) probabilities of a whole clip; uniform where it holds no voiced speech."""
        x = clip_features(samples)
        return np.full(len(self.labels), 1 / len(self.labels)) if x is None else self.probabilities(x)

    def take(self, samples: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
        """(n_frames, C) what each moment of a take is heard as: 2 s windows every 0.5 s, linear
        between their centres. Windows without voiced speech take their neighbours' answer (uniform
        when the whole take has none)."""
        tr = tracks(samples)
        width, step = round(WINDOW_S / HOP_S), round(STEP_S / HOP_S)
        total = len(tr)
        starts = list(range(0, max(1, total - width + 1), step))
        if total > width and starts[-1] + width < total:
            starts.append(total - width)
        centres, answers = [], []
        for s in starts:
            x = functionals(tr, s, s + width)
            if x is not None:
                centres.append((s + min(width, total - s) / 2) * HOP_S)
                answers.append(self.probabilities(x))
        if not answers:
            return np.full((n_frames, len(self.labels)), 1 / len(self.labels), dtype=np.float32)
        times = np.arange(n_frames) / fps
        answers_ = np.asarray(answers)
        out = np.stack([np.interp(times, centres, answers_[:, c]) for c in range(len(self.labels))], axis=1)
        return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)

    def save(self, path: str | Path) -> None:
        data = {"features": list(NAMES), "labels": self.labels, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "bias": self.bias.tolist(), "measure": self.measure}
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "EmotionHearing":
        """Read `emotion_hearing.json`; a one-line BundleError when it is broken or of other features."""
        path = Path(path)
        hint = "fit it again with `talking-head bundle hearing BUNDLE --speech SET`"
        try:
            data = json.loads(path.read_text())
            if data["features"] != list(NAMES):
                raise ValueError("its features are not the ones this version computes")
            out = cls([str(x) for x in data["labels"]], np.asarray(data["mean"], np.float64), np.asarray(data["scale"], np.float64),
                      np.asarray(data["weights"], np.float64), np.asarray(data["bias"], np.float64), dict(data.get("measure", {})))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise BundleError(f"{path.name} in {path.parent} is broken ({exc}); {hint}") from None
        n, c = len(NAMES), len(out.labels)
        if out.mean.shape != (n,) or out.scale.shape != (n,) or out.weights.shape != (c, n) or out.bias.shape != (c,) \
                or not all(np.isfinite(a).all() for a in (out.mean, out.scale, out.weights, out.bias)) or (out.scale <= 0).any():
            raise BundleError(f"{path.name} in {path.parent} holds arrays of the wrong shape or non-finite values; {hint}")
        return out
