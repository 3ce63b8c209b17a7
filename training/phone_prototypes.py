"""Build a bundle's phone prototypes (core/phone_features.py) from a labelled speech set.

Each prototype is the mean of the content encoder's hidden states, at the rate Gn reads them
(k x fps steps a second), over every step whose centre falls in that phone in the speech set's
own phone timings. The held-out voices of the speech set are left out, so that figures measured
on them stay held-out.
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
    for u in tqdm(utterances, desc="phone prototypes", unit="clip", disable=not progress):
        with torch.no_grad():
            context = animator.features(load_audio(u.wav))[0][0].float().cpu().numpy()
        rows = skeleton.timeline(u.phones, len(context), steps_per_s)
        np.add.at(sums, rows, context)
        np.add.at(counts, rows, 1)
    seen = counts > 0
    if not seen[index["pau"]]:
        raise ValueError(f"{speech}: no silence (`pau`) steps in its phone timings")
    kept = [p for p, s in zip(phones, seen) if s]
    vectors = (sums[seen] / counts[seen, None]).astype(np.float32)
    return PhonePrototypes(kept, vectors, counts[seen], encoder=animator.bundle.config.context_encoder)  # as the bundle names it


def write_phone_prototypes(bundle: Path, speech: Path, limit: int = 0) -> PhonePrototypes:
    """Build and store them in the bundle folder (its encoders, loaded on the CPU in fp32)."""
    from ..core.pipeline import load_animator

    animator = load_animator(bundle, "cpu", "fp32")
    protos = build_phone_prototypes(animator, speech, limit=limit)
    protos.save(Path(bundle) / FILE)
    return protos
