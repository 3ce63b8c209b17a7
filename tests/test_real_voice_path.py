"""Real voices (issue: content path, pauses, transcript): phone prototypes, forced alignment,
rest in pauses, the voice warp, the mixed speech sets and the distilled content encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from talking_head.core.alignment import TranscriptError, align, read_transcript, recognise, recognised_phones, words_of
from talking_head.core.phone_features import PhonePrototypes
from talking_head.core import pauses
from talking_head.training.corpus.voice_warp import Warp, warp_envelope, warp_phones, warp_voice
from talking_head.training.speech_mix import corpus_phones, fsdd_speech_set, mix_speech_sets, warped_speech_set

from conftest import SHARED, run_cli_captured, speech_like
from test_encoder_training import TINY, _speech_set

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weights" / "demo"
SENTENCE = "The old man pushed a measure of sugar"


def _protos(dim: int = 4, classifier: bool = False) -> PhonePrototypes:
    phones = ["aa", "ah", "m", "pau"]
    vectors = np.arange(len(phones) * dim, dtype=np.float32).reshape(len(phones), dim)
    # a classifier that reads the phone from which of the first four dimensions is largest
    weights = (5.0 * np.eye(len(phones), dim, dtype=np.float32), np.zeros(len(phones), np.float32)) if classifier else None
    return PhonePrototypes(phones, vectors, np.ones(len(phones), np.int64), classifier=weights)


# ---- phone prototypes ----

def test_prototype_lookup_maps_aligner_names():
    p = _protos()
    assert p.lookup("AH0") == p.index["ah"] and p.lookup("M") == p.index["m"]
    assert p.lookup("SIL") == p.lookup("+NSN+") == p.lookup("<sil>") == p.index["pau"]
    assert p.lookup("zh") == p.index["ah"]  # missing phone: the schwa stands in


def test_prototype_timeline_and_smoothing():
    p = _protos()
    rows = p.timeline([["M", 0.0, 0.1], ["AA1", 0.1, 0.3]], steps=20, steps_per_s=50)
    assert list(rows[:5]) == [p.index["m"]] * 5 and list(rows[5:15]) == [p.index["aa"]] * 10 and set(rows[15:]) == {p.index["pau"]}
    sharp, smooth = p.features(rows, smooth=0)[0], p.features(rows, smooth=1)[0]
    assert torch.equal(sharp[2], torch.from_numpy(p.vectors[p.index["m"]]))
    assert torch.allclose(smooth[4], (sharp[3] + sharp[4] + sharp[5]) / 3)  # the step before the switch glides


def test_prototypes_round_trip_and_refuse_a_wrong_width(tmp_path):
    from talking_head.core.errors import BundleError
    from talking_head.core.phone_features import FILE, load_for_bundle

    _protos(6).save(tmp_path / FILE)
    loaded = load_for_bundle(tmp_path, 6)
    assert loaded.phones == _protos().phones and np.array_equal(loaded.vectors, _protos(6).vectors)
    with pytest.raises(BundleError, match="bundle phones"):
        load_for_bundle(tmp_path, 8)
    (tmp_path / FILE).write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="not a phone prototype file"):
        load_for_bundle(tmp_path, 6)


def test_blend_weighs_the_classifier_against_recognised_phones():
    p = _protos(6, classifier=True)
    states = torch.zeros(1, 3, 6)
    states[0, :, 0] = 1.0  # the classifier hears `aa` at every step
    rows = np.array([p.index["aa"], p.index["m"], p.index["m"]])
    alone = p.blend(states, rows, weight=0.0, smooth=0)[0]  # the classifier's posterior-weighted prototypes
    agreed, hint = p.blend(states, rows, smooth=0)[0], p.blend(states, rows, weight=20.0, smooth=0)[0]
    aa, m = (torch.from_numpy(p.vectors[p.index[n]]) for n in ("aa", "m"))
    assert torch.allclose(alone[0], alone[1])  # the recognised phones weigh nothing at weight 0
    assert (agreed[0] - aa).norm() < (alone[0] - aa).norm()  # both say `aa`: closer to its prototype
    assert (agreed[1] - m).norm() < (alone[1] - m).norm()  # they disagree: pulled towards the recognised `m`
    assert torch.allclose(hint[1], m, atol=1e-3)  # a large weight: the recognised phone alone
    with pytest.raises(Exception, match="no phone classifier"):
        _protos(6).blend(states, rows)


def test_classifier_round_trips_and_is_refused_misshapen(tmp_path):
    from talking_head.core.errors import BundleError
    from talking_head.core.phone_features import FILE, load_for_bundle

    _protos(6, classifier=True).save(tmp_path / FILE)
    loaded = load_for_bundle(tmp_path, 6)
    assert loaded.classifier is not None and np.array_equal(loaded.classifier[0], _protos(6, classifier=True).classifier[0])
    bad = _protos(6, classifier=True)
    bad.classifier = (bad.classifier[0][:, :5], bad.classifier[1])
    bad.save(tmp_path / FILE)
    with pytest.raises(BundleError, match="phone classifier of shape"):
        load_for_bundle(tmp_path, 6)


def test_fitted_phone_classifier_separates_phones():
    from talking_head.training.phone_prototypes import fit_phone_classifier

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 3 + 10  # far from the origin: the folded-in standardisation matters
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.normal(size=(600, 8))).astype(np.float32)
    w, b = fit_phone_classifier(x, y, 3)
    assert w.shape == (3, 8) and b.shape == (3,)
    assert ((x @ w.T + b).argmax(-1) == y).mean() > 0.95


def test_demo_bundle_ships_prototypes_of_its_encoder():
    from talking_head.core.bundle_info import read_bundle_info
    from talking_head.core.phone_features import load_for_bundle

    protos = load_for_bundle(DEMO, read_bundle_info(DEMO).config.context_dim)
    assert protos is not None and "pau" in protos.phones and len(protos.phones) >= 39
    assert protos.counts.min() > 100  # each a mean over many steps
    assert protos.classifier is not None  # animate --recognise needs it


# ---- transcripts ----

def test_read_transcript_text_file_and_bad_ones(tmp_path):
    assert read_transcript("Hello, world!") == "Hello, world!"
    (tmp_path / "line.txt").write_text("Zero one\n")
    assert words_of(read_transcript(str(tmp_path / "line.txt"))) == ["zero", "one"]
    for bad, message in (("", "empty"), ("  ?! ", "empty"), (str(tmp_path / "missing.txt"), "not found")):
        with pytest.raises(TranscriptError, match=message):
            read_transcript(bad)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(TranscriptError, match="cannot read"):
        read_transcript(str(tmp_path / "latin1.txt"))


@pytest.fixture(scope="module")
def spoken():
    """A flite sentence with the synthesiser's own phone timings."""
    from talking_head.training.corpus.speech import Voice, synthesize

    speech = synthesize(SENTENCE, Voice("flite", "slt"))
    return speech.samples, speech.phones


