"""Emotion heard: what a bundle's emotion hearing (or its emotion encoder) says of real acted speech and of held-out voices.

What is asked: the bundle's emotion hearing (`emotion_hearing.json`, core/emotion_hearing.py:
prosodic numbers and a logistic regression; what `emotion_probs` and the panel show) when it has
one, else its emotion encoder; `--ear encoder` asks the encoder, `--encoder FOLDER` another one.

1. EmoDB (../shared/real_speech/emodb/, next to the repository, read at run time, never copied;
   research-only: it measures, it never trains what ships): the clips of the four classes both
   sides have (neutral, happiness, sadness, anger), each classified as a whole (mean of the
   encoder's per-frame scores: its head is linear, so that is the score of the clip), answers
   limited to those four labels. Accuracy and unweighted average recall (UAR: the mean of the
   per-class recalls, the usual figure for unbalanced emotion sets; chance 0.25) and the confusion.
2. A speech set (--speech, `talking-head corpus speech`): its held-out voices (M1, F8, which no
   shipped encoder trains on), five classes as spoken by the synthesisers; and the same
   utterances given audible emotion (training/corpus/emotion_voice.py, seeded), five classes.
3. A corpus (--data, BIWI layout): the takes of its unseen subjects (emotional takes under their
   emotion, neutral takes as neutral), five classes.
4. The demo sample (samples/demo_speech.wav): per passage of samples/demo_speech.json, the label
   heard over the passage and its probability.

Usage: python bench/emotion_real.py [--bundle weights/demo] [--ear hearing|encoder] [--speech SET]
       [--data CORPUS] [--clips 300] [--narrow-band] [--json OUT.json]
--narrow-band: every clip as an 8 kHz recording of it would hold it (phone-band speech).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "real_speech" / "emodb"
DEMO = ROOT / "samples" / "demo_speech.json"
EMODB_LABELS = {"neutral": "neutral", "happiness": "happy", "sadness": "sad", "anger": "angry"}
SHARED = ("neutral", "happy", "sad", "angry")


# ---- pure functions (tested in tests/test_emotion_voice.py) ----

def emodb_items(folder: Path) -> list[tuple[Path, str]]:
    """(wav, label) for the EmoDB clips of the four shared classes, labels in the bundle's words."""
    items = []
    with open(Path(folder) / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            label = EMODB_LABELS.get(row["emotion"])
            if label is not None:
                items.append((Path(folder) / "wav" / row["file"], label))
    return items


def confusion_matrix(truth: list[str], answers: list[str], labels: list[str]) -> np.ndarray:
    """(C, C) counts, rows the true label, columns the answer."""
    out = np.zeros((len(labels), len(labels)), dtype=int)
    for t, a in zip(truth, answers):
        out[labels.index(t), labels.index(a)] += 1
    return out


def scores(confusion: np.ndarray) -> dict:
    """Accuracy and UAR (mean recall over the classes that occur) of a confusion matrix."""
    total = confusion.sum()
    rows = confusion.sum(axis=1)
    recalls = [confusion[i, i] / rows[i] for i in range(len(rows)) if rows[i] > 0]
    return {"accuracy": float(np.trace(confusion) / max(1, total)), "uar": float(np.mean(recalls)) if recalls else 0.0, "clips": int(total)}


def answer(mean_logits: np.ndarray, labels: list[str], allowed: tuple[str, ...] | None = None) -> str:
    """The best label among `allowed` (all when None)."""
    order = np.argsort(-np.asarray(mean_logits))
    for i in order:
        if allowed is None or labels[i] in allowed:
            return labels[i]
    raise ValueError("none of the allowed labels is one of the encoder's")


# ---- measurements ----

def clip_logits(encoder, samples: np.ndarray) -> np.ndarray:
    """Mean per-frame score of the whole clip. (C,)"""
    return encoder.encode(samples).logits.mean(dim=0).numpy()


class Ear:
    """What is asked: `clip(samples)` -> (C,) scores of a whole clip (argmax = the answer), `take(samples)`
    -> (T, C) probabilities of each moment of a take at `rate` a second, and `labels`."""

    def __init__(self, encoder=None, hearing=None, narrow: bool = False) -> None:
        self.encoder, self.hearing, self.narrow = encoder, hearing, narrow
        self.labels = list(hearing.labels if hearing is not None else encoder.labels)
        self.rate = 50.0  # the encoder's frames; the hearing is asked at the same rate

    def _heard(self, samples: np.ndarray) -> np.ndarray:
        """What reaches the ear: the clip, or with `narrow` what an 8 kHz recording of it holds."""
        from talking_head.training.emotion_hearing import narrow_band

        return narrow_band(samples) if self.narrow else samples

    def clip(self, samples: np.ndarray) -> np.ndarray:
        samples = self._heard(samples)
        return np.log(self.hearing.clip(samples)) if self.hearing is not None else clip_logits(self.encoder, samples)

    def take(self, samples: np.ndarray) -> np.ndarray:
        samples = self._heard(samples)
        if self.hearing is not None:
            return self.hearing.take(samples, int(len(samples) / 16_000 * self.rate), self.rate)
        return torch.softmax(self.encoder.encode(samples).logits, dim=-1).numpy()  # 50 frames a second, each scored over the second around it


def classify(ear: Ear, items: list[tuple[object, str]], labels: list[str], allowed=None, load=None, group=None) -> dict:
    """Scores and confusion of the answers; `group(source)` -> a name: the accuracy per group too."""
    from talking_head.core.audio import load_audio

    load = load or load_audio
    truth, answers = [], []
    for source, label in items:
        truth.append(label)
        answers.append(answer(ear.clip(load(source)), labels, allowed))
    names = list(allowed) if allowed else labels
    confusion = confusion_matrix(truth, answers, names)
    out = {**scores(confusion), "labels": names, "confusion": confusion.tolist()}
    if group is not None:
        groups = [group(source) for source, _ in items]
        out["accuracy by group"] = {g: round(float(np.mean([t == a for t, a, h in zip(truth, answers, groups) if h == g])), 3) for g in sorted(set(groups))}
    return out


def speech_set_items(speech: Path, limit: int) -> list:
    """The held-out voices' utterances (training/encoder_training.py `Utterance`), at most `limit`."""
    from talking_head.training.encoder_training import read_speech_set, split

    return split(read_speech_set(speech))[1][:limit]


def with_emotion_voice(utterance) -> np.ndarray:
    """The utterance with audible emotion for its label, seeded by its id (as training makes them)."""
    from talking_head.core.audio import load_audio
    from talking_head.training.corpus.emotion_voice import draw, emotional_voice

    rng = np.random.default_rng([int(utterance.id) if utterance.id.isdigit() else 0, 17])
    return emotional_voice(load_audio(utterance.wav), draw(utterance.emotion, rng), utterance.intensity, rng)


def corpus_items(data: Path) -> list[tuple[Path, str]]:
    meta = json.loads((Path(data) / "corpus.json").read_text())
    unseen = {s["name"] for s in meta["subjects"] if s.get("split") == "unseen"}
    return [(Path(data) / "wav" / f"{clip}.wav", info["emotion"]) for clip, info in sorted(meta["clips"].items())
            if info["subject"] in unseen and (Path(data) / "wav" / f"{clip}.wav").is_file()]


def demo_passages(ear: Ear, labels: list[str]) -> list[dict]:
    from talking_head.core.audio import load_audio

    meta = json.loads(DEMO.read_text())
    samples = load_audio(DEMO.parent / meta["file"])
    whole = ear.take(samples)
    out = []
    for p in meta["passages"]:
        piece = samples[int(p["start"] * 16_000): int(p["end"] * 16_000)]
        scores_ = ear.clip(piece)
        probs = np.exp(scores_ - scores_.max())
        probs /= probs.sum()
        # What the panel and `emotion_probs` show: each moment's label, from the whole take.
        per_frame = whole[int(p["start"] * ear.rate): int(p["end"] * ear.rate)].argmax(axis=1)
        shares = {label: round(float(np.mean(per_frame == i)), 3) for i, label in enumerate(labels)}
        out.append({"said as": p["emotion"], "heard as": labels[int(probs.argmax())], "probabilities": {label: round(float(q), 3) for label, q in zip(labels, probs)},
                    "share of its frames heard as each label (over the whole take)": shares})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--ear", choices=("hearing", "encoder"), default="hearing", help="the bundle's emotion hearing (when it has one) or its emotion encoder")
    parser.add_argument("--encoder", type=Path, help="an emotion encoder folder to measure instead of the bundle's")
    parser.add_argument("--speech", type=Path, help="speech set whose held-out voices to classify")
    parser.add_argument("--data", type=Path, help="corpus (BIWI layout) whose unseen subjects' takes to classify")
    parser.add_argument("--clips", type=int, default=300, help="at most this many held-out utterances")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--narrow-band", action="store_true", help="hear every clip as an 8 kHz recording of it would hold it (nothing above 4 kHz)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from talking_head.core.bundle_info import read_bundle_info
    from talking_head.core.emotion_hearing import FILE as HEARING, EmotionHearing
    from talking_head.core.encoders import EmotionEncoder, resolve_source

    hearing = None
    if args.encoder:
        encoder = EmotionEncoder(str(args.encoder))
    else:
        info = read_bundle_info(args.bundle)
        encoder = EmotionEncoder(resolve_source(info.config.emotion_encoder, args.bundle, "emotion encoder"))
        if args.ear == "hearing" and (args.bundle / HEARING).is_file():
            hearing = EmotionHearing.load(args.bundle / HEARING)
    ear = Ear(encoder, hearing, args.narrow_band)
    labels = ear.labels
    report: dict = {"bundle": args.bundle.name, "ear": "emotion hearing" if hearing is not None else "emotion encoder",
                    "encoder": args.encoder.name if args.encoder else "the bundle's", "labels": labels, "narrow_band": args.narrow_band}
    print(f"asking the {report['ear']} of {args.encoder or args.bundle}" + (", every clip narrowed to what an 8 kHz recording holds" if args.narrow_band else ""))
    if (EMODB / "labels.csv").is_file():
        report["emodb"] = classify(ear, emodb_items(EMODB), labels, allowed=SHARED, group=lambda path: "speaker " + Path(path).name[:2])
    else:
        print(f"no EmoDB: {EMODB.name}/labels.csv missing next to the repository; skipped", file=sys.stderr)
    if args.speech:
        items = speech_set_items(args.speech, args.clips)
        report["held-out voices"] = classify(ear, [(u.wav, u.emotion) for u in items], labels)
        report["held-out voices, audible emotion"] = classify(ear, [(u, u.emotion) for u in items], labels, load=with_emotion_voice)
    if args.data:
        report["corpus unseen subjects"] = classify(ear, corpus_items(args.data), labels)
    report["demo sample"] = demo_passages(ear, labels)

    for name in ("emodb", "held-out voices", "held-out voices, audible emotion", "corpus unseen subjects"):
        if name in report:
            r = report[name]
            print(f"{name:34s} accuracy {r['accuracy']:.3f}  UAR {r['uar']:.3f}  ({r['clips']} clips, {len(r['labels'])} classes)")
            print("    confusion (rows true, columns heard): " + "  ".join(f"{lab}: {row}" for lab, row in zip(r["labels"], r["confusion"])))
            if "accuracy by group" in r:
                print("    accuracy by " + ", ".join(f"{g} {v:.3f}" for g, v in r["accuracy by group"].items()))
    for p in report["demo sample"]:
        shares = p["share of its frames heard as each label (over the whole take)"]
        print(f"demo passage said as {p['said as']:8s} heard as {p['heard as']:9s} {p['probabilities']}; per second: "
              + ", ".join(f"{k} {v:.2f}" for k, v in shares.items() if v > 0))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
