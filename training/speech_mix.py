"""Speech sets for a content encoder that hears real voices: real recordings with phone timings,
WORLD-warped copies of the synthetic voices, and a mix of sets, all in the speech-set layout
(OUT/wav/ID.wav, OUT/phones/ID.json, OUT/labels.jsonl) that `encoders content` trains on.

Real speech here is FSDD (CC BY-SA 4.0: shipped weights may train on it, with attribution in the
model card) with the pocketsphinx phone alignments that ../shared/real_speech carries; it is read
from where it lies and written to the output folder, never into the repository. Speakers named in
`held_out` are left out, so that probes on them measure voices the encoder never heard.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE, load_audio
from .corpus.phones import normalise
from .corpus.voice_warp import Warp, warp_phones, warp_voice
from .encoder_training import HELD_OUT_SPEAKERS

FSDD_HELD_OUT = ("lucas", "yweweler")  # FSDD speakers no shipped encoder trains on: the real-voice probe's


def corpus_phones(phones: list, seconds: float) -> list[list]:
    """Aligner phones [NAME, start, end] (ARPAbet, any case, stress digits, SIL) -> the corpus set,
    contiguous from 0 to `seconds`: gaps and edges become `pau`, neighbouring `pau`s merge."""
    out: list[list] = []
    t = 0.0
    for name, start, end in phones:
        start, end = max(float(start), t), min(float(end), seconds)
        if end <= start:
            continue
        if start > t + 1e-6:
            out.append(["pau", t, start])
        out.append([normalise(str(name).rstrip("012")), start, end])
        t = end
    if t < seconds - 1e-6:
        out.append(["pau", t, seconds])
    merged: list[list] = []
    for p in out:
        if merged and p[0] == "pau" and merged[-1][0] == "pau":
            merged[-1][2] = p[2]
        else:
            merged.append([p[0], round(p[1], 5), round(p[2], 5)])
    return merged


def _write(out: Path, name: str, samples: np.ndarray, text: str, phones: list) -> None:
    import soundfile

    soundfile.write(str(out / "wav" / f"{name}.wav"), samples, SAMPLE_RATE, subtype="PCM_16")
    (out / "phones" / f"{name}.json").write_text(json.dumps({"text": text, "phones": phones}) + "\n")


def _prepare(out: Path) -> Path:
    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "phones").mkdir(parents=True, exist_ok=True)
    return out


def _write_labels(out: Path, records: list[dict]) -> None:
    with open(out / "labels.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def fsdd_speech_set(fsdd: Path, alignments: Path, out: Path, held_out: tuple[str, ...] = FSDD_HELD_OUT) -> list[dict]:
    """FSDD recordings with alignments, but for `held_out` speakers, as a speech set (16 kHz)."""
    out = _prepare(out)
    table = json.loads(Path(alignments).read_text())
    records = []
    for file, entry in sorted(table.items()):
        speaker = file.split("_")[1]
        if speaker in held_out or not (Path(fsdd) / file).is_file():
            continue
        samples = load_audio(Path(fsdd) / file)
        seconds = len(samples) / SAMPLE_RATE
        name = "fsdd_" + Path(file).stem
        _write(out, name, samples, entry["text"], corpus_phones(entry["phones"], seconds))
        records.append({"id": name, "text": entry["text"], "speaker": "fsdd_" + speaker, "emotion": "neutral", "intensity": 1.0,
                        "seconds": round(seconds, 4), "source": "FSDD (CC BY-SA 4.0)"})
    _write_labels(out, records)
    return records


def _warp_one(task: tuple) -> dict:
    source, out, record, copy, seed = task
    rng = np.random.default_rng([seed, copy, int.from_bytes(record["id"].encode()[-6:], "big")])
    warp = Warp.draw(rng)
    phones = json.loads((Path(source) / "phones" / f"{record['id']}.json").read_text())
    samples = warp_voice(load_audio(Path(source) / "wav" / f"{record['id']}.wav"), warp)
    name = f"w{copy}_{record['id']}"
    _write(Path(out), name, samples, phones.get("text", ""), warp_phones(phones["phones"], warp.rate))
    return {**record, "id": name, "seconds": round(len(samples) / SAMPLE_RATE, 4), "speaker": f"{record['speaker']}~w{copy}",
            "voice_warp": warp.describe()}


def warped_speech_set(source: Path, out: Path, copies: int = 1, limit: int = 0, seed: int = 0, workers: int = 1,
                      held_out: tuple[str, ...] = HELD_OUT_SPEAKERS, progress: bool = True) -> list[dict]:
    """`copies` WORLD-warped copies (core of voice_warp.py) of the speech set at `source`, but for
    its held-out voices; at most `limit` source utterances when > 0."""
    out = _prepare(out)
    records = [json.loads(line) for line in (Path(source) / "labels.jsonl").read_text().splitlines()]
    records = [r for r in records if r.get("speaker") not in held_out]
    if limit and len(records) > limit:
        records = records[:limit]
    tasks = [(str(source), str(out), r, c, seed) for c in range(copies) for r in records]
    made = pool_map(_warp_one, tasks, workers, "voice warp", progress)
    _write_labels(out, made)
    return made


def pool_map(function, tasks: list, workers: int, desc: str, progress: bool) -> list:
    """`function` over `tasks` in order, in `workers` forked processes (1: here), with a progress bar."""
    from tqdm import tqdm

    made = []
    with tqdm(total=len(tasks), desc=desc, unit="clip", disable=not progress) as bar:
        if workers <= 1:
            for t in tasks:
                made.append(function(t))
                bar.update()
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for r in pool.imap(function, tasks, chunksize=8):
                    made.append(r)
                    bar.update()
    return made


def mix_speech_sets(sets: list[Path], out: Path) -> int:
    """One speech set that links to the files of several (ids must not clash). -> utterances"""
    out = _prepare(out)
    records, seen = [], set()
    for folder in sets:
        folder = Path(folder).resolve()
        for line in (folder / "labels.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r["id"] in seen:
                raise ValueError(f"utterance id {r['id']} is in two of the sets mixed")
            seen.add(r["id"])
            for kind, suffix in (("wav", ".wav"), ("phones", ".json")):
                link = out / kind / f"{r['id']}{suffix}"
                if not link.exists():
                    os.symlink(folder / kind / f"{r['id']}{suffix}", link)
            records.append(r)
    _write_labels(out, records)
    return len(records)