def test_forced_alignment_finds_the_synthesisers_phone_timings(spoken):
    samples, truth = spoken
    aligned = align(samples, SENTENCE)
    spoken_phones = [p for p in aligned if p[0] != "SIL"]
    assert len(spoken_phones) >= 20
    # the phone under each 20 ms step, aligner vs synthesiser (vowel reductions aside: ah ~ ax)
    times = np.arange(0.05, len(samples) / 16000 - 0.05, 0.02)
    def at(phones, t):
        for name, start, end in phones:
            if start <= t < end:
                return {"ax": "ah", "sil": "pau"}.get(name.lower().rstrip("012"), name.lower().rstrip("012"))
        return "pau"
    agree = np.mean([at(aligned, t) == at(truth, t) for t in times])
    assert agree > 0.6, agree


def test_alignment_refuses_unknown_words_and_empty_text(spoken):
    samples, _ = spoken
    with pytest.raises(TranscriptError, match="lacks: blorptastic, zyxw"):
        align(samples, "the old zyxw blorptastic")
    with pytest.raises(TranscriptError, match="empty"):
        align(samples, "...")


# ---- pauses ----

def test_speech_weights_ease_in_and_out():
    w = pauses.speech_weights([(0.4, 1.0)], steps=30, steps_per_s=25, ramp_s=0.08)
    centres = (np.arange(30) + 0.5) / 25
    assert np.all(w[centres < 0.4] == 1) and np.all(w[(centres > 0.48) & (centres < 0.92)] == 0) and np.all(w[centres > 1.0] == 1)
    assert 0 < w[np.argmin(np.abs(centres - 0.42))] < 1  # a ramp, not a snap
    edges = pauses.speech_weights([(0.0, 0.2), (1.0, 1.2)], steps=30, steps_per_s=25)
    assert edges[0] == 0 and edges[-1] == 0  # a clip's silent start and end rest from the first frame to the last


