"""Emotion hearing (core/emotion_hearing.py, training/emotion_hearing.py): prosodic numbers, the
logistic regression fitted on labelled speech, what a take is heard as over time, the bundle
file, and the head motion that follows what is heard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from talking_head.core.emotion_hearing import FILE, NAMES, EmotionHearing, clip_features, functionals, tracks
from talking_head.core.errors import BundleError

LABELS = ["neutral", "happy", "sad", "angry", "surprised"]
# Per class a voice that carries it the way the training speech does (crudely): F0 level in Hz,
# F0 glide over the utterance in semitones, brightness (how slowly the harmonics fall).
VOICES = {"neutral": (120, 0, 0.9), "happy": (220, 5, 0.8), "sad": (95, -4, 0.6), "angry": (180, -3, 1.0), "surprised": (260, 8, 0.85)}


def voice(label: str, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A buzzy vowel-like tone of the class's pitch, glide and brightness, with syllable-like pulses."""
    rng = np.random.default_rng(seed)
    f0, glide, bright = VOICES[label]
    f0 = f0 * 2 ** (rng.normal(0, 0.8) / 12)
    t = np.arange(int(seconds * 16_000)) / 16_000
    pitch = f0 * 2 ** (glide * t / seconds / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / 16_000
    y = sum(bright ** k * np.sin(k * phase) / k for k in range(1, 30))
    syllables = np.sin(2 * np.pi * 2 * t) ** 2  # four syllables a second with short gaps between them
    y = y * np.where(syllables > 0.1, syllables, 0.0) + rng.normal(0, 0.002, len(t))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _speech_set(folder: Path, per_label: int = 8) -> Path:
    (folder / "wav").mkdir(parents=True)
    (folder / "phones").mkdir()
    lines = []
    for i in range(per_label * len(LABELS)):
        name, label = f"{i:06d}", LABELS[i % len(LABELS)]
        soundfile.write(folder / "wav" / f"{name}.wav", voice(label, seed=i), 16_000)
        (folder / "phones" / f"{name}.json").write_text(json.dumps({"text": "", "phones": [["pau", 0.0, 2.0]]}))
        lines.append(json.dumps({"id": name, "speaker": "M1~e" if i < len(LABELS) else "F2~e", "emotion": label, "seconds": 2.0}))
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def hearing(tmp_path_factory) -> EmotionHearing:
    from talking_head.training.emotion_hearing import fit_hearing

    root = tmp_path_factory.mktemp("hearing")
    return fit_hearing([_speech_set(root / "speech")], LABELS, processes=1)


def test_pitch_is_measured_in_semitones_and_silence_has_no_features():
    low, high = clip_features(voice("neutral", seed=1)), clip_features(voice("neutral", seed=1) * 0.1)
    assert low is not None and len(low) == len(NAMES)
    assert np.allclose(low, high, atol=1e-6), "level never counts"
    t = np.arange(16_000) / 16_000
    octave = [functionals(tracks(np.sin(2 * np.pi * f * t).astype(np.float32)))[NAMES.index("f0_mean")] for f in (110.0, 220.0)]
    assert octave[1] - octave[0] == pytest.approx(12.0, abs=0.3)
    assert clip_features(np.zeros(16_000, np.float32)) is None


def test_the_fit_hears_held_out_clips_of_each_class(hearing):
    assert hearing.labels == LABELS
    assert hearing.measure["utterances"] == 35, "the held-out voice M1's copies are left out"
    answers = [LABELS[int(hearing.clip(voice(label, seed=100 + i)).argmax())] for i, label in enumerate(LABELS * 3)]
    assert np.mean([a == b for a, b in zip(answers, LABELS * 3)]) >= 0.8, answers


def test_each_utterance_is_also_heard_as_an_8_khz_recording_holds_it(hearing):
    from talking_head.training.emotion_hearing import narrow_band

    y = voice("surprised", seed=4)
    narrow = narrow_band(y)
    spectrum = lambda x: np.abs(np.fft.rfft(x)) ** 2  # noqa: E731
    freqs = np.fft.rfftfreq(len(y), 1 / 16_000)
    assert len(narrow) == len(y)
    assert spectrum(narrow)[freqs > 4_200].sum() < 1e-4 * spectrum(y)[freqs > 4_200].sum()  # nothing above 4 kHz
    assert hearing.measure["examples"] == 2 * hearing.measure["utterances"] and hearing.measure["narrow_band_copies"]
    answers = [LABELS[int(hearing.clip(narrow_band(voice(label, seed=100 + i))).argmax())] for i, label in enumerate(LABELS * 3)]
    assert np.mean([a == b for a, b in zip(answers, LABELS * 3)]) >= 0.8, answers


def test_a_take_is_heard_moment_by_moment(hearing):
    take = np.concatenate([voice("sad", seed=7), voice("sad", seed=9), voice("happy", seed=8), voice("happy", seed=10)])
    probs = hearing.take(take, 200, 25.0)
    assert probs.shape == (200, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    tops = probs.argmax(axis=1)
    # the windows centred on each clip (1, 3, 5, 7 s) hear one clip each
    assert [LABELS[i] for i in tops[[25, 75, 125, 175]]] == ["sad", "sad", "happy", "happy"], tops
    silent = hearing.take(np.zeros(32_000, np.float32), 50, 25.0)
    assert np.allclose(silent, 0.2), "nothing voiced: no answer rather than a wrong one"


def test_the_file_round_trips_and_a_broken_one_is_refused(hearing, tmp_path):
    hearing.save(tmp_path / FILE)
    again = EmotionHearing.load(tmp_path / FILE)
    x = clip_features(voice("angry", seed=3))
    assert np.allclose(again.probabilities(x), hearing.probabilities(x))
    data = json.loads((tmp_path / FILE).read_text())
    data["weights"] = data["weights"][:2]
    (tmp_path / FILE).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="wrong shape"):
        EmotionHearing.load(tmp_path / FILE)
    (tmp_path / FILE).write_text("{")
    with pytest.raises(BundleError, match="broken"):
        EmotionHearing.load(tmp_path / FILE)


def test_the_logistic_fit_separates_what_can_be_separated():
    from talking_head.training.emotion_hearing import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
    w, b = fit_logistic(x, y, 4, c=10.0)
    assert ((x @ w.T + b).argmax(axis=1) == y).mean() > 0.95


def test_heard_emotion_scales_the_head_as_the_corpus_classes_move():
    from talking_head.core.emotion_direction import EmotionPrototypes, direct_head_motion, heard_amplitude, parse_emotion
    from talking_head.core.geometry import half_angles_axes, matrices_to_quaternions, quaternions_to_matrices

    corpus = dict(zip(LABELS, (1.2, 1.3, 0.6, 1.8, 1.5)))
    protos = EmotionPrototypes(LABELS, np.zeros((5, 4), np.float32), head_gains=np.array([1.0, 1.0, 1.0, 1.0, 2.0], np.float32),
                               expressions_measure={"head_amplitude_degrees": {k: {"corpus": v, "directed": 1.0, "takes": 4} for k, v in corpus.items()}})
    angles = np.linspace(0.01, 0.05, 10)
    q = np.stack([np.cos(angles / 2), np.sin(angles / 2), np.zeros(10), np.zeros(10)], axis=1)
    rotation, translation = quaternions_to_matrices(q).astype(np.float32), np.ones((10, 3), np.float32)
    heard = np.zeros((10, 5))
    heard[:5, 0], heard[5:, 3] = 1.0, 1.0  # neutral, then angry
    amplitude = heard_amplitude(heard, LABELS, protos)
    assert np.allclose(amplitude, [1.0] * 5 + [1.5] * 5), "angry: the corpus's 1.8 over neutral's 1.2"
    assert np.allclose(heard_amplitude(heard, LABELS, protos, mean=1.25), amplitude / 1.25), "relative to the corpus's average take"

    def turned(r):
        return 2 * half_angles_axes(matrices_to_quaternions(r.astype(np.float64)))[0]

    r, t = direct_head_motion(rotation, translation, None, protos, 25.0, amplitude)
    assert np.allclose(turned(r)[:5], angles[:5], atol=1e-5), "heard neutral: Gh's own motion"
    assert np.allclose(turned(r)[5:], angles[5:] * 1.5, atol=1e-5) and np.allclose(t[5:], 1.5)
    # a direction that keeps the voice keeps the heard amplitude; one that replaces it takes the class's gain
    r, _ = direct_head_motion(rotation, translation, parse_emotion("voice:1"), protos, 25.0, amplitude)
    assert np.allclose(turned(r)[5:], angles[5:] * 1.5, atol=1e-5)
    r, _ = direct_head_motion(rotation, translation, parse_emotion("surprised:1,voice:0"), protos, 25.0, amplitude)
    assert np.allclose(turned(r), angles * 2.0, atol=1e-5)
    assert heard_amplitude(heard, LABELS, EmotionPrototypes(LABELS, np.zeros((5, 4), np.float32))) is None, "nothing measured on a corpus"


def test_the_bundle_hears_with_it_and_refuses_other_labels(hearing, tiny_bundle_dir, tmp_path, clip_3s):
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    hearing.save(bundle / FILE)
    animator = Animator(ModelBundle.load(bundle))
    from talking_head.core.audio import load_audio

    take = animator.animate(clip_3s)
    assert take.emotion_labels == LABELS
    assert np.allclose(take.emotion_probs, hearing.take(load_audio(clip_3s), len(take.emotion_probs), take.fps), atol=1e-6)
    other = EmotionHearing(["calm", "upset"], hearing.mean, hearing.scale, hearing.weights[:2], hearing.bias[:2])
    other.save(bundle / FILE)
    with pytest.raises(BundleError, match="hears calm, upset"):
        ModelBundle.load(bundle)


def test_a_stream_hears_what_it_has_heard_and_agrees_with_the_offline_take(hearing, tiny_bundle_dir, tmp_path):
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator
    from talking_head.core.streaming import Streamer

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    hearing.save(bundle / FILE)
    animator = Animator(ModelBundle.load(bundle))
    take = np.concatenate([voice("sad", seed=21), voice("sad", seed=22), voice("surprised", seed=23), voice("surprised", seed=24)])
    streamer = Streamer(animator, warm_up=False)
    frames = []
    for start in range(0, len(take), 3200):
        frames += streamer.feed(take[start:start + 3200])
    frames += streamer.finish()
    streamed = streamer.animation(frames)
    assert streamed.emotion_labels == LABELS
    tops = streamed.emotion_probs.argmax(axis=1)
    # causal windows: each clip is heard once the last 2 s hold it
    assert LABELS[tops[70]] == "sad" and LABELS[tops[-1]] == "surprised", tops
    offline = animator.animate(take)
    assert np.mean(offline.emotion_probs.argmax(axis=1) == tops) > 0.6


def test_long_audio_is_analysed_in_pieces_as_it_would_be_whole(monkeypatch):
    from talking_head.core import emotion_hearing

    take = np.concatenate([voice(label, seed=30 + i) for i, label in enumerate(LABELS)])  # 10 s
    whole = tracks(take)
    monkeypatch.setattr(emotion_hearing, "PIECE_S", 3.0)
    pieces = tracks(take)
    assert len(pieces) == len(whole)
    assert np.allclose(pieces.f0, whole.f0, atol=1e-3) and np.allclose(pieces.power, whole.power, rtol=1e-5, atol=1e-9)
    assert np.allclose(pieces.ap_lo, whole.ap_lo, atol=1e-3) and np.allclose(pieces.ap_hi, whole.ap_hi, atol=1e-3)


def test_heard_directs_by_the_heard_emotion_and_a_bundle_that_cannot_hear_refuses(hearing, tiny_bundle_dir, tmp_path, clip_3s):
    from talking_head.core.audio import load_audio
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.emotion_direction import PROTOTYPES, EmotionError, EmotionPrototypes, parse_emotion
    from talking_head.core.pipeline import Animator

    direction = parse_emotion("heard:0.8")
    assert direction.hears() and direction.keys[0].from_voice == pytest.approx(0.2)
    probs = np.tile([[0.5, 0.25, 0.25, 0.0, 0.0]], (4, 1))
    resolved = direction.with_heard(probs, LABELS, 25.0)
    weights, voice = resolved.sample(np.array([0.05]), LABELS)
    assert np.allclose(weights, [[0.4, 0.2, 0.2, 0.0, 0.0]]) and np.allclose(voice, 0.2) and not resolved.hears()

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    config = json.loads((bundle / "config.json").read_text())
    rng = np.random.default_rng(0)
    EmotionPrototypes(LABELS, rng.normal(size=(5, config["emotion_dim"])).astype(np.float32)).save(bundle / PROTOTYPES)
    with pytest.raises(EmotionError, match="no emotion hearing"):
        Animator(ModelBundle.load(bundle)).animate(clip_3s, direction=parse_emotion("heard:1"))
    hearing.save(bundle / FILE)
    animator = Animator(ModelBundle.load(bundle))
    voice_take = animator.animate(clip_3s)
    heard_take = animator.animate(clip_3s, direction=parse_emotion("heard:1"))
    n = len(voice_take.emotion_probs)
    by_hand = animator.animate(clip_3s, direction=parse_emotion("heard:1").with_heard(hearing.take(load_audio(clip_3s), n, 25.0), LABELS, 25.0))
    assert np.allclose(heard_take.vertices, by_hand.vertices, atol=1e-6)
    assert np.abs(heard_take.emotional - voice_take.emotional).max() > 1e-4, "the heard emotion reached Ge"


def test_the_voice_gets_half_of_its_heard_classes_learned_expressions(hearing, tiny_bundle_dir, tmp_path, clip_3s):
    from talking_head.core.audio import load_audio
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.emotion_direction import HEARD_EXPRESSIONS, PROTOTYPES, EmotionPrototypes
    from talking_head.core.pipeline import Animator

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    config = json.loads((bundle / "config.json").read_text())
    rng = np.random.default_rng(1)
    shapes = 0.01 * rng.normal(size=(5, config["n_vertices"], 3)).astype(np.float32)
    shapes[0] = 0.0
    EmotionPrototypes(LABELS, rng.normal(size=(5, config["emotion_dim"])).astype(np.float32), expressions=shapes).save(bundle / PROTOTYPES)
    deaf = Animator(ModelBundle.load(bundle)).animate(clip_3s, with_head=False)
    hearing.save(bundle / FILE)
    heard = Animator(ModelBundle.load(bundle)).animate(clip_3s, with_head=False)
    probs = hearing.take(load_audio(clip_3s), len(heard.emotional), heard.fps)
    expected = deaf.emotional + HEARD_EXPRESSIONS * np.einsum("nc,cvd->nvd", probs, shapes)
    np.testing.assert_allclose(heard.emotional, expected, atol=1e-5)
    plain = Animator(ModelBundle.load(bundle)).animate(clip_3s, with_head=False, heard_expressions=False)
    np.testing.assert_array_equal(plain.emotional, deaf.emotional)  # --no-heard-expressions: the faces as before the hearing

    from talking_head.core.tasks import AnimateTask

    assert AnimateTask.from_json({"audio": "a.wav", "bundle": "b"}).heard_expressions
    assert not AnimateTask.from_json(AnimateTask("a.wav", "b", heard_expressions=False).to_json()).heard_expressions


def test_speech_sets_that_cannot_teach_the_classes_are_refused_in_one_line(tmp_path, tiny_bundle_dir, capsys):
    from talking_head.app.cli import main

    speech = _speech_set(tmp_path / "speech", per_label=2)
    lines = [json.loads(line) for line in (speech / "labels.jsonl").read_text().splitlines()]
    (speech / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines if r["emotion"] != "sad"))
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    assert main(["bundle", "hearing", str(bundle), "--speech", str(speech)]) != 0
    err = capsys.readouterr().err
    assert "no sad utterances" in err and "Traceback" not in err and not (bundle / FILE).exists()
    lines[-1]["emotion"] = "bored"  # a training voice (the first five are the held-out M1's)
    (speech / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["bundle", "hearing", str(bundle), "--speech", str(speech)]) != 0
    assert "bored" in capsys.readouterr().err and not (bundle / FILE).exists()


def test_packing_keeps_the_hearing(hearing, tiny_bundle_dir, tmp_path):
    from talking_head.core.bundle import pack_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    hearing.save(bundle / FILE)
    packed = pack_bundle(bundle, tmp_path / "packed")
    assert packed.emotion_hearing is not None and packed.emotion_hearing.labels == LABELS
    assert (tmp_path / "packed" / FILE).read_text() == (bundle / FILE).read_text()
