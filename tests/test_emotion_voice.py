"""Audible emotion (training/corpus/emotion_voice.py, training/emotion_voices.py, `corpus
emotion-voices | revoice`) and bench/emotion_real.py's pure parts."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from talking_head.training.corpus.emotion_voice import IDENTITY, PROFILES, draw, emotional_voice
from talking_head.training.corpus.emotions import EMOTIONS
from talking_head.training.emotion_voices import emotional_speech_set, revoice_corpus

from conftest import run_cli_captured
from test_encoder_training import _speech_set
from tiny_corpus import make_corpus

BENCH = Path(__file__).resolve().parents[1] / "bench" / "emotion_real.py"


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    from talking_head.training.corpus.speech import Voice, synthesize

    return synthesize("The old man pushed a measure of sugar", Voice("flite", "slt")).samples


def _f0_semitones(samples: np.ndarray) -> float:
    import librosa

    return float(12 * np.log2(np.nanmedian(librosa.yin(samples, fmin=60, fmax=600, sr=16000))))


def _brightness_db(samples: np.ndarray) -> float:
    """Energy above 1 kHz against below, in dB (vocal effort shows here)."""
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequency = np.fft.rfftfreq(len(samples), 1 / 16000)
    return float(10 * np.log10(spectrum[frequency > 1000].sum() / spectrum[frequency <= 1000].sum()))


def test_every_emotion_has_a_voice_and_draws_stay_near_it():
    assert set(PROFILES) == set(EMOTIONS)
    rng = np.random.default_rng(0)
    angry = [draw("angry", rng) for _ in range(50)]
    assert all(0.6 * 5.0 <= a.pitch_st <= 1.4 * 5.0 and a.tilt_db > 2 for a in angry)
    assert len({round(a.pitch_st, 6) for a in angry}) == 50  # acting varies
    sad = [draw("sad", rng) for _ in range(20)]
    assert all(s.tilt_db < 0 and s.pitch_range < 1 and s.rate < 1 for s in sad)
    neutral = [draw("neutral", rng) for _ in range(50)]
    assert max(abs(n.pitch_st) for n in neutral) <= 1 and max(abs(n.tilt_db) for n in neutral) <= 0.8
    with pytest.raises(ValueError, match="disgust"):
        draw("disgust", rng)


def test_anger_is_higher_and_brighter_sadness_lower_and_darker(spoken):
    rng = np.random.default_rng(0)
    neutral = emotional_voice(spoken, IDENTITY, 1.0, rng, keep_timing=True)
    angry = emotional_voice(spoken, PROFILES["angry"], 1.0, rng, keep_timing=True)
    sad = emotional_voice(spoken, PROFILES["sad"], 1.0, rng, keep_timing=True)
    assert len(neutral) == len(angry) == len(sad) == len(spoken)  # timing kept: corpus faces stay aligned
    assert _f0_semitones(angry) - _f0_semitones(neutral) > 3
    assert _f0_semitones(sad) - _f0_semitones(neutral) < -1
    assert _brightness_db(angry) - _brightness_db(neutral) > 4
    assert _brightness_db(sad) - _brightness_db(neutral) < -3


def test_rate_changes_the_length_unless_timing_is_kept(spoken):
    slow = emotional_voice(spoken, PROFILES["sad"], 1.0, np.random.default_rng(0))
    assert abs(len(slow) - len(spoken) / PROFILES["sad"].rate) < 200


def test_the_cues_follow_the_intensity_track(spoken):
    """Zero intensity for the first half, full for the second: only the second half is raised."""
    rng = np.random.default_rng(0)
    half = len(spoken) // 2
    track = np.r_[np.zeros(50), np.ones(50)]
    plain = emotional_voice(spoken, IDENTITY, 1.0, rng, keep_timing=True)
    raised = emotional_voice(spoken, PROFILES["surprised"], track, rng, keep_timing=True)
    assert abs(_f0_semitones(raised[: half - 1600]) - _f0_semitones(plain[: half - 1600])) < 0.7
    assert _f0_semitones(raised[half + 1600:]) - _f0_semitones(plain[half + 1600:]) > 3


def test_emotional_speech_set_leaves_held_out_voices_out(tmp_path):
    _speech_set(tmp_path / "tones", utterances=8)
    made = emotional_speech_set(tmp_path / "tones", tmp_path / "emo", held_out=("held",), progress=False)
    assert len(made) == 6 and all(r["id"].startswith("e0_") and r["speaker"].startswith("train~e") for r in made)
    source = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "tones" / "labels.jsonl").read_text().splitlines()}
    assert all(r["emotion"] == source[r["id"].split("_", 1)[1]]["emotion"] for r in made)  # the label is kept
    for r in made:
        phones = json.loads((tmp_path / "emo" / "phones" / f"{r['id']}.json").read_text())["phones"]
        assert phones[-1][2] == pytest.approx(r["seconds"], abs=0.03)  # timings follow the new rate
    assigned = emotional_speech_set(tmp_path / "tones", tmp_path / "assigned", seed=3, assign_emotions=True, held_out=("held",), progress=False)
    assert {r["emotion"] for r in assigned} <= set(EMOTIONS) and len({r["emotion"] for r in assigned}) > 1


def _corpus_with_clips(root: Path) -> Path:
    make_corpus(root, seen=("F2",), unseen=("F1",), sentences=(1, 37))
    meta = json.loads((root / "corpus.json").read_text())
    meta["clips"] = {}
    for wav in sorted((root / "wav").glob("*.wav")):
        emotional = "_e" in wav.stem
        meta["clips"][wav.stem] = {"subject": wav.stem.split("_")[0], "emotion": "angry" if emotional else "neutral"}
        if emotional:
            (root / "emotions").mkdir(exist_ok=True)
            np.savez(root / "emotions" / f"{wav.stem}.npz", intensity=np.linspace(0, 1, 30, dtype=np.float32))
    (root / "corpus.json").write_text(json.dumps(meta))
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.wav"))}


def test_revoice_keeps_timing_links_the_rest_and_never_touches_the_source(tmp_path):
    corpus = _corpus_with_clips(tmp_path / "corpus")
    before = _digest(corpus / "wav")
    assert revoice_corpus(corpus, tmp_path / "loud", progress=False) == len(before)
    out = tmp_path / "loud"
    assert _digest(corpus / "wav") == before
    for name in before:
        assert soundfile.info(out / "wav" / name).frames == soundfile.info(corpus / "wav" / name).frames
    assert (out / "vertices_npy").is_symlink() and (out / "poses").is_symlink()
    assert json.loads((out / "corpus.json").read_text())["revoiced"]["from"] == "corpus"
    assert revoice_corpus(corpus, out, progress=False) == 0  # resumable: nothing left to do


def test_revoice_refuses_in_one_line(tmp_path, capsys):
    corpus = _corpus_with_clips(tmp_path / "corpus")
    code, out, err = run_cli_captured(capsys, "corpus", "revoice", str(corpus), "--out", str(corpus))
    assert code != 0 and "new folder" in err and len(err.strip().splitlines()) == 1
    bare = make_corpus(tmp_path / "bare", seen=("F2",), unseen=("F1",), sentences=(1,))
    code, out, err = run_cli_captured(capsys, "corpus", "revoice", str(bare), "--out", str(tmp_path / "x"))
    assert code != 0 and "lists no clips" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli_captured(capsys, "corpus", "emotion-voices", "--speech", str(tmp_path), "--out", str(tmp_path / "y"))
    assert code != 0 and "not a speech set" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli_captured(capsys, "corpus", "mix", str(tmp_path), "--out", str(tmp_path / "z"))
    assert code != 0 and "not a speech set" in err and len(err.strip().splitlines()) == 1


def test_mix_links_sets_and_refuses_clashing_ids(tmp_path, capsys):
    _speech_set(tmp_path / "a", utterances=4)
    emotional_speech_set(tmp_path / "a", tmp_path / "b", held_out=("held",), progress=False)
    code, out, err = run_cli_captured(capsys, "corpus", "mix", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"))
    assert code == 0 and len((tmp_path / "m" / "labels.jsonl").read_text().splitlines()) == 4 + 3
    code, out, err = run_cli_captured(capsys, "corpus", "mix", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "n"))
    assert code != 0 and "two of the sets" in err and len(err.strip().splitlines()) == 1


# ---- bench/emotion_real.py ----

@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("emotion_real", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_emodb_labels_map_to_the_four_shared_classes(bench, tmp_path):
    (tmp_path / "labels.csv").write_text("file,speaker,speaker_info,emotion\n03a01Wa.wav,03,m,anger\n03a01Fa.wav,03,m,happiness\n"
                                         "03a01Ea.wav,03,m,disgust\n03a01Nc.wav,03,m,neutral\n03a01Ta.wav,03,m,sadness\n")
    items = bench.emodb_items(tmp_path)
    assert [label for _, label in items] == ["angry", "happy", "neutral", "sad"]
    assert items[0][0] == tmp_path / "wav" / "03a01Wa.wav"


def test_scores_and_answers(bench):
    labels = ["neutral", "happy", "sad", "angry"]
    confusion = bench.confusion_matrix(["angry"] * 6 + ["sad"] * 2, ["angry"] * 6 + ["angry", "sad"], labels)
    s = bench.scores(confusion)
    assert s["accuracy"] == pytest.approx(7 / 8) and s["uar"] == pytest.approx((1.0 + 0.5) / 2) and s["clips"] == 8
    five = ["neutral", "happy", "sad", "angry", "surprised"]
    assert bench.answer(np.array([0, 1, 2, 3, 9.0]), five) == "surprised"
    assert bench.answer(np.array([0, 1, 2, 3, 9.0]), five, allowed=tuple(labels)) == "angry"


def test_classify_gives_the_accuracy_per_group(bench):
    class Ear:  # answers "angry" for speaker 03's clips and "sad" for the others
        def clip(self, samples):
            return np.array([0.0, 0.0, 0.0, 1.0]) if samples == "03" else np.array([0.0, 0.0, 1.0, 0.0])

    items = [("03a.wav", "angry"), ("03b.wav", "sad"), ("08a.wav", "sad"), ("08b.wav", "sad")]
    out = bench.classify(Ear(), items, ["neutral", "happy", "sad", "angry"], load=lambda path: path[:2], group=lambda path: path[:2])
    assert out["accuracy"] == pytest.approx(0.75) and out["accuracy by group"] == {"03": 0.5, "08": 1.0}