def test_pauses_to_close_keep_short_gaps():
    phones = [["SIL", 0, 0.3], ["M", 0.3, 0.4], ["SIL", 0.4, 0.5], ["AA", 0.5, 0.6], ["SIL", 0.6, 1.2], ["M", 1.2, 1.3], ["SIL", 1.3, 1.4]]
    speech = pauses.speech_from_phones(phones)
    assert speech == [(0.3, 0.4), (0.5, 0.6), (1.2, 1.3)]
    assert pauses.pauses_to_close(speech, 1.4) == [(0.0, 0.3), (0.6, 1.2)]  # 0.1 s gaps and the 0.1 s tail stay


def test_silero_finds_the_pause_between_two_sentences(spoken):
    samples, _ = spoken
    seconds = len(samples) / 16000
    clip = np.concatenate([samples, np.zeros(16000, np.float32), samples])
    segments = pauses.speech_segments(clip)
    assert segments[0][0] < 0.3 and segments[-1][1] > 2 * seconds + 0.7
    gaps = [(a[1], b[0]) for a, b in zip(segments, segments[1:])]
    assert any(start <= seconds + 0.2 and end >= seconds + 0.8 for start, end in gaps), segments


def test_voice_activity_edges_are_in_samples_not_tenths(spoken):
    """Silence put before a clip moves its speech by exactly that much (silero-vad's seconds were
    rounded to 0.1 s: a 64 ms shift moved the edges by 0 or 0.1 s)."""
    samples, _ = spoken
    shift = 1024  # two of silero's 512-sample windows: 64 ms
    first = pauses.speech_segments(samples)
    later = pauses.speech_segments(np.concatenate([np.zeros(shift, np.float32), samples]))
    assert len(first) == len(later) >= 1
    assert later[0][0] - first[0][0] == pytest.approx(shift / 16000, abs=1e-6), (first, later)


def test_voice_activity_hears_a_short_quiet_word():
    """A real 0.39 s digit at -33 dB, which silero-vad alone heard as silence (the mouth was then
    brought to rest over the whole word); quiet noise stays silence."""
    from talking_head.core.audio import load_audio

    word = SHARED / "real_speech" / "fsdd" / "0_yweweler_12.wav"
    if not word.is_file():
        pytest.skip("no shared/real_speech next to the repository")
    samples = load_audio(str(word))
    segments = pauses.speech_segments(samples)
    assert sum(b - a for a, b in segments) > 0.5 * len(samples) / 16000, segments
    assert pauses.pauses_to_close(segments, len(samples) / 16000) == []
    noise = (np.random.default_rng(0).normal(0, 1, 3 * 16000) * 10 ** (-50 / 20)).astype(np.float32)
    assert pauses.speech_segments(noise) == [] and pauses.speech_segments(np.zeros(16000, np.float32)) == []


def test_batched_voice_activity_finds_the_same_speech():
    """The sequence model (one call per block) against the stock frame-by-frame model, on real speech."""
    pytest.importorskip("onnxruntime")
    from talking_head.core.audio import load_audio

    samples = load_audio(str(SHARED / "speech" / "real_speech_11s.wav"))[: 16000 * 6]
    batched = pauses.speech_segments(samples)
    stock = pauses.speech_segments(samples, batched=False)
    assert batched == stock and len(stock) >= 2, (batched, stock)


def test_voice_activity_leaves_torch_threads_alone():
    """silero-vad's import sets torch to one thread; the pauses module undoes that (measured: the
    encoders ran 60-70% slower in every take after the first)."""
    import sys

    for name in [m for m in sys.modules if m == "silero_vad" or m.startswith("silero_vad.")]:
        del sys.modules[name]  # imported afresh, as in a new process
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        clip = speech_like(1.0)
        pauses.speech_segments(clip)
        pauses.speech_segments(clip, batched=False)
        assert pauses.available() and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def demo_animator():
    from talking_head.core.pipeline import load_animator

    return load_animator(DEMO, "cpu", "fp32")


