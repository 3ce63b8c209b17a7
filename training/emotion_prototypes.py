"""`talking-head bundle emotions`: a bundle's emotion prototypes from a labelled speech set.

Per emotion class, the mean of the bundle's emotion-encoder hidden states (De,) over every frame
of the set's clips of that class (core/emotion_direction.py reads them). Two weightings are
measured, and the better one kept: the plain mean, and the mean with each frame weighted by its
clip's labelled intensity (a mildly acted clip says less about its class). The measure: classify
each clip of the held-out voices (HELD_OUT_SPEAKERS) by its nearest prototype (cosine of its mean
hidden state), prototypes made from the other voices; the prototypes written are made from all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.audio import load_audio
from ..core.bundle import ModelBundle
from ..core.emotion_direction import PROTOTYPES, EmotionPrototypes
from ..core.encoders import EmotionEncoder
from .encoder_training import HELD_OUT_SPEAKERS, EncoderTrainingError, Utterance, read_speech_set


def clip_features(bundle: ModelBundle, utterances: list[Utterance], progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """Each clip's emotion-encoder hidden states (M, De), fp32, on the CPU."""
    cfg = bundle.config
    encoder = EmotionEncoder(bundle.encoder_source("emotion"), cfg.encode_window_s, cfg.encode_context_s, "cpu", "fp32")
    out = []
    for index, utterance in enumerate(utterances):
        out.append(encoder.encode(load_audio(utterance.wav)).hidden.numpy())
        if progress:
            progress(index + 1, len(utterances))
    return out


def prototypes_of(labels: list[str], utterances: list[Utterance], features: list[np.ndarray], weighting: str) -> np.ndarray:
    """(C, De): per label the (intensity-)weighted mean over all frames of its clips (zeros when
    the set has no clip of it)."""
    dim = features[0].shape[1]
    sums, totals = np.zeros((len(labels), dim)), np.zeros(len(labels))
    for utterance, hidden in zip(utterances, features):
        if utterance.emotion not in labels:
            continue
        c = labels.index(utterance.emotion)
        w = utterance.intensity if weighting == "intensity" else 1.0
        sums[c] += w * hidden.sum(0, dtype=np.float64)
        totals[c] += w * len(hidden)
    return (sums / np.maximum(totals, 1e-12)[:, None]).astype(np.float32)


def nearest_prototype_accuracy(labels: list[str], vectors: np.ndarray, utterances: list[Utterance], features: list[np.ndarray]) -> float:
    """Share of clips whose mean hidden state is nearest (cosine) to their own class's prototype."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    hits = total = 0
    for utterance, hidden in zip(utterances, features):
        if utterance.emotion not in labels:
            continue
        mean = hidden.mean(0)
        hits += int(np.argmax(unit @ (mean / max(np.linalg.norm(mean), 1e-12))) == labels.index(utterance.emotion))
        total += 1
    return hits / max(total, 1)


def build_emotion_prototypes(bundle_dir: str | Path, speech: str | Path, progress: Callable[[int, int], None] | None = None) -> EmotionPrototypes:
    """Encode the speech set with the bundle's emotion encoder, measure both weightings, write
    BUNDLE/emotion_prototypes.safetensors with the better one, and return it."""
    bundle = ModelBundle.load(bundle_dir)
    labels = list(bundle.config.emotion_labels)
    utterances = read_speech_set(Path(speech))
    if not labels:
        raise EncoderTrainingError(f"model bundle {bundle_dir} names no emotion labels in config.json")
    missing = [label for label in labels if not any(u.emotion == label for u in utterances)]
    if missing:
        raise EncoderTrainingError(f"the speech set {speech} has no clip of {', '.join(missing)}: every emotion of the bundle needs clips")
    features = clip_features(bundle, utterances, progress)
    held = [i for i, u in enumerate(utterances) if u.speaker in HELD_OUT_SPEAKERS]
    rest = [i for i, u in enumerate(utterances) if u.speaker not in HELD_OUT_SPEAKERS]
    if not held or not rest or any(not any(utterances[i].emotion == label for i in rest) for label in labels):
        held = rest = list(range(len(utterances)))  # too small to hold voices out: measured on the set itself
    measure: dict = {"clips": len(utterances), "held_out_voices": sorted({utterances[i].speaker for i in held}) if held != rest else []}
    for weighting in ("mean", "intensity"):
        vectors = prototypes_of(labels, [utterances[i] for i in rest], [features[i] for i in rest], weighting)
        measure[f"accuracy_{weighting}"] = round(nearest_prototype_accuracy(labels, vectors, [utterances[i] for i in held], [features[i] for i in held]), 4)
    best = "intensity" if measure["accuracy_intensity"] > measure["accuracy_mean"] else "mean"
    clips = [sum(u.emotion == label for u in utterances) for label in labels]
    prototypes = EmotionPrototypes(labels, prototypes_of(labels, utterances, features, best), clips, best, measure)
    learned = bundle.emotion_prototypes
    if learned is not None and learned.expressions is not None and learned.labels == labels:
        # the learned expressions (`bundle expressions`) belong to the bundle's faces: kept
        prototypes.expressions, prototypes.expressions_measure = learned.expressions, learned.expressions_measure
    prototypes.save(Path(bundle_dir) / PROTOTYPES)
    return prototypes
