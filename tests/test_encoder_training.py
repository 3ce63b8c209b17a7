"""Encoder training for the demo bundle: labels, loss falling, resume, and loading through the
same `from_pretrained` code that loads hub checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from talking_head.training.encoder_training import (
    EncoderTrainingConfig,
    EncoderTrainingError,
    ctc_vocabulary,
    edit_distance,
    frame_phones,
    phone_inventory,
    read_speech_set,
    train_content_encoder,
    train_emotion_encoder,
)

from conftest import write_clip

ROOT = Path(__file__).resolve().parents[1]

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "conv_dim": (32,) * 7,
        "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}
TONES = {"aa": 300.0, "m": 700.0, "s": 1500.0, "iy": 2500.0}


def _speech_set(folder, utterances: int = 12) -> None:
    """Utterances made of tones, one frequency per phone, with exact timings and an emotion."""
    (folder / "wav").mkdir(parents=True)
    (folder / "phones").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(utterances):
        phones, t, pieces = [["pau", 0.0, 0.1]], 0.1, [np.zeros(1600)]
        for _ in range(int(rng.integers(3, 6))):
            name = list(TONES)[int(rng.integers(len(TONES)))]
            length = float(rng.uniform(0.12, 0.25))
            n = int(length * 16000)
            pieces.append(0.3 * np.sin(2 * np.pi * TONES[name] * np.arange(n) / 16000))
            phones.append([name, round(t, 5), round(t + n / 16000, 5)])
            t += n / 16000
        wav = np.concatenate(pieces).astype(np.float32)
        name = f"{i:06d}"
        soundfile.write(folder / "wav" / f"{name}.wav", wav, 16000)
        (folder / "phones" / f"{name}.json").write_text(json.dumps({"text": "", "phones": phones}))
        speaker = "held" if i % 4 == 0 else "train"
        lines.append(json.dumps({"id": name, "speaker": speaker, "voice": {}, "emotion": ["neutral", "happy"][i % 2], "seconds": len(wav) / 16000}))
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n")


def test_vocabulary_and_frame_labels():
    vocab = ctc_vocabulary()
    assert vocab["<pad>"] == 0 and "pau" not in vocab and "aa" in vocab
    labels = frame_phones([["pau", 0.0, 0.1], ["aa", 0.1, 0.3]], 15)
    inventory = phone_inventory()
    # 50 Hz frames, centre at (320 i + 200) / 16000 s: frames 0-4 (centre 0.0925 s) lie in the pause, 5-14 in "aa".
    assert [inventory[i] for i in labels] == ["pau"] * 5 + ["aa"] * 10
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["a", "b"], ["b", "a"]) == 2


def test_speech_set_errors(tmp_path):
    with pytest.raises(EncoderTrainingError, match="labels.jsonl"):
        read_speech_set(tmp_path)
    _speech_set(tmp_path / "s", 4)
    with pytest.raises(EncoderTrainingError, match="held-out"):
        train_content_encoder(tmp_path / "s", tmp_path / "out", EncoderTrainingConfig(epochs=1, held_out=("nobody",), backbone=TINY), progress=False)


@pytest.mark.slow
def test_content_and_emotion_encoders_train_resume_and_load(tmp_path):
    from talking_head.core.encoders import ContextEncoder, EmotionEncoder

    speech = tmp_path / "speech"
    _speech_set(speech)
    cfg = EncoderTrainingConfig(epochs=6, lr=3e-3, warmup_steps=4, batch_seconds=4.0, held_out=("held",), backbone=TINY, checkpoint_every=3)
    first = train_content_encoder(speech, tmp_path / "content", cfg, progress=False)
    log = first["log"]
    assert len(log) == 6
    assert log[-1]["ctc"] < log[0]["ctc"] and log[-1]["frame_ce"] < log[0]["frame_ce"]
    assert 0.0 <= first["phone_error_rate_held_out"] <= 2.0

    # Resume continues from the checkpoint instead of starting over.
    more = EncoderTrainingConfig(**{**cfg.__dict__, "epochs": 7})
    resumed = train_content_encoder(speech, tmp_path / "content", more, resume=True, progress=False)
    assert len(resumed["log"]) == 7 and resumed["log"][:6] == log

    context = ContextEncoder(str(tmp_path / "content"), window_s=2.0, context_s=0.5)
    audio, _ = soundfile.read(speech / "wav" / "000001.wav", dtype="float32")
    assert context.encode(audio).shape[-1] == 32

    emotion_cfg = EncoderTrainingConfig(epochs=2, lr=3e-3, warmup_steps=2, batch_seconds=4.0, held_out=("held",))
    report = train_emotion_encoder(speech, tmp_path / "emotion", tmp_path / "content", emotion_cfg, progress=False)
    assert 0.0 <= report["emotion_accuracy_held_out"] <= 1.0 and len(report["log"]) == 2
    features = EmotionEncoder(str(tmp_path / "emotion"), window_s=2.0, context_s=0.5).encode(audio)
    assert features.labels[:2] == ["neutral", "happy"] and features.logits.shape[-1] == len(features.labels)

    # The convolutional front end stays the content encoder's unless asked to train.
    from safetensors.torch import load_file

    conv = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    start = load_file(tmp_path / "content" / "model.safetensors")[conv]
    assert torch.equal(load_file(tmp_path / "emotion" / "model.safetensors")[conv], start)
    front = EncoderTrainingConfig(**{**emotion_cfg.__dict__, "epochs": 1, "train_feature_encoder": True})
    train_emotion_encoder(speech, tmp_path / "emotion_front", tmp_path / "content", front, progress=False)
    assert not torch.equal(load_file(tmp_path / "emotion_front" / "model.safetensors")[conv], start)


def test_decode_refuses_an_encoder_without_its_ctc_head(tmp_path, capsys):
    """Without lm_head, transformers would make up a random head and decode random phones: the
    command refuses in one line instead (the packed demo bundle's context encoder lacks it)."""
    from talking_head.app.cli import main
    from talking_head.training.tiny import save_random_encoders

    clip = write_clip(tmp_path / "clip.wav", 1.0)
    assert main(["encoders", "decode", str(clip), "--encoder", str(ROOT / "weights" / "demo" / "encoders" / "context")]) == 2
    assert "has no CTC head (lm_head)" in capsys.readouterr().err
    context, _ = save_random_encoders(tmp_path / "enc", "tiny")  # a Wav2Vec2ForCTC: it has its head
    assert main(["encoders", "decode", str(clip), "--encoder", str(context)]) == 0
    assert main(["encoders", "decode", str(clip), "--encoder", str(tmp_path)]) == 2
    assert "no encoder weights" in capsys.readouterr().err


def test_collapse_ctc_merges_repeats_then_drops_blanks():
    from talking_head.training.encoder_training import collapse_ctc

    assert collapse_ctc([0, 3, 3, 0, 3, 4, 4, 2, 5], {0, 2}) == [3, 3, 4, 5]  # a blank between repeats keeps both
    assert collapse_ctc([], {0}) == []
