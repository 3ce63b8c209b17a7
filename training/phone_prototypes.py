"""Build a bundle's phone prototypes (core/phone_features.py) from a labelled speech set.

Each prototype is the mean of the content encoder's hidden states, at the rate Gn reads them
(k x fps steps a second), over every step whose centre falls in that phone in the speech set's
own phone timings. The held-out voices of the speech set are left out, so that figures measured
on them stay held-out. The same steps fit a linear phone classifier of the encoder's states
(multinomial logistic regression), which recognised words are weighed against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core.audio import load_audio
from ..core.phone_features import FILE, PhonePrototypes
from .corpus.phones import PHONES
from .encoder_training import HELD_OUT_SPEAKERS, read_speech_set

CLASSIFIER_STRIDE = 2  # every other step fits the classifier (neighbouring steps say much the same)


def build_phone_prototypes(animator, speech: Path, held_out: tuple[str, ...] = HELD_OUT_SPEAKERS, limit: int = 0,
                           progress: bool = True) -> PhonePrototypes:
    """Prototypes for `animator`'s content encoder from the speech set at `speech` (all voices but
    `held_out`; at most `limit` utterances when > 0, spread evenly)."""
    utterances = [u for u in read_speech_set(speech) if u.speaker not in held_out]
    if limit and len(utterances) > limit:
        utterances = utterances[:: len(utterances) // limit][:limit]
    phones = list(PHONES)
    sums = np.zeros((len(phones), animator.context.dim), np.float64)
    counts = np.zeros(len(phones), np.int64)
    index = {p: i for i, p in enumerate(phones)}
    steps_per_s = animator.bundle.config.k * animator.bundle.config.fps
    skeleton = PhonePrototypes(phones, sums, counts)  # only for its timeline()
    states, labels = [], []
    for u in tqdm(utterances, desc="phone prototypes", unit="clip", disable=not progress):
        with torch.no_grad():
            context = animator.features(load_audio(u.wav))[0][0].float().cpu().numpy()
        rows = skeleton.timeline(u.phones, len(context), steps_per_s)
        np.add.at(sums, rows, context)
        np.add.at(counts, rows, 1)
        states.append(context[::CLASSIFIER_STRIDE])
        labels.append(rows[::CLASSIFIER_STRIDE])
    seen = counts > 0
    if not seen[index["pau"]]:
        raise ValueError(f"{speech}: no silence (`pau`) steps in its phone timings")
    kept = [p for p, s in zip(phones, seen) if s]
    vectors = (sums[seen] / counts[seen, None]).astype(np.float32)
    renumber = np.cumsum(seen) - 1  # row among all phones -> row among the kept ones
    y = renumber[np.concatenate(labels)]
    classifier = fit_phone_classifier(np.concatenate(states), y, len(kept))
    return PhonePrototypes(kept, vectors, counts[seen], encoder=animator.bundle.config.context_encoder,  # as the bundle names it
                           classifier=classifier)


def fit_phone_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 200,
                         weight_decay: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression of labels y (N,) on states x (N, D), fitted on standardised
    states (LBFGS, full batch; bench/real_voices.py's probe) -> (weight (C, D), bias (C,)) on the
    raw states, the standardisation folded in."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).long()
    layer = torch.nn.Linear(x.shape[1], n_classes)
    optimiser = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(xt), yt) + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    w = layer.weight.detach().numpy() / std
    b = layer.bias.detach().numpy() - w @ mean
    return w.astype(np.float32), b.astype(np.float32)


def write_phone_prototypes(bundle: Path, speech: Path, limit: int = 0) -> PhonePrototypes:
    """Build and store them in the bundle folder (its encoders, loaded on the CPU in fp32)."""
    from ..core.pipeline import load_animator

    animator = load_animator(bundle, "cpu", "fp32")
    protos = build_phone_prototypes(animator, speech, limit=limit)
    protos.save(Path(bundle) / FILE)
    return protos