def test_rest_in_pauses_closes_the_mouth_only_in_pauses(demo_animator, spoken):
    from talking_head.core.template_head import load_template_head
    from talking_head.training.metrics import lip_distance

    samples, _ = spoken
    clip = np.concatenate([samples, np.zeros(16000, np.float32), samples])  # a second of silence between two sentences
    marks = load_template_head().landmarks
    before = demo_animator.animate(clip, seed=0, with_head=False)
    after = demo_animator.animate(clip, seed=0, with_head=False, rest_in_pauses=True)
    w = demo_animator.speech_weights(clip, before.n_frames)
    paused, speaking = w == 0, w == 1
    assert paused.sum() >= 15 and speaking.sum() > 100
    open_before = lip_distance(before.emotional, marks["upper_lip"], marks["lower_lip"])
    open_after = lip_distance(after.emotional, marks["upper_lip"], marks["lower_lip"])
    assert np.allclose(after.emotional[speaking], before.emotional[speaking])  # speech untouched
    assert open_after[paused].mean() <= 0.5 * open_after[speaking].mean()
    assert open_after[paused].mean() < open_before[paused].mean()


def test_transcript_path_reads_prototypes_and_moves_the_lips(demo_animator, spoken):
    samples, _ = spoken
    phones = align(samples, SENTENCE)
    context, _, _ = demo_animator.features(samples, phones)
    rows = demo_animator.phones.timeline(phones, context.shape[1], 50)
    assert torch.allclose(context[0, 10], torch.from_numpy(demo_animator.phones.features(rows)[0, 10].numpy()))
    take = demo_animator.animate(samples, seed=0, with_head=False, transcript=SENTENCE)
    plain = demo_animator.animate(samples, seed=0, with_head=False)
    assert take.n_frames == plain.n_frames and not np.allclose(take.emotional, plain.emotional)
    assert np.abs(take.emotional - demo_animator.bundle.template.vertices).max() > 1e-3  # it speaks


def test_recognised_words_are_weighed_in(demo_animator, spoken):
    samples, _ = spoken
    words = recognise(samples)
    assert words_of(words)  # a clear synthetic sentence: some words are recognised, right or not
    phones, heard = recognised_phones(samples)
    assert phones is not None and heard == words and any(p[0] != "SIL" for p in phones)
    take = demo_animator.animate(samples, seed=0, with_head=False, recognise=True)
    plain = demo_animator.animate(samples, seed=0, with_head=False)
    assert demo_animator.recognise_problem == ""  # the plain take, after, clears it too
    assert take.n_frames == plain.n_frames and not np.allclose(take.emotional, plain.emotional)
    assert np.abs(take.emotional - demo_animator.bundle.template.vertices).max() > 1e-3
    with_text = demo_animator.animate(samples, seed=0, with_head=False, transcript=SENTENCE, recognise=True)
    assert np.array_equal(with_text.emotional, demo_animator.animate(samples, seed=0, with_head=False, transcript=SENTENCE).emotional)


def test_words_heard_in_silence_are_dropped(demo_animator, monkeypatch):
    import talking_head.core.pipeline as pipeline

    silence = np.zeros(16000, np.float32)  # pocketsphinx "recognises" a word in this
    take = demo_animator.animate(silence, seed=0, with_head=False, recognise=True)
    assert "no speech was heard" in demo_animator.recognise_problem
    assert np.array_equal(take.emotional, demo_animator.animate(silence, seed=0, with_head=False).emotional)
    monkeypatch.setattr(pipeline, "recognised_phones", lambda samples: (None, "no words were recognised"))
    demo_animator.animate(silence, seed=0, with_head=False, recognise=True)
    assert demo_animator.recognise_problem.startswith("no words were recognised: Gn read the content encoder alone")


def test_phones_within_speech_segments():
    phones = [("SIL", 0.0, 0.5), ("D", 0.5, 0.6), ("AO", 0.6, 0.9), ("G", 2.0, 2.1)]
    assert pauses.phones_within(phones, [(0.4, 1.0)]) == phones[1:3]
    assert pauses.phones_within(phones, []) == []
    assert pauses.spoken(phones, [(0.4, 1.0)]) == phones[1:3]  # what Gn weighs in: the phones inside speech
    assert pauses.spoken(phones, None) == phones  # no voice detector: all of them
    assert pauses.spoken(phones, [(0.0, 0.45)]) is None and pauses.spoken(phones, []) is None  # silence alone: nothing


