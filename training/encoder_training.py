"""Training the two small wav2vec2 encoders of the demo bundle on the speech-only set.

The paper uses wav2vec2 checkpoints pretrained on hundreds of hours of real speech; the demo bundle
cannot download them, so it trains small ones here (a few million parameters) on synthetic speech
with exact phone timings (`talking-head corpus speech`). They are saved with `save_pretrained`, so the
bundle loads them through the same `from_pretrained` path as hub checkpoints.

- Content encoder: `Wav2Vec2ForCTC` trained with CTC on the phone sequence. An auxiliary frame-wise
  phone classifier on the last hidden state (from the synthesizer's exact timings) makes training
  from scratch converge in minutes on a CPU, and it is exactly the information the face generator
  reads from those hidden states. The auxiliary head is not saved.
- Emotion encoder: `Wav2Vec2ForSequenceClassification` on the utterance's emotion label, its backbone
  started from the content encoder (as the paper's emotion model starts from a pretrained wav2vec2),
  with the convolutional feature encoder frozen.

Held-out voices (default M1 and F8: the flite `rms` voice and the espeak `en-us+f4` variant, which no
other speaker uses) never enter training, so phone error and emotion accuracy on them measure
generalisation to new voices.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.audio import SAMPLE_RATE, load_audio
from ..core.errors import TalkingHeadError

HELD_OUT_SPEAKERS = ("M1", "F8")
FRAME_SAMPLES = 320  # wav2vec2's convolutional stride: 50 frames per second
BLANK = "<pad>"


class EncoderTrainingError(TalkingHeadError):
    pass


def phone_inventory() -> list[str]:
    from .corpus.phones import PHONES

    return list(PHONES)


def ctc_vocabulary() -> dict[str, int]:
    """Blank first (CTC's blank is the tokenizer's pad token), then the phones; pauses are not tokens."""
    tokens = [BLANK, "<unk>", "|"] + [p for p in phone_inventory() if p != "pau"]
    return {t: i for i, t in enumerate(tokens)}


def backbone_config(**extra):
    """A small wav2vec2 (about 3.7 M parameters): 128-channel feature encoder, 4 x 256 transformer."""
    from transformers import Wav2Vec2Config

    settings = dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        conv_dim=(128,) * 7,
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=64,
        num_conv_pos_embedding_groups=16,
        hidden_dropout=0.05,
        attention_dropout=0.05,
        activation_dropout=0.05,
        feat_proj_dropout=0.05,
        final_dropout=0.05,
        layerdrop=0.0,
        mask_time_prob=0.05,
        mask_time_length=5,
    )
    return Wav2Vec2Config(**(settings | extra))


@dataclass
class Utterance:
    id: str
    speaker: str
    emotion: str
    seconds: float
    wav: Path
    phones: list  # [phone, start_s, end_s]
    intensity: float = 1.0  # how strongly the emotion was acted (labels.jsonl; 1 for neutral)


def read_speech_set(folder: Path) -> list[Utterance]:
    folder = Path(folder)
    labels = folder / "labels.jsonl"
    if not labels.is_file():
        raise EncoderTrainingError(f"{folder} is not a speech set (no labels.jsonl): build one with `talking-head corpus speech`")
    out = []
    for line in labels.read_text().splitlines():
        r = json.loads(line)
        phones = json.loads((folder / "phones" / f"{r['id']}.json").read_text())["phones"]
        speaker = r.get("speaker") or r["voice"]["name"]
        out.append(Utterance(r["id"], speaker, r["emotion"], float(r["seconds"]), folder / "wav" / f"{r['id']}.wav", phones,
                             float(r.get("intensity", 1.0))))
    return out


def split(utterances: list[Utterance], held_out: tuple[str, ...] = HELD_OUT_SPEAKERS) -> tuple[list[Utterance], list[Utterance]]:
    train = [u for u in utterances if u.speaker not in held_out]
    test = [u for u in utterances if u.speaker in held_out]
    if not train or not test:
        raise EncoderTrainingError(f"speech set has no {'training' if not train else 'held-out'} utterances (held-out voices {', '.join(held_out)})")
    return train, test


def normalise(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as the feature extractor (and the pipeline's windows) do."""
    return ((samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)).astype(np.float32)


