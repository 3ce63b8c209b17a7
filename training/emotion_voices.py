"""Speech sets and corpora whose emotions can be heard (corpus/emotion_voice.py on every take).

- `emotional_speech_set`: one WORLD copy of each utterance of a speech set with its own label's
  cues (or, for a set of neutral real speech such as FSDD, a drawn emotion), half of them in
  another voice (formant and pitch of a voice_warp.Warp), held-out voices left out; labels.jsonl
  keeps the emotion and intensity the copy was given.
- `revoice_corpus`: a corpus in the BIWI layout whose takes are resynthesised in place: an
  emotional take's cues follow its facial expression's intensity track (emotions/CLIP.npz), so
  voice and face rise and fall together; neutral takes get small random cues. Timing is kept, so
  faces, head poses and phone files stay valid and are linked, not copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE, load_audio
from .corpus.emotion_voice import draw, emotional_voice
from .corpus.emotions import EMOTIONS
from .corpus.voice_warp import Warp, warp_phones
from .encoder_training import HELD_OUT_SPEAKERS
from .speech_mix import _prepare, _write, _write_labels, pool_map


def _seed(*parts) -> np.random.Generator:
    return np.random.default_rng([int.from_bytes(str(p).encode()[-8:], "big") for p in parts])


def _copy_one(task: tuple) -> dict:
    source, out, record, seed, assign, speaker_probability = task
    rng = _seed(seed, record["id"], "emotion-voice")
    emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))] if assign else record["emotion"]  # assign: neutral real speech given an emotion
    # Clearly acted: the encoder learns the classes from copies where they can be heard (the
    # synthesiser's own weak cues are still there, below these).
    intensity = 1.0 if emotion == "neutral" else float(rng.uniform(0.6, 1.0))
    voice = draw(emotion, rng)
    speaker = Warp.draw(rng) if rng.random() < speaker_probability else None
    phones = json.loads((Path(source) / "phones" / f"{record['id']}.json").read_text())
    samples = emotional_voice(load_audio(Path(source) / "wav" / f"{record['id']}.wav"), voice, intensity, rng, speaker=speaker)
    name = f"e{seed}_{record['id']}"
    _write(Path(out), name, samples, phones.get("text", ""), warp_phones(phones["phones"], voice.rate))
    return {**record, "id": name, "emotion": emotion, "intensity": round(intensity, 3), "seconds": round(len(samples) / SAMPLE_RATE, 4),
            "speaker": f"{record['speaker']}~e" + ("w" if speaker is not None else ""), "emotion_voice": voice.describe(),
            **({"voice_warp": speaker.describe()} if speaker is not None else {})}


def emotional_speech_set(source: Path, out: Path, seed: int = 0, workers: int = 1, assign_emotions: bool = False, speaker_probability: float = 0.5,
                         held_out: tuple[str, ...] = HELD_OUT_SPEAKERS, progress: bool = True) -> list[dict]:
    """One copy with audible emotion of every utterance at `source` but its `held_out` voices.
    `assign_emotions`: draw each copy's emotion (for neutral speech such as FSDD)."""
    out = _prepare(out)
    records = [json.loads(line) for line in (Path(source) / "labels.jsonl").read_text().splitlines()]
    records = [r for r in records if r.get("speaker") not in held_out]
    tasks = [(str(source), str(out), r, seed, assign_emotions, speaker_probability) for r in records]
    made = pool_map(_copy_one, tasks, workers, "emotion voices", progress)
    _write_labels(out, made)
    return made


def _revoice_one(task: tuple) -> str:
    import soundfile

    corpus, out, clip, emotion, seed = task
    rng = _seed(seed, clip, "revoice")
    samples = load_audio(Path(corpus) / "wav" / f"{clip}.wav")
    track = Path(corpus) / "emotions" / f"{clip}.npz"
    intensity: float | np.ndarray = 1.0
    if emotion != "neutral" and track.is_file():  # the face's expression track; else the whole take at full strength
        intensity = np.load(track)["intensity"]
    voice = draw(emotion, rng)
    y = emotional_voice(samples, voice, intensity, rng, keep_timing=True)
    soundfile.write(str(Path(out) / "wav" / f"{clip}.wav"), y, SAMPLE_RATE, subtype="PCM_16")
    return clip


def revoice_corpus(corpus: Path, out: Path, seed: int = 0, workers: int = 1, progress: bool = True) -> int:
    """A copy of `corpus` (BIWI layout, from `corpus build`) with every take resynthesised with
    audible emotion; everything but wav/ is linked. Resumable: takes already written are kept.
    -> takes written"""
    corpus, out = Path(corpus).resolve(), Path(out)
    meta = json.loads((corpus / "corpus.json").read_text())
    if not isinstance(meta.get("clips"), dict):
        from .corpus.build import CorpusError

        raise CorpusError(f"{corpus} lists no clips (corpus.json 'clips'): revoice reads each take's emotion from a corpus `corpus build` wrote")
    out.mkdir(parents=True, exist_ok=True)
    for entry in corpus.iterdir():
        if entry.name in ("wav", "corpus.json") or entry.name.startswith("."):
            continue
        link = out / entry.name
        if not link.exists():
            os.symlink(entry, link)
    (out / "wav").mkdir(exist_ok=True)
    meta["revoiced"] = {"from": corpus.name, "seed": seed, "by": "training/emotion_voices.py revoice_corpus"}
    (out / "corpus.json").write_text(json.dumps(meta, indent=1))
    tasks = [(str(corpus), str(out), clip, info["emotion"], seed) for clip, info in sorted(meta["clips"].items())
             if (corpus / "wav" / f"{clip}.wav").is_file() and not (out / "wav" / f"{clip}.wav").is_file()]
    return len(pool_map(_revoice_one, tasks, workers, "revoice", progress))
