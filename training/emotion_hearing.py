"""Fit a bundle's emotion hearing (core/emotion_hearing.py) on speech sets whose emotion can be heard.

The training speech is what `talking-head corpus emotion-voices` writes: the synthetic voices (and
FSDD's real ones) given the acoustic marks of acted emotion by WORLD resynthesis. The synthetic
voices as the synthesisers spoke them carry almost none (README "Emotion you can hear"), so they
would only teach the classifier label noise. Held-out voices (M1, F8) are left out for the report.

The model is a multinomial logistic regression with an L2 penalty (C as scikit-learn's: the
objective is C * sum of cross-entropies + |W|^2 / 2), fitted by L-BFGS (scipy) on standardised
features: 32 inputs, a few hundred weights, nothing that overfits a voice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..core.emotion_hearing import FILE, NAMES, EmotionHearing, clip_features
from ..core.errors import TalkingHeadError
from .encoder_training import HELD_OUT_SPEAKERS, read_speech_set

PENALTY_C = 1.0
NARROW_RATE = 8_000  # every training utterance is also heard as a recording at this rate would hold it


class HearingError(TalkingHeadError):
    """Speech sets that cannot teach the bundle's classes."""


def narrow_band(samples: np.ndarray) -> np.ndarray:
    """The clip as an 8 kHz recording would hold it (nothing above 4 kHz), at 16 kHz again."""
    import soxr

    from ..core.audio import SAMPLE_RATE

    return soxr.resample(soxr.resample(samples, SAMPLE_RATE, NARROW_RATE), NARROW_RATE, SAMPLE_RATE)[:len(samples)]


def _features(path: str) -> list[np.ndarray | None]:
    from ..core.audio import load_audio

    samples = load_audio(path)
    return [clip_features(samples), clip_features(narrow_band(samples))]


def speech_features(paths: Sequence[str | Path], processes: int = 2, progress: Callable[[int, int], None] | None = None) -> list[list[np.ndarray | None]]:
    """[clip_features of the file, of its `narrow_band` copy] for every file, in `processes`
    worker processes (None for clips without voiced speech)."""
    paths = [str(p) for p in paths]
    if processes <= 1:
        out = []
        for i, p in enumerate(paths):
            out.append(_features(p))
            if progress:
                progress(i + 1, len(paths))
        return out
    with get_context("spawn").Pool(processes) as pool:
        out = []
        for i, x in enumerate(pool.imap(_features, paths, chunksize=16)):
            out.append(x)
            if progress:
                progress(i + 1, len(paths))
        return out


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, c: float = PENALTY_C) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on standardised x (N, F), y (N,) in 0..C-1 -> weights (C, F), bias (C,)."""
    from scipy.optimize import minimize

    n, f = x.shape
    onehot = np.eye(n_classes)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:n_classes * f].reshape(n_classes, f), theta[n_classes * f:]
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        g = np.exp(logp) - onehot
        value = -c * (onehot * logp).sum() + 0.5 * (w ** 2).sum()
        return value, np.r_[(c * g.T @ x + w).ravel(), c * g.sum(axis=0)]

    result = minimize(loss, np.zeros(n_classes * (f + 1)), jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    return result.x[:n_classes * f].reshape(n_classes, f), result.x[n_classes * f:]


def fit_hearing(speech_sets: Sequence[Path], labels: Sequence[str], c: float = PENALTY_C, processes: int = 2,
                progress: Callable[[int, int], None] | None = None) -> EmotionHearing:
    """An EmotionHearing for `labels` from the utterances of `speech_sets` (held-out voices left out)."""
    utterances = [u for s in speech_sets for u in read_speech_set(s) if u.speaker.split("~")[0] not in HELD_OUT_SPEAKERS]  # "M1~e": a copy of M1
    unknown = sorted({u.emotion for u in utterances} - set(labels))
    if unknown:
        raise HearingError(f"the speech sets hold emotions the bundle does not know ({', '.join(unknown)}); its labels: {', '.join(labels)}")
    missing = [label for label in labels if not any(u.emotion == label for u in utterances)]
    if missing:
        raise HearingError(f"the speech sets hold no {', '.join(missing)} utterances: every class of the bundle needs some")
    feats = speech_features([u.wav for u in utterances], processes, progress)
    # Each utterance twice: as recorded and as an 8 kHz recording holds it. Without the narrow
    # copies, band-limited speech (phone, 8 kHz) was heard otherwise: the held-out voices' 5
    # classes 0.69 -> 0.48 (README, Emotion you can hear).
    pairs = [(x, i) for i, both in enumerate(feats) for x in both if x is not None]
    keep = sorted({i for _, i in pairs})
    x = np.stack([x for x, _ in pairs])
    y = np.array([list(labels).index(utterances[i].emotion) for _, i in pairs])
    mean, std = x.mean(axis=0), x.std(axis=0)
    scale = np.where(std > 1e-6, std, 1.0)  # a number that never varied in training teaches nothing: not blown up
    weights, bias = fit_logistic((x - mean) / scale, y, len(labels), c)
    hearing = EmotionHearing(list(labels), mean, scale, weights, bias)
    train_accuracy = float((hearing.probabilities(x).argmax(axis=1) == y).mean())
    hearing.measure = {"utterances": len(keep), "examples": len(pairs), "narrow_band_copies": True,
                       "per_class": {label: sum(utterances[i].emotion == label for i in keep) for label in labels},
                       "speech_sets": [Path(s).name for s in speech_sets], "c": c, "train_accuracy": round(train_accuracy, 4),
                       "held_out_voices": list(HELD_OUT_SPEAKERS)}
    return hearing


def write_hearing(bundle: Path, speech_sets: Sequence[Path], c: float = PENALTY_C, progress: Callable[[int, int], None] | None = None) -> EmotionHearing:
    """Fit on `speech_sets` for the bundle's emotion labels and write BUNDLE/emotion_hearing.json."""
    from ..core.config import ModelConfig

    config = ModelConfig.load(Path(bundle) / "config.json")
    if not config.emotion_labels:
        raise HearingError(f"the bundle {Path(bundle).name} has no emotion labels")
    hearing = fit_hearing(speech_sets, config.emotion_labels, c, progress=progress)
    hearing.save(Path(bundle) / FILE)
    return hearing


__all__ = ["NAMES", "fit_hearing", "fit_logistic", "narrow_band", "speech_features", "write_hearing", "HearingError"]