def frame_phones(phones: list, frames: int) -> np.ndarray:
    """Phone index of each 50 Hz frame (the phone under the frame's centre)."""
    index = {p: i for i, p in enumerate(phone_inventory())}
    centres = (np.arange(frames) * FRAME_SAMPLES + 200) / SAMPLE_RATE
    ends = np.array([e for _, _, e in phones])
    which = np.minimum(np.searchsorted(ends, centres, side="right"), len(phones) - 1)
    return np.array([index[phones[w][0]] for w in which], dtype=np.int64)


def _batches(utterances: list[Utterance], batch_seconds: float, rng: np.random.Generator) -> list[list[Utterance]]:
    """Length-sorted batches of at most `batch_seconds` of padded audio, in random order."""
    ordered = sorted(utterances, key=lambda u: u.seconds)
    batches, current = [], []
    for u in ordered:
        if current and u.seconds * (len(current) + 1) > batch_seconds:
            batches.append(current)
            current = []
        current.append(u)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def _collate(batch: list[Utterance]) -> tuple[torch.Tensor, torch.Tensor]:
    audio = [normalise(load_audio(u.wav)) for u in batch]
    length = max(len(a) for a in audio)
    values = torch.zeros(len(audio), length)
    mask = torch.zeros(len(audio), length, dtype=torch.long)
    for i, a in enumerate(audio):
        values[i, : len(a)] = torch.from_numpy(a)
        mask[i, : len(a)] = 1
    return values, mask


@dataclass
class EncoderTrainingConfig:
    epochs: int = 6
    lr: float = 1e-3
    warmup_steps: int = 300
    batch_seconds: float = 40.0
    aux_weight: float = 0.5
    minutes: float | None = None  # stop (and save) after this much training time
    held_out: tuple = HELD_OUT_SPEAKERS  # voices kept out of training, for the error figures
    backbone: dict = field(default_factory=dict)  # wav2vec2 config overrides (tests use a tiny one)
    checkpoint_every: int = 40  # steps between mid-epoch checkpoints (long epochs on a shared CPU)
    # Emotion encoder: also train the convolutional front end. Started from the content encoder's,
    # it was shaped for phones under CTC and passes little pitch; emotion is heard in pitch.
    train_feature_encoder: bool = False
    seed: int = 0


