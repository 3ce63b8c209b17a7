"""Heard phones (core/phone_loop.py): recognised words aligned on real speech, the phone loop
without words, long audio in pieces, the same from the child process as in-process, nothing left
behind, and takes that weigh them in only when asked and when the bundle can."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talking_head.core import phone_loop
from talking_head.core.alignment import TranscriptError, align, pcm16
from talking_head.core.audio import load_audio
from talking_head.core.phone_loop import PhoneLoopJob, heard_phones, start_for
from talking_head.core.tasks import AnimateTask

from conftest import SHARED, speech_like

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weights" / "demo"
REAL = SHARED / "speech" / "real_speech_11s.wav"
REAL_TEXT = ("Today, like millions of other families across America, Michelle, Malia, Sasha and I will sit down to share a "
             "Thanksgiving filled with family and friends, a few hours of food and football too.")  # its words

pytestmark = pytest.mark.skipif(not phone_loop.available(), reason="pocketsphinx is not installed")


@pytest.fixture(scope="module")
def real_clip() -> np.ndarray:
    return load_audio(str(REAL))[: 16000 * 3]


def test_heard_phones_on_real_speech(real_clip):
    phones = heard_phones(real_clip)
    spoken = [p for p in phones if p[0] != "SIL"]
    assert len(spoken) >= 15, phones  # 3 s of speech: a few dozen phones, not none
    starts = [p[1] for p in phones]
    assert starts == sorted(starts) and all(a < b for _, a, b in phones) and phones[-1][2] <= 3.0 + 0.02
    assert all(name.isalpha() and name.isupper() for name, _, _ in phones)  # ARPAbet, noise folded into SIL


def test_heard_phones_are_the_recognised_words_aligned():
    """On the whole 11 s recording, the heard phones agree with the forced alignment of its known
    words on most frames (0.88 measured; the phone loop alone: 0.54)."""
    clip = load_audio(str(REAL))
    heard, truth = heard_phones(clip), align(clip, REAL_TEXT)
    centres = np.arange(0.005, len(clip) / 16000, 0.01)

    def at(phones):
        out = np.full(len(centres), "SIL", dtype=object)
        for name, start, end in phones:
            out[(centres >= start) & (centres < end)] = name
        return out

    a, b = at(heard), at(truth)
    speech = b != "SIL"
    assert (a[speech] == b[speech]).mean() >= 0.7


def test_without_recognised_words_the_phone_loop_is_heard(real_clip, monkeypatch):
    pcm = pcm16(real_clip)
    loop = phone_loop._phone_loop(pcm)
    monkeypatch.setattr(phone_loop, "_recognised_words", lambda pcm: "")
    assert heard_phones(real_clip) == loop
    monkeypatch.setattr(phone_loop, "_recognised_words", lambda pcm: "today like millions")

    def refuse(pcm, text):
        raise TranscriptError("the transcript could not be aligned to the sound")

    monkeypatch.setattr(phone_loop, "align_pcm", refuse)  # words that do not align: the phone loop's phones
    assert heard_phones(real_clip) == loop


def test_the_child_hears_what_this_process_hears_and_leaves_nothing(real_clip):
    job = PhoneLoopJob.start(real_clip)
    path = job.pcm_path
    assert job.process is not None and path is not None
    assert job.result() == heard_phones(real_clip)
    job.cancel()
    assert not Path(path).exists()


def test_a_failed_child_still_gives_the_phones(real_clip, monkeypatch, tmp_path):
    monkeypatch.setattr(phone_loop, "PACKAGE_ROOT", tmp_path / "nowhere")  # the child cannot import the package
    job = PhoneLoopJob.start(real_clip)
    assert job.result() == heard_phones(real_clip)
    job.cancel()
    assert job.pcm_path is None


def test_cancel_stops_the_child_and_removes_its_input(real_clip):
    job = PhoneLoopJob.start(np.tile(real_clip, 10))  # 30 s: still running when cancelled
    path = job.pcm_path
    job.cancel()
    assert job.process.poll() is not None and not Path(path).exists()


def test_started_only_when_asked_and_the_bundle_has_phone_prototypes(tiny_bundle_dir):
    clip = speech_like(0.5)
    for task in (AnimateTask("a.wav", str(DEMO), phone_loop=False), AnimateTask("a.wav", str(DEMO), transcript="one"),
                 AnimateTask("a.wav", str(DEMO), recognise=True), AnimateTask("a.wav", str(tiny_bundle_dir))):
        assert start_for(task, clip) is None, task
    job = start_for(AnimateTask("a.wav", str(DEMO)), clip)
    assert job is not None
    job.cancel()
    assert start_for(AnimateTask("a.wav", str(DEMO)), clip, bundle_hears=False) is None


def test_task_wire_keeps_the_switch():
    assert AnimateTask.from_json({"audio": "a.wav", "bundle": "b"}).phone_loop is True  # the default, for older clients too
    task = AnimateTask("a.wav", "b", phone_loop=False)
    assert AnimateTask.from_json(task.to_json()).phone_loop is False


def test_takes_weigh_heard_phones_in_only_where_the_bundle_can(tiny_bundle_dir, real_clip):
    from talking_head.core.pipeline import AnimateTask as Task, animate_task, load_animator

    demo = load_animator(DEMO, "cpu", "fp32")
    assert demo.hears_phones()
    plain = demo.animate(real_clip, seed=0, with_head=False, phone_loop=False)
    heard = demo.animate(real_clip, seed=0, with_head=False, phone_loop=True)
    assert np.abs(heard.emotional - plain.emotional).mean() > 1e-4  # Gn read something else
    task = Task(str(REAL), str(DEMO), with_head=False, blinks=False, rest_in_pauses=False, precision="fp32", device="cpu")
    loading, _ = animate_task(task, samples=real_clip)  # the bundle loads: the phone loop runs in a child meanwhile
    loaded, _ = animate_task(task, animator=demo, samples=real_clip)  # a loaded bundle: it runs here
    assert np.array_equal(loading.emotional, heard.emotional) and np.array_equal(loaded.emotional, heard.emotional)

    tiny = load_animator(tiny_bundle_dir, "cpu", "fp32")  # no phone prototypes: the encoder alone, no error
    assert not tiny.hears_phones()
    clip = speech_like(1.0)
    assert np.array_equal(tiny.animate(clip, phone_loop=True).vertices, tiny.animate(clip, phone_loop=False).vertices)


def test_command_line_switch(capsys, tmp_path, tiny_bundle_dir):
    from conftest import run_cli_captured, write_clip

    clip = write_clip(tmp_path / "a.wav", 1.0)
    code, out, err = run_cli_captured(capsys, "animate", clip, "--bundle", tiny_bundle_dir, "--out", tmp_path / "a.npz", "--no-phone-loop")
    assert code == 0 and (tmp_path / "a.npz").is_file(), err
    assert "--no-phone-loop" in run_cli_captured(capsys, "bake", "--help")[1]


def test_long_audio_is_heard_in_pieces_cut_where_it_is_quiet():
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(16000 * 200) * 1000).astype(np.int16)
    samples[16000 * 32: 16000 * 32 + 800] = 0  # 50 ms of silence 2 s after the first cut's place
    ranges = phone_loop.pieces(samples)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(samples)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert 16000 * 32 <= ranges[0][1] <= 16000 * 32 + 800
    assert all(end - start <= 16000 * 65 for start, end in ranges)
    assert phone_loop.pieces(samples[: 16000 * 60]) == [(0, 16000 * 60)]


def test_pieces_are_heard_at_their_place_in_the_take(real_clip, monkeypatch):
    monkeypatch.setattr(phone_loop, "PIECE_S", 1.0)  # 3 s: pieces of about a second
    phones = heard_phones(real_clip)
    starts = [p[1] for p in phones]
    assert starts == sorted(starts) and phones[-1][2] <= 3.0 + 0.02 and sum(p[0] != "SIL" for p in phones) >= 15


def test_pieces_heard_in_two_processes_are_the_same(real_clip, monkeypatch):
    monkeypatch.setattr(phone_loop, "PIECE_S", 1.0)
    pcm = pcm16(real_clip)
    assert phone_loop._decode(pcm, processes=2) == phone_loop._decode(pcm)
