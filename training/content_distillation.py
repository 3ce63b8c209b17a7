"""A content encoder that hears real voices, in the feature space the generators already read.

The student starts as the bundle's content encoder (the teacher) and learns, frame by frame, to
give (mean squared error on the last hidden state, what Gn reads):
- for a synthetic utterance, what the teacher gives it (so nothing Gn learned is lost);
- for a WORLD-warped copy of one (training/corpus/voice_warp.py: other vocal tracts, pitch, rate),
  what the teacher gives the original, time-scaled: the voice changes, the features must not;
- for a real recording with phone timings (FSDD), the teacher's phone prototypes
  (core/phone_features.py): what the teacher gives that phone in the voices it understands.
So Gn, Ge and Gh need no retraining, and the phone prototypes stay valid. Synthetic held-out voices
and held-out real speakers never enter (training/speech_mix.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.audio import load_audio
from ..core.phone_features import PhonePrototypes
from .encoder_training import EncoderTrainingConfig, Utterance, _batches, _Run, _train_epochs, normalise, read_speech_set, split


@dataclass
class Item(Utterance):
    """An utterance with where its target comes from: "teacher" (this audio), "original" (the
    teacher on `original`, time-scaled by `rate`) or "phones" (prototypes of `phones`)."""

    target: str = "teacher"
    original: Path | None = None
    rate: float = 1.0


def items_of(speech: Path, held_out: tuple[str, ...]) -> list[Item]:
    """A (mixed) speech set's training utterances, each with its target kind from labels.jsonl:
    `voice_warp` -> "original" (the source utterance in the set named by `warped_from`, or the id
    without its `wN_` prefix), `source` FSDD -> "phones", else "teacher"."""
    records = {json.loads(line)["id"]: json.loads(line) for line in (Path(speech) / "labels.jsonl").read_text().splitlines()}
    train, _ = split(read_speech_set(speech), held_out)
    out = []
    for u in train:
        r = records[u.id]
        if "voice_warp" in r:
            original = Path(r.get("warped_from") or (Path(speech) / "wav" / (u.id.split("_", 1)[1] + ".wav")))
            out.append(Item(**vars(u), target="original", original=original, rate=float(r["voice_warp"]["rate"])))
        elif str(r.get("source", "")).startswith("FSDD"):
            out.append(Item(**vars(u), target="phones"))
        else:
            out.append(Item(**vars(u)))
    return out


def _time_scale(features: torch.Tensor, frames: int) -> torch.Tensor:
    """(T, D) -> (frames, D), linear in time."""
    return torch.nn.functional.interpolate(features.T.unsqueeze(0), size=frames, mode="linear", align_corners=True)[0].T


def distill_content_encoder(teacher: Path, speech: Path, prototypes: Path, out: Path, cfg: EncoderTrainingConfig | None = None,
                            resume: bool = False, progress: bool = True) -> dict:
    """Train the student (see the module's docstring) and write it to `out` (a Wav2Vec2Model
    folder like the teacher's). `prototypes`: the teacher's phone_prototypes.safetensors."""
    from transformers import Wav2Vec2Model

    from ..core.encoders import quiet_transformers

    quiet_transformers()
    cfg = cfg or EncoderTrainingConfig(epochs=2, lr=2e-4, warmup_steps=50)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    protos = PhonePrototypes.load(prototypes)
    items = items_of(speech, tuple(cfg.held_out))
    teacher_model = Wav2Vec2Model.from_pretrained(str(teacher), dtype=torch.float32).eval()
    checkpoint = out / "checkpoint"
    resuming = resume and (checkpoint / "state.json").is_file()
    student = Wav2Vec2Model.from_pretrained(str(checkpoint if resuming else teacher), dtype=torch.float32)
    student.config.apply_spec_augment = False  # the targets are frame-exact
    torch.manual_seed(cfg.seed)
    steps_per_epoch = len(_batches(items, cfg.batch_seconds, np.random.default_rng(cfg.seed)))
    run = _Run(out, list(student.parameters()), steps_per_epoch * cfg.epochs, cfg)
    if resuming:
        run.resume()
    scale = torch.from_numpy(protos.vectors).float().var(0).mean()  # the features' spread: the loss in units of it

    def pad(audio: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.zeros(len(audio), max(len(a) for a in audio))
        mask = torch.zeros(values.shape, dtype=torch.long)
        for i, a in enumerate(audio):
            values[i, : len(a)] = torch.from_numpy(a)
            mask[i, : len(a)] = 1
        return values, mask

    def targets(batch: list[Item], frames: list[int]) -> list[torch.Tensor]:
        result: list[torch.Tensor | None] = [None] * len(batch)
        need = [i for i, u in enumerate(batch) if u.target != "phones"]
        if need:
            sources = [normalise(load_audio(batch[i].original if batch[i].target == "original" else batch[i].wav)) for i in need]
            values, mask = pad(sources)
            with torch.no_grad():
                hidden = teacher_model(values, attention_mask=mask).last_hidden_state
            own = teacher_model._get_feat_extract_output_lengths(mask.sum(1)).tolist()
            for j, i in enumerate(need):
                result[i] = _time_scale(hidden[j, : own[j]], frames[i])
        for i, u in enumerate(batch):
            if u.target == "phones":
                result[i] = protos.features(protos.timeline(u.phones, frames[i], 50.0))[0]
        return result

    def step(batch: list[Item]) -> tuple[torch.Tensor, tuple[float, ...]]:
        values, mask = pad([normalise(load_audio(u.wav)) for u in batch])
        frames = student._get_feat_extract_output_lengths(mask.sum(1)).tolist()
        goal = targets(batch, frames)
        hidden = student(values, attention_mask=mask).last_hidden_state
        losses = {"teacher": [], "original": [], "phones": []}
        for i, u in enumerate(batch):
            losses[u.target].append(((hidden[i, : frames[i]] - goal[i]) ** 2).mean() / scale)
        total = torch.stack([x for v in losses.values() for x in v]).mean()
        return total, tuple(float(torch.stack(v).detach().mean()) if v else 0.0 for v in losses.values())

    def save_model(folder: Path) -> None:
        student.save_pretrained(folder)

    student.train()
    finished = _train_epochs(run, items, "distil", step, ("synthetic", "warped", "real"), list(student.parameters()), save_model, progress)
    student.eval()
    student.save_pretrained(out)
    for extra in ("preprocessor_config.json",):
        if (Path(teacher) / extra).is_file():
            shutil.copy2(Path(teacher) / extra, out / extra)
    kinds = {k: sum(u.target == k for u in items) for k in ("teacher", "original", "phones")}
    report = {"teacher": str(teacher), "utterances": kinds, "log": run.state["log"], "finished": finished, "held_out_speakers": list(cfg.held_out)}
    (out / "distillation.json").write_text(json.dumps(report, indent=1))
    return report
