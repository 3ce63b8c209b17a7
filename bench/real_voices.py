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
3. Visemes per class: lip opening on labiodental (f, v), bilabial (p, b, m), open-vowel and
   rounded-vowel frames of FSDD vs the synthetic held-out voices; ratio real / synthetic.
   FSDD's ten digit words have no p, b or m: that class is synthetic only.
4. Phone error rate from a CTC head: only for an encoder that has one (`--ctc-encoder DIR`, the
   folder `talking-head encoders content` wrote); the packed demo bundle's has none, which is said.

The recordings are read at run time from ../shared (relative to the repository root); nothing
of them is copied. FSDD is 8 kHz: `load_audio` resamples it to 16 kHz.
Usage: python bench/real_voices.py --bundle weights/demo [--speech DIR] [--utterances 300]
       [--fsdd 300] [--viseme-clips 100] [--json OUT.json]
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
    """Multinomial logistic regression on standardised features; returns predict(x) -> labels."""
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

    @torch.no_grad()
    def predict(z: np.ndarray) -> np.ndarray:
        return layer(torch.from_numpy((z - mean) / std).float()).argmax(-1).numpy()

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

def fsdd_clips(limit: int, speakers: tuple[str, ...] = FSDD_HELD_OUT) -> list[tuple[Path, list, str]]:
    """Up to `limit` aligned FSDD recordings of `speakers` (by default the two that no shipped
    encoder trains on), spread over speakers and digits (every k-th file): (wav, phones, text)."""
    alignments = json.loads((REAL_SPEECH / "fsdd_alignments.json").read_text())
    names = sorted(n for n in alignments if n.split("_")[1] in speakers)
    step = max(1, len(names) // limit)
    return [(REAL_SPEECH / "fsdd" / n, alignments[n]["phones"], alignments[n]["text"]) for n in names[::step][:limit]]


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
    phone prototypes) or the content encoder; `rest` (rest in pauses, the default of animate)."""

    transcript: bool = False
    rest: bool = True


UNALIGNED: list[str] = []  # clips the aligner could not align to their words (left out of the transcript figures)


def context_of(animator, samples: np.ndarray, text: str, reading: Reading, name: str = "") -> np.ndarray | None:
    """What Gn reads; None (and the clip noted in UNALIGNED) when its words do not align."""
    from talking_head.core.alignment import TranscriptError, align

    with torch.no_grad():
        try:
            phones = align(samples, text) if reading.transcript else None
        except TranscriptError:
            UNALIGNED.append(name)
            return None
        return animator.features(samples, phones)[0][0].float().cpu().numpy()  # (kN, Dc)


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


def lip_opening(animator, samples: np.ndarray, text: str = "", reading: Reading | None = None) -> np.ndarray:
    """(N,) upper-to-lower lip distance on Ge's faces (no head motion), template units."""
    from talking_head.core.template_head import load_template_head
    from talking_head.training.metrics import lip_distance

    marks = animator.bundle.config.landmarks or load_template_head().landmarks
    reading = reading or Reading()
    anim = animator.animate(samples, seed=0, with_head=False, transcript=text if reading.transcript else "", rest_in_pauses=reading.rest)
    return lip_distance(anim.emotional, marks["upper_lip"], marks["lower_lip"])


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


def visemes(animator, synthetic, real, inventory, reading: Reading) -> dict:
    from talking_head.core.alignment import TranscriptError
    from talking_head.core.audio import load_audio

    fps = animator.bundle.config.fps
    out = {}
    for name, items in (("synthetic held-out", synthetic), ("real (FSDD)", real)):
        values, phones = [], []
        for wav, ph, text in items:
            try:
                opening = lip_opening(animator, load_audio(wav), text, reading)
            except TranscriptError:
                UNALIGNED.append(Path(wav).name)
                continue
            values.append(opening)
            phones += [inventory[i] for i in labels_at(ph, (np.arange(len(opening)) + 0.5) / fps, inventory)]
        out[name] = mean_by_class(np.concatenate(values), phones, VISEME_CLASSES)
    out["real / synthetic"] = {
        c: (out["real (FSDD)"][c]["mean"] / out["synthetic held-out"][c]["mean"]
            if out["real (FSDD)"][c]["mean"] is not None and out["synthetic held-out"][c]["mean"] else None)
        for c in VISEME_CLASSES
    }
    return out


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
    reading = Reading(transcript=args.transcript, rest=not args.no_pause_rest)
    with tempfile.TemporaryDirectory() as tmp:
        speech = args.speech or build_speech_set(args.utterances, Path(tmp) / "speech")
        texts = {json.loads(line)["id"]: json.loads(line).get("text", "") for line in (speech / "labels.jsonl").read_text().splitlines()}
        train, held_out = split(read_speech_set(speech))
        train = [(u.wav, u.phones, texts[u.id]) for u in train]
        held_out = [(u.wav, u.phones, texts[u.id]) for u in held_out]
        fsdd = fsdd_clips(args.fsdd)
        real = {"real (FSDD)": fsdd, "real (11 s recording)": real_clip_items()}
        inventory = phone_inventory()
        animator = load_animator(args.bundle, "cpu", "fp32")
        report = {"bundle": args.bundle.name, "reading": vars(reading), "synthetic utterances": {"train": len(train), "held-out": len(held_out)},
                  "fsdd recordings": len(fsdd), "fsdd speakers": list(FSDD_HELD_OUT),
                  "probe": probe(animator, train, held_out, real, inventory, reading)}
        report["pauses"] = pauses(animator, {"real_speech_11s.wav": (REAL_CLIP, REAL_CLIP_TEXT),
                                             "demo_speech.wav": (ROOT / "samples" / "demo_speech.wav", DEMO_TEXT)}, reading)
        if args.viseme_clips:
            report["visemes"] = visemes(animator, held_out[: args.viseme_clips], fsdd_clips(args.viseme_clips), inventory, reading)
        report["ctc"] = ctc_phone_error(args.bundle, args.ctc_encoder, fsdd)

    p = report["probe"]
    real_names = [k for k in p["frames"] if k.startswith("real")]
    print(f"reading: {'transcript (forced alignment -> phone prototypes)' if reading.transcript else 'content encoder'}; "
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
        print("lip opening per phone class: synthetic held-out | FSDD | ratio")
        for c in VISEME_CLASSES:
            s, r = v["synthetic held-out"][c], v["real (FSDD)"][c]
            print(f"  {c:18s} {_f(s['mean'])} ({s['frames']}) | {_f(r['mean'])} ({r['frames']}) | {_f(v['real / synthetic'][c])}")
    for k, val in report["ctc"].items():
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