class _Run:
    """Shared loop: AdamW, warm-up + cosine schedule, gradient clipping, resumable checkpoints."""

    def __init__(self, out: Path, params, total_steps: int, cfg: EncoderTrainingConfig) -> None:
        self.out, self.cfg = Path(out), cfg
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
        warm = max(1, min(cfg.warmup_steps, total_steps // 5))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            done = min(1.0, (step - warm) / max(1, total_steps - warm))
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.state = {"epoch": 0, "step": 0, "seconds": 0.0, "log": []}
        self.started = time.monotonic()

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint"

    def resume(self) -> bool:
        state = self.checkpoint / "state.json"
        if not state.is_file():
            return False
        self.state = json.loads(state.read_text())
        opt = torch.load(self.checkpoint / "optimizer.pt", weights_only=True)
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        return True

    def out_of_time(self) -> bool:
        if self.cfg.minutes is None:
            return False
        return self.state["seconds"] + (time.monotonic() - self.started) > 60 * self.cfg.minutes

    def save(self, save_model) -> None:
        self.checkpoint.mkdir(parents=True, exist_ok=True)
        save_model(self.checkpoint)
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, self.checkpoint / "optimizer.pt")
        now = time.monotonic()
        self.state["seconds"] += now - self.started
        self.started = now
        (self.checkpoint / "state.json").write_text(json.dumps(self.state, indent=1))


def _train_epochs(run: _Run, train: list[Utterance], kind: str, step, columns: tuple[str, ...], clip: list, save_model, progress: bool) -> bool:
    """Epochs from where `run` stopped. `step(batch)` gives the loss and the figures to average per
    epoch. Checkpoints every `checkpoint_every` steps and at the end of each epoch; returns False
    when the time budget stopped it (resume continues at the same batch)."""
    from tqdm import tqdm

    cfg = run.cfg
    for epoch in range(run.state["epoch"], cfg.epochs):
        batches = _batches(train, cfg.batch_seconds, np.random.default_rng([cfg.seed, epoch]))
        totals, count = np.zeros(len(columns)), 0
        done = run.state.pop("batch", 0)
        bar = tqdm(batches[done:], desc=f"{kind} epoch {epoch + 1}/{cfg.epochs}", initial=done, total=len(batches), disable=not progress)
        for position, batch in enumerate(bar, start=done + 1):
            loss, figures = step(batch)
            run.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(clip, 5.0)
            run.optimizer.step()
            run.scheduler.step()
            run.state["step"] += 1
            totals, count = totals + figures, count + 1
            bar.set_postfix({c: f"{t / count:.3f}" for c, t in zip(columns, totals)})
            out_of_time = run.out_of_time()
            if position < len(batches) and (out_of_time or position % cfg.checkpoint_every == 0):
                run.state["epoch"], run.state["batch"] = epoch, position
                run.save(save_model)
                if out_of_time:
                    return False
                run.state.pop("batch")
        run.state["log"].append({"epoch": epoch + 1, **{c: t / max(1, count) for c, t in zip(columns, totals)}, "steps": count})
        run.state["epoch"] = epoch + 1
        run.save(save_model)
    return True


def train_content_encoder(speech: Path, out: Path, cfg: EncoderTrainingConfig | None = None, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) the CTC content encoder; writes a `from_pretrained` folder to `out`."""
    cfg = cfg or EncoderTrainingConfig()
    from safetensors.torch import load_file, save_file
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    from ..core.encoders import quiet_transformers

    quiet_transformers()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = split(read_speech_set(speech), tuple(cfg.held_out))
    vocab = ctc_vocabulary()
    torch.manual_seed(cfg.seed)
    checkpoint = out / "checkpoint"
    resuming = resume and (checkpoint / "state.json").is_file()
    if resuming:
        model = Wav2Vec2ForCTC.from_pretrained(checkpoint)
    else:
        model = Wav2Vec2ForCTC(backbone_config(vocab_size=len(vocab), pad_token_id=vocab[BLANK], ctc_loss_reduction="mean", ctc_zero_infinity=True, **cfg.backbone))
    aux = torch.nn.Linear(model.config.hidden_size, len(phone_inventory()))
    if resuming:
        aux.load_state_dict(load_file(checkpoint / "aux_head.safetensors"))
    steps_per_epoch = len(_batches(train, cfg.batch_seconds, np.random.default_rng(cfg.seed)))
    run = _Run(out, list(model.parameters()) + list(aux.parameters()), steps_per_epoch * cfg.epochs, cfg)
    if resuming:
        run.resume()

    def save_model(folder: Path) -> None:
        model.save_pretrained(folder)
        save_file(aux.state_dict(), folder / "aux_head.safetensors")

    tokens = {p: i for p, i in vocab.items()}

    def step(batch: list[Utterance]) -> tuple[torch.Tensor, tuple[float, float]]:
        values, mask = _collate(batch)
        frames = model._get_feat_extract_output_lengths(mask.sum(1)).tolist()
        targets = [[tokens[p] for p, _, _ in u.phones if p != "pau"] for u in batch]
        labels = torch.full((len(batch), max(len(t) for t in targets)), -100, dtype=torch.long)
        for i, t in enumerate(targets):
            labels[i, : len(t)] = torch.tensor(t)
        output = model(values, attention_mask=mask, labels=labels, output_hidden_states=True)
        hidden = output.hidden_states[-1]
        frame_labels = torch.full(hidden.shape[:2], -100, dtype=torch.long)
        for i, (u, n) in enumerate(zip(batch, frames)):
            frame_labels[i, :n] = torch.from_numpy(frame_phones(u.phones, n))
        aux_loss = torch.nn.functional.cross_entropy(aux(hidden).transpose(1, 2), frame_labels, ignore_index=-100)
        return output.loss + cfg.aux_weight * aux_loss, (output.loss.item(), aux_loss.item())

    model.train()
    finished = _train_epochs(run, train, "content", step, ("ctc", "frame_ce"), list(model.parameters()), save_model, progress)
    model.eval()
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=True).save_pretrained(out)
    vocab_file = out / "vocab.json"
    vocab_file.write_text(json.dumps(vocab))
    Wav2Vec2CTCTokenizer(str(vocab_file), pad_token=BLANK, unk_token="<unk>", word_delimiter_token="|").save_pretrained(out)
    report = {"held_out_speakers": list(cfg.held_out), "train_utterances": len(train), "log": run.state["log"], "finished": finished}
    report["phone_error_rate_held_out"] = phone_error_rate(model, held[:300])
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


def train_emotion_encoder(speech: Path, out: Path, init: Path, cfg: EncoderTrainingConfig | None = None, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) the emotion classifier, its backbone started from the content encoder `init`."""
    cfg = cfg or EncoderTrainingConfig()
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    from .corpus.emotions import EMOTIONS
    from ..core.encoders import quiet_transformers

    quiet_transformers()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = split(read_speech_set(speech), tuple(cfg.held_out))
    labels = list(EMOTIONS)
    label_ids = {label: i for i, label in enumerate(labels)}
    run_source = Path(init)
    cp = out / "checkpoint"
    if resume and (cp / "state.json").is_file():
        run_source = cp
    torch.manual_seed(cfg.seed)
    model = Wav2Vec2ForSequenceClassification.from_pretrained(  # float32 even from a packed (float16) encoder
        run_source, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids, classifier_proj_size=128, mask_time_prob=0.05,
        dtype=torch.float32,
    )
    if not cfg.train_feature_encoder:
        model.freeze_feature_encoder()
    params = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = len(_batches(train, cfg.batch_seconds, np.random.default_rng(cfg.seed)))
    run = _Run(out, params, steps_per_epoch * cfg.epochs, cfg)
    if resume:
        run.resume()

    def step(batch: list[Utterance]) -> tuple[torch.Tensor, tuple[float, float]]:
        values, mask = _collate(batch)
        target = torch.tensor([label_ids[u.emotion] for u in batch])
        output = model(values, attention_mask=mask, labels=target)
        return output.loss, (output.loss.item(), (output.logits.argmax(-1) == target).float().mean().item())

    model.train()
    finished = _train_epochs(run, train, "emotion", step, ("loss", "train_accuracy"), params, model.save_pretrained, progress)
    model.eval()
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=True).save_pretrained(out)
    report = {"held_out_speakers": list(cfg.held_out), "train_utterances": len(train), "log": run.state["log"], "finished": finished}
    report.update(emotion_accuracy(model, held[:300]))
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


