"""Directing the emotion: prototypes in the bundle, `--emotion` / `--emotion-track`, and the
take that keeps the voice alone when nothing is directed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from talking_head.core.emotion_direction import (
    PROTOTYPES,
    EmotionDirection,
    EmotionError,
    EmotionKey,
    EmotionPrototypes,
    direct,
    heard_summary,
    parse_emotion,
    read_emotion_track,
)
from talking_head.core.tasks import AnimateTask, task_from_json

from conftest import run_cli_captured, speech_like

LABELS = ["neutral", "happy", "sad", "angry", "surprised"]


def _speech_set(folder: Path, per_label: int = 2) -> Path:
    """A labelled speech set in `corpus speech`'s layout: wav/ID.wav, phones/ID.json, labels.jsonl."""
    (folder / "wav").mkdir(parents=True)
    (folder / "phones").mkdir()
    lines = []
    for i in range(per_label * len(LABELS)):
        name, emotion = f"{i:06d}", LABELS[i % len(LABELS)]
        audio = speech_like(0.8, seed=i) * (1 + 0.3 * (i % len(LABELS)))
        soundfile.write(folder / "wav" / f"{name}.wav", audio, 16_000)
        (folder / "phones" / f"{name}.json").write_text(json.dumps({"text": "", "phones": [["pau", 0.0, 0.8]]}))
        lines.append(json.dumps({"id": name, "speaker": "M1" if i >= len(LABELS) * (per_label - 1) else "F2", "emotion": emotion,
                                 "intensity": 1.0 if emotion == "neutral" else 0.5, "seconds": 0.8}))
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def directed_bundle(tiny_bundle_dir, tmp_path_factory) -> Path:
    """A copy of the tiny bundle with prototypes built by `talking-head bundle emotions`."""
    root = tmp_path_factory.mktemp("emotion")
    bundle = root / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    from talking_head.app.cli import main

    assert main(["bundle", "emotions", str(bundle), "--speech", str(_speech_set(root / "speech"))]) == 0
    return bundle


def test_bundle_emotions_writes_small_prototypes_the_bundle_loads(directed_bundle):
    from talking_head.core.bundle import ModelBundle

    path = directed_bundle / PROTOTYPES
    assert path.is_file() and path.stat().st_size < 20_000
    bundle = ModelBundle.load(directed_bundle)
    prototypes = bundle.emotion_prototypes
    assert prototypes.labels == bundle.config.emotion_labels == LABELS
    assert prototypes.vectors.shape == (5, bundle.config.emotion_dim) and np.isfinite(prototypes.vectors).all()
    assert prototypes.clips == [2] * 5 and prototypes.weighting in ("mean", "intensity")
    assert {"accuracy_mean", "accuracy_intensity"} <= set(prototypes.measure)


def test_a_broken_prototypes_file_is_refused_in_one_line(directed_bundle, tmp_path):
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.errors import BundleError

    broken = tmp_path / "b"
    shutil.copytree(directed_bundle, broken)
    (broken / PROTOTYPES).write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="bundle emotions"):
        ModelBundle.load(broken)


def test_parse_emotion_for_the_whole_take():
    d = parse_emotion("happy:0.8")
    assert d.keys == [EmotionKey(0.0, {"happy": 0.8}, pytest.approx(0.2))]
    d = parse_emotion(" happy:0.8 , voice:0.5")
    assert d.keys[0].weights == {"happy": 0.8} and d.keys[0].from_voice == 0.5
    assert parse_emotion("angry:1").keys[0].from_voice == 0.0
    for bad, message in (("happy:1.5", "from 0 to 1"), ("happy", "LABEL:WEIGHT"), ("happy:x", "number"), ("voice:-0.1", "from 0 to 1"),
                         ("happy:0.5,happy:0.2", "twice"), ("happy:nan", "finite")):
        with pytest.raises(EmotionError, match=message):
            parse_emotion(bad)