def test_recognise_refuses_prototypes_without_a_classifier(tmp_path, spoken):
    import shutil

    from talking_head.core.phone_features import FILE, PhonePrototypes
    from talking_head.core.pipeline import load_animator

    bundle = tmp_path / "old"
    shutil.copytree(DEMO, bundle)
    old = PhonePrototypes.load(bundle / FILE)
    old.classifier = None  # as `bundle phones` made them before the classifier
    old.save(bundle / FILE)
    with pytest.raises(TranscriptError, match="without a phone classifier.*bundle phones"):
        load_animator(bundle, "cpu", "fp32").animate(spoken[0], seed=0, with_head=False, recognise=True)


def test_closure_weights_shut_the_lips_on_bilabials():
    w = pauses.closure_weights([("SIL", 0.0, 0.2), ("M", 0.2, 0.3), ("AA1", 0.3, 0.6), ("B", 0.6, 0.64)], steps=20, steps_per_s=25,
                               ramp_s=0.04)
    centres = (np.arange(20) + 0.5) / 25
    assert (w[(centres > 0.2) & (centres < 0.3)] == 0).all() and w[np.argmin(abs(centres - 0.62))] == 0
    assert 0 < w[np.argmin(abs(centres - 0.18))] < 1  # eased in before the m
    assert (w[centres > 0.7] == 1).all() and w[np.argmin(abs(centres - 0.42))] == 1  # the vowel keeps its opening


def test_known_phones_close_the_lips_on_p_b_m(demo_animator, spoken):
    from talking_head.core.template_head import load_template_head
    from talking_head.training.metrics import lip_distance

    samples, _ = spoken
    marks = load_template_head().landmarks
    phones = align(samples, SENTENCE)
    take = demo_animator.animate(samples, seed=0, with_head=False, transcript=SENTENCE, rest_in_pauses=False)
    opening = lip_distance(take.emotional, marks["upper_lip"], marks["lower_lip"])
    weight = pauses.closure_weights(phones, take.n_frames, 25)
    assert (weight == 0).sum() >= 3  # man, pushed, measure
    assert opening[weight == 0].mean() < 0.3 * opening[weight == 1].mean()


def test_cli_transcript_errors_are_one_line(tmp_path, capsys, spoken):
    samples, _ = spoken
    wav = tmp_path / "line.wav"
    soundfile.write(wav, samples, 16000)
    code, out, err = run_cli_captured(capsys, "animate", str(wav), "--bundle", str(DEMO), "--out", str(tmp_path / "a.npz"), "--transcript", "the zyxw")
    assert code != 0 and "zyxw" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.npz").exists()
    other = tmp_path / "other.wav"
    soundfile.write(other, samples, 16000)
    code, out, err = run_cli_captured(capsys, "animate", str(wav), str(other), "--bundle", str(DEMO), "--out", str(tmp_path / "many"),
                                      "--transcript", SENTENCE)
    assert code != 0 and "--transcript beside" in err


def test_task_carries_transcript_and_pause_switch():
    from talking_head.core.tasks import AnimateTask, task_from_json

    task = AnimateTask(audio="a.wav", bundle="b", transcript="zero one", rest_in_pauses=False, recognise=True)
    back = task_from_json(json.loads(json.dumps(task.to_json())))
    assert back.transcript == "zero one" and back.rest_in_pauses is False and back.recognise is True
    assert AnimateTask(audio="a.wav", bundle="b").rest_in_pauses is True
    assert AnimateTask(audio="a.wav", bundle="b").recognise is False


# ---- voice warp and speech sets ----

def test_warp_envelope_moves_a_formant():
    envelope = np.exp(-((np.arange(100) - 30.0) ** 2) / 20)[None]
    assert np.argmax(warp_envelope(envelope, 1.2)[0]) == 36 and np.argmax(warp_envelope(envelope, 1.0)[0]) == 30


