"""A larger speech-only set for training encoders: utterances with phone and emotion labels,
no faces. OUT/wav/{id}.wav, OUT/phones/{id}.json, OUT/labels.jsonl (one JSON object a line)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np

from ...core.audio import SAMPLE_RATE
from .emotions import EMOTION_PROFILES, EMOTIONS
from .sentences import random_sentence
from .speech import Prosody, Voice, synthesize
from .subjects import VOICES


def _utterance(task: tuple) -> dict:
    import soundfile

    from .augment import augment

    out, index, seed = task
    rng = np.random.default_rng([seed, 7919, index])
    speaker = list(VOICES)[int(rng.integers(len(VOICES)))]
    base = VOICES[speaker]
    voice = Voice(base.engine, base.name, base.pitch + float(rng.uniform(-3, 3)), base.rate * float(rng.uniform(0.85, 1.15)))
    emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
    intensity = 1.0 if emotion == "neutral" else float(rng.uniform(0.4, 1.0))
    p = EMOTION_PROFILES[emotion].prosody
    prosody = Prosody(p.pitch * intensity, 1 + (p.pitch_range - 1) * intensity, 1 + (p.rate - 1) * intensity, p.energy_db * intensity)
    text = random_sentence(rng)
    speech = synthesize(text, voice, prosody)
    wav, augmentation = augment(speech.samples, rng)
    name = f"{index:06d}"
    soundfile.write(str(Path(out) / "wav" / f"{name}.wav"), wav, SAMPLE_RATE, subtype="PCM_16")
    phones = [[ph, round(s, 5), round(e, 5)] for ph, s, e in speech.phones]
    (Path(out) / "phones" / f"{name}.json").write_text(json.dumps({"text": text, "phones": phones}) + "\n")
    return {"id": name, "text": text, "speaker": speaker, "voice": voice.describe(), "emotion": emotion, "intensity": round(intensity, 3),
            "seconds": round(speech.seconds, 4), "augmentation": augmentation}


def build_speech_set(out: Path, utterances: int, seed: int = 0, workers: int | None = None, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "phones").mkdir(parents=True, exist_ok=True)
    tasks = [(str(out), i, seed) for i in range(utterances)]
    workers = workers or min(len(tasks), multiprocessing.cpu_count())
    with tqdm(total=len(tasks), desc="speech", unit="utt", disable=not progress) as bar:
        if workers <= 1:
            records = []
            for t in tasks:
                records.append(_utterance(t))
                bar.update()
        else:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with context.Pool(workers) as pool:
                records = []
                for r in pool.imap(_utterance, tasks, chunksize=4):
                    records.append(r)
                    bar.update()
    with open(out / "labels.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return records
