"""bench/real_voices.py's pure parts: phone labels from alignments, the linear probe, voice
activity and pauses, and per-class lip opening, on small synthetic arrays (no model, no recordings)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "real_voices.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_voices", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_pocketsphinx_phones_map_to_the_corpus_inventory(bench):
    assert bench.to_inventory("AY1") == "ay"
    assert bench.to_inventory("sil") == "pau"
    assert bench.to_inventory("z") == "z"


def test_times_outside_the_alignment_are_pauses(bench):
    inventory = ["ay", "n", "pau"]
    phones = [["n", 0.1, 0.2], ["ay", 0.2, 0.4]]
    labels = bench.labels_at(phones, np.array([0.05, 0.15, 0.25, 0.39, 0.5]), inventory)
    assert [inventory[i] for i in labels] == ["pau", "n", "ay", "ay", "pau"]


def test_stacked_frames_carry_their_neighbours(bench):
    x = np.arange(5, dtype=np.float32)[:, None]  # (T=5, D=1)
    stacked = bench.stack_frames(x, 1)
    assert stacked.shape == (5, 3)
    assert stacked[0].tolist() == [0, 0, 1] and stacked[2].tolist() == [1, 2, 3] and stacked[4].tolist() == [3, 4, 4]


def test_the_probe_learns_separable_classes_and_not_noise(bench):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 4
    y = rng.integers(0, 4, 400)
    x = (centres[y] + rng.normal(size=(400, 8))).astype(np.float32)
    predict = bench.fit_probe(x[:300], y[:300], 4, steps=50)
    assert bench.accuracy(predict(x[300:]), y[300:]) > 0.9
    noise = rng.normal(size=(400, 8)).astype(np.float32)
    predict = bench.fit_probe(noise[:300], y[:300], 4, steps=50)
    assert bench.accuracy(predict(noise[300:]), y[300:]) < 0.5
    assert bench.accuracy(np.array([1, 2, 3]), np.array([1, 0, 3]), np.array([True, True, False])) == 0.5


def test_pauses_are_silences_longer_than_a_quarter_second(bench):
    fps = 25
    loud = np.sin(np.arange(16_000) * 0.3).astype(np.float32)  # 1 s of tone
    quiet = np.zeros(8_000, np.float32)  # 0.5 s: a pause
    short = np.zeros(3_200, np.float32)  # 0.2 s: too short to count
    samples = np.concatenate([loud, quiet, loud, short, loud])
    frames = len(samples) * fps // 16_000
    speaking = bench.voice_activity(samples, frames, fps)
    paused = bench.pause_mask(speaking, fps)
    assert speaking[:25].all() and not speaking[26:37].any()
    assert paused.sum() == 12 or paused.sum() == 13  # the 0.5 s pause; frame edges may split one
    assert not paused[25 + 12 + 25:].any()  # the 0.2 s silence is not a pause


def test_lip_opening_is_averaged_per_phone_class(bench):
    values = np.array([0.01, 0.02, 0.08, 0.1, 0.05])
    phones = ["m", "p", "aa", "ay", "s"]
    out = bench.mean_by_class(values, phones, {"closed": ("p", "b", "m"), "open": ("aa", "ay"), "none": ("ow",)})
    assert out["closed"] == {"mean": pytest.approx(0.015), "frames": 2}
    assert out["open"]["mean"] == pytest.approx(0.09)
    assert out["none"] == {"mean": None, "frames": 0}


def test_synthetic_reference_at_the_real_sets_phone_mix(bench):
    values = np.array([0.08, 0.08, 0.05, 0.05, 0.05, 0.07])
    phones = ["aa", "aa", "ae", "ae", "ae", "ow"]
    members = ("aa", "ae", "ay")
    assert bench.at_phone_mix(values, phones, phones, members) == pytest.approx((2 * 0.08 + 3 * 0.05) / 5)
    # a real set of mostly ae: the reference is mostly ae's opening; its ay (absent here) is left out
    assert bench.at_phone_mix(values, phones, ["ae"] * 9 + ["aa"] + ["ay"] * 5, members) == pytest.approx(0.053)
    assert bench.at_phone_mix(values, phones, ["ay", "uw"], members) is None


def test_hts_labels_read_plain_and_full_context(bench, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "a_phone.lab").write_text("0 1300000 x^x-sil+hh=iy@x_x/A:0\n1300000 2050000 x^sil-hh+iy=t@1_2/A:0\n")
    (tmp_path / "b.wav").write_bytes(b"")
    (tmp_path / "b.lab").write_text("0 5000000 pau\n5000000 6000000 m\n")
    (tmp_path / "c.wav").write_bytes(b"")  # no labels: left out
    items = bench.labelled_items(tmp_path)
    assert [i[0].name for i in items] == ["a.wav", "b.wav"]
    assert items[0][1] == [("sil", 0.0, 0.13), ("hh", 0.13, 0.205)] and items[1][1][1] == ("m", 0.5, 0.6)
    assert bench.labelled_items(None) == []


def test_viseme_scores_point_the_way_each_class_asks(bench):
    assert bench.viseme_score("bilabial p b m", 0.01, 0.0) > bench.viseme_score("bilabial p b m", 0.02, 0.0)  # more closed, better
    assert bench.viseme_score("open vowels", 0.06, 0.0) > bench.viseme_score("open vowels", 0.03, 0.0)
    assert bench.viseme_score("rounded vowels", 0.05, 0.004) > bench.viseme_score("rounded vowels", 0.05, 0.001)  # narrower, better
    assert bench.viseme_score("bilabial p b m", None, None) is None