def test_warp_voice_changes_pitch_and_rate(spoken):
    import librosa

    samples, phones = spoken
    warp = Warp(formant=1.1, pitch=1.3, pitch_range=1.0, rate=1.25, gain_db=0.0)
    out = warp_voice(samples, warp)
    assert abs(len(out) - len(samples) / 1.25) < 200
    f0_in = np.nanmedian(librosa.yin(samples, fmin=60, fmax=500, sr=16000))
    f0_out = np.nanmedian(librosa.yin(out, fmin=60, fmax=500, sr=16000))
    assert 1.15 < f0_out / f0_in < 1.45
    assert warp_phones([["m", 0.5, 1.0]], 1.25) == [["m", 0.4, 0.8]]


def test_corpus_phones_fill_gaps_with_pau():
    assert corpus_phones([["Z", 0.05, 0.1], ["IY1", 0.1, 0.2], ["SIL", 0.2, 0.25]], 0.3) == [
        ["pau", 0.0, 0.05], ["z", 0.05, 0.1], ["iy", 0.1, 0.2], ["pau", 0.2, 0.3]]


def test_fsdd_set_leaves_held_out_speakers_out(tmp_path):
    fsdd = tmp_path / "fsdd"
    fsdd.mkdir()
    table = {}
    for speaker in ("george", "lucas"):
        name = f"0_{speaker}_0.wav"
        soundfile.write(fsdd / name, speech_like(0.4, rate=8000), 8000)
        table[name] = {"text": "zero", "phones": [["Z", 0.0, 0.1], ["IY", 0.1, 0.2], ["R", 0.2, 0.3], ["OW", 0.3, 0.38]]}
    (tmp_path / "align.json").write_text(json.dumps(table))
    records = fsdd_speech_set(fsdd, tmp_path / "align.json", tmp_path / "set", held_out=("lucas",))
    assert [r["speaker"] for r in records] == ["fsdd_george"]
    assert soundfile.info(tmp_path / "set" / "wav" / "fsdd_0_george_0.wav").samplerate == 16000


@pytest.fixture(scope="module")
def mixed_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    _speech_set(root / "tones", utterances=8)
    warped = warped_speech_set(root / "tones", root / "warped", copies=1, limit=3, held_out=("held",), progress=False)
    assert len(warped) == 3 and all("~w0" in r["speaker"] for r in warped)
    real = root / "real"
    _speech_set(real, utterances=4)
    lines = [json.loads(line) for line in (real / "labels.jsonl").read_text().splitlines()]
    for r in lines:  # rename, so ids do not clash, and mark as real recordings
        for kind, suffix in (("wav", ".wav"), ("phones", ".json")):
            (real / kind / f"{r['id']}{suffix}").rename(real / kind / f"r{r['id']}{suffix}")
        r.update(id="r" + r["id"], source="FSDD (CC BY-SA 4.0)", speaker="fsdd_x")
    (real / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert mix_speech_sets([root / "tones", root / "warped", real], root / "mixed") == 8 + 3 + 4
    return root


def test_distilled_encoder_learns_and_loads(mixed_set, tmp_path):
    from transformers import Wav2Vec2Model

    from talking_head.core.encoders import ContextEncoder
    from talking_head.training.content_distillation import distill_content_encoder, items_of
    from talking_head.training.encoder_training import EncoderTrainingConfig, backbone_config

    torch.manual_seed(0)
    teacher = tmp_path / "teacher"
    Wav2Vec2Model(backbone_config(**TINY)).save_pretrained(teacher)
    phones = ["aa", "m", "s", "iy", "pau"]
    PhonePrototypes(phones, np.random.default_rng(0).standard_normal((5, 32)).astype(np.float32), np.ones(5, np.int64)).save(tmp_path / "p.safetensors")
    kinds = {u.target for u in items_of(mixed_set / "mixed", ("held",))}
    assert kinds == {"teacher", "original", "phones"}
    cfg = EncoderTrainingConfig(epochs=3, lr=3e-3, warmup_steps=1, batch_seconds=6.0, held_out=("held",))
    report = distill_content_encoder(teacher, mixed_set / "mixed", tmp_path / "p.safetensors", tmp_path / "student", cfg, progress=False)
    log = report["log"]
    assert log[-1]["real"] < log[0]["real"]  # it moves the real recordings towards their prototypes
    assert report["utterances"] == {"teacher": 6, "original": 3, "phones": 4}
    student = ContextEncoder(str(tmp_path / "student"))
    features = student.encode(speech_like(1.0))
    assert features.shape[1] == 32 and torch.isfinite(features).all()