def test_track_is_linear_between_keys_and_held_outside(tmp_path):
    track = tmp_path / "track.json"
    track.write_text(json.dumps({"keys": [{"time": 1.0, "happy": 0.8}, {"frame": 75, "angry": 1.0, "voice": 0}]}))
    d = read_emotion_track(track, fps=25)
    assert [k.time for k in d.keys] == [1.0, 3.0]
    weights, voice = d.sample(np.array([0.0, 1.0, 2.0, 3.0, 9.0]), LABELS)
    np.testing.assert_allclose(weights[:, 1], [0.8, 0.8, 0.4, 0.0, 0.0])
    np.testing.assert_allclose(weights[:, 3], [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(voice, [0.2, 0.2, 0.1, 0.0, 0.0], atol=1e-12)
    assert EmotionDirection.from_json(d.to_json()) == d


@pytest.mark.parametrize("text,message", [
    ("{not json", "not valid JSON"),
    ('{"keys": []}', "at least one key"),
    ('[1, 2]', "JSON object"),
    ('{"keys": [{"happy": 1}]}', "either \"time\""),
    ('{"keys": [{"time": 0, "happy": 2}]}', "from 0 to 1"),
    ('{"keys": [{"time": 0, "happy": "lots"}]}', "number"),
])
def test_malformed_tracks_get_one_line(tmp_path, text, message):
    track = tmp_path / "t.json"
    track.write_text(text)
    with pytest.raises(EmotionError, match=message):
        read_emotion_track(track, 25)
    with pytest.raises(EmotionError, match="cannot read"):
        read_emotion_track(tmp_path / "missing.json", 25)


def test_voice_alone_is_exactly_the_voice_and_weights_mix_prototypes():
    rng = np.random.default_rng(0)
    prototypes = EmotionPrototypes(LABELS, rng.standard_normal((5, 8)).astype(np.float32))
    emotion = torch.randn(1, 20, 8)  # k = 2: 10 face frames at 25 fps
    silent = EmotionDirection([EmotionKey(0.0, {"happy": 0.0}, 1.0)])
    assert torch.equal(silent.apply(emotion, prototypes, 25, 2), emotion)  # the formula itself, not only the shortcut
    assert direct(emotion, silent, None, 25, 2) is emotion  # needs no prototypes at all
    # angry from face frame 4 on (linear from frame 2), voice gone there.
    ramp = EmotionDirection([EmotionKey(2 / 25, {}, 1.0), EmotionKey(4 / 25, {"angry": 1.0}, 0.0)])
    out = direct(emotion, ramp, prototypes, 25, 2)
    assert torch.equal(out[:, :4], emotion[:, :4])  # audio steps of face frames 0 and 1
    np.testing.assert_allclose(out[0, 8:].numpy(), np.broadcast_to(prototypes.vectors[3], (12, 8)), rtol=1e-6)
    np.testing.assert_allclose(out[0, 6].numpy(), 0.5 * emotion[0, 6].numpy() + 0.5 * prototypes.vectors[3], rtol=1e-5, atol=1e-6)
    with pytest.raises(EmotionError, match="neutral, happy, sad, angry, surprised"):
        direct(emotion, parse_emotion("furious:1"), prototypes, 25, 2)
    with pytest.raises(EmotionError, match="bundle emotions"):
        direct(emotion, parse_emotion("happy:1"), None, 25, 2)


def test_task_carries_the_direction_through_json():
    direction = EmotionDirection([EmotionKey(0.0, {"happy": 0.8}, 0.2), EmotionKey(4.8, {"angry": 1.0}, 0.0)])
    task = AnimateTask(audio="a.wav", bundle="b", emotion=direction)
    again = task_from_json(json.loads(json.dumps(task.to_json())))
    assert again == task and again.emotion == direction
    assert task_from_json(json.loads(json.dumps(AnimateTask(audio="a.wav", bundle="b").to_json()))).emotion is None


def test_heard_summary_merges_seconds():
    probs = np.zeros((130, 3))
    probs[:50, 0] = probs[50:, 2] = 1
    assert heard_summary(probs, ["neutral", "happy", "sad"], 25) == "neutral 0-2 s, sad 2-5.2 s"


def test_animate_directs_the_face_and_keeps_what_the_voice_was_heard_as(directed_bundle, tiny_bundle_dir, clip_3s, tmp_path, capsys):
    def take(*options, bundle=directed_bundle):
        out = tmp_path / f"take{len(list(tmp_path.iterdir()))}.npz"
        code, _, err = run_cli_captured(capsys, "animate", clip_3s, "--bundle", bundle, "--out", out, "--stages", "--device", "cpu",
                                        "--precision", "fp32", *options)
        assert code == 0, err
        return np.load(out)

    voice = take()
    assert np.array_equal(take("--emotion", "angry:0,voice:1")["vertices"], voice["vertices"])
    angry = take("--emotion", "angry:1")
    assert not np.allclose(angry["emotional"], voice["emotional"])
    np.testing.assert_array_equal(angry["neutral"], voice["neutral"])  # Gn reads no emotion
    np.testing.assert_array_equal(angry["emotion_probs"], voice["emotion_probs"])  # what the voice was heard as
    track = tmp_path / "track.json"
    track.write_text(json.dumps({"keys": [{"frame": 40, "angry": 0}, {"frame": 50, "angry": 1.0, "voice": 0}]}))
    keyed = take("--emotion-track", track)
    np.testing.assert_array_equal(keyed["emotional"][:40], voice["emotional"][:40])
    assert not np.allclose(keyed["emotional"][50:], voice["emotional"][50:])  # Ge is causal: only the frames from the keys on change
    code, _, err = run_cli_captured(capsys, "animate", clip_3s, "--bundle", tiny_bundle_dir, "--out", tmp_path / "x.npz", "--emotion", "happy:1")
    assert code == 2 and "bundle emotions" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli_captured(capsys, "animate", clip_3s, "--bundle", directed_bundle, "--out", tmp_path / "x.npz", "--emotion", "furious:1")
    assert code == 2 and "neutral, happy, sad, angry, surprised" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli_captured(capsys, "animate", clip_3s, "--bundle", directed_bundle, "--out", tmp_path / "x.npz", "--emotion", "happy:2")
    assert code == 2 and "from 0 to 1" in err and len(err.strip().splitlines()) == 1