@torch.no_grad()
def collapse_ctc(ids: list[int], dropped: set[int] | frozenset[int]) -> list[int]:
    """Greedy CTC decoding of the best token per frame: repeats merged, then `dropped` (the blank,
    separators) left out."""
    out, previous = [], None
    for i in ids:
        if i != previous and i not in dropped:
            out.append(i)
        previous = i
    return out


def decode_phones(model, samples: np.ndarray) -> list[str]:
    """Greedy CTC decoding: best token per frame, repeats merged, blanks dropped."""
    vocabulary = ctc_vocabulary()
    inverse = {i: t for t, i in vocabulary.items()}
    ids = model(torch.from_numpy(normalise(samples))[None]).logits[0].argmax(-1).tolist()
    return [inverse.get(i, "<unk>") for i in collapse_ctc(ids, {vocabulary[BLANK], vocabulary["|"]})]


def phone_error_rate(model, utterances: list[Utterance]) -> float:
    """Levenshtein distance between decoded and true phone strings (pauses excluded), over all phones."""
    model.eval()
    errors = total = 0
    for u in utterances:
        reference = [p for p, _, _ in u.phones if p != "pau"]
        errors += edit_distance(decode_phones(model, load_audio(u.wav)), reference)
        total += len(reference)
    return errors / max(1, total)


def edit_distance(a: list[str], b: list[str]) -> int:
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


@torch.no_grad()
def emotion_accuracy(model, utterances: list[Utterance]) -> dict:
    model.eval()
    labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for u in utterances:
        logits = model(torch.from_numpy(normalise(load_audio(u.wav)))[None]).logits[0]
        confusion[labels.index(u.emotion), int(logits.argmax())] += 1
    return {"emotion_accuracy_held_out": float(np.trace(confusion) / max(1, confusion.sum())), "confusion": confusion.tolist(), "labels": labels}
