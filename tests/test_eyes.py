"""Blinks and gaze (core/eyes.py): on by default, seeded, at human rates, on the eyelids only, off with --no-blinks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from talking_head.core.arkit import ARKIT_INDEX
from talking_head.core.audio import frame_count, load_audio
from talking_head.core.eyes import MAX_BLINK_S, add_eyes, blink_runs, eye_motion, gaze_channels, speech_pauses
from talking_head.core.live_link import eye_angles, read_live_link_csv, write_live_link_csv
from talking_head.core.tasks import AnimateTask, task_from_json

from conftest import write_clip

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "weights" / "demo"
SAMPLE = ROOT / "samples" / "demo_speech.wav"
demo = pytest.mark.skipif(not (DEMO / "config.json").is_file(), reason="no demo bundle in weights/demo")


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return load_audio(SAMPLE)


@pytest.fixture(scope="module")
def demo_takes():
    """The demo sample animated twice with one loaded bundle: with --no-blinks and with the default layer.

    One torch thread while this module runs: its tests compare takes exactly, and on several
    threads torch's reductions differ in the last bit from run to run (measured: lips 6e-8 apart
    on 2 threads, equal on 1), which would fail them for a reason that is not the eye layer."""
    import torch

    from talking_head.core.pipeline import animate_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = AnimateTask(audio=str(SAMPLE), bundle=str(DEMO), device="cpu", seed=3)
        plain, animator = animate_task(dataclasses.replace(task, blinks=False))
        blinking, _ = animate_task(task, animator=animator)
        yield plain, blinking, animator
    finally:
        torch.set_num_threads(threads)


def test_blinks_at_human_rates_short_and_apart(samples):
    n = frame_count(len(samples))
    minutes = n / 25 / 60
    for seed in range(8):
        motion = eye_motion(samples, n, seed)
        runs = blink_runs(motion.blink)  # a blink: the lids more than half shut
        assert 8 <= len(runs) / minutes <= 30, (seed, len(runs))
        assert len(runs) == len(motion.blinks)
        assert all(frames / 25 <= 0.4 for _, frames in runs)
        assert all(end - start <= MAX_BLINK_S + 1e-9 for start, _, end in motion.blinks)  # close to open again
        assert all(peak - start < end - peak for start, peak, end in motion.blinks)  # closes faster than it opens
        peaks = [peak for _, peak, _ in motion.blinks]
        assert np.all(np.diff(peaks) >= 1.5)  # never two at once
        assert 0.9 <= motion.blink.max() <= 1.0 and motion.blink.min() >= 0.0
        yaw, pitch = np.degrees(np.abs(motion.gaze)).max(axis=0)
        assert 0.5 < yaw <= 8.0 and pitch <= 6.0  # a few degrees, mostly sideways
        assert len(np.unique(motion.gaze[:, 0])) < n / 4  # held, then a jump: not a drift


def test_same_seed_same_blinks_other_seed_other_blinks(samples):
    n = frame_count(len(samples))
    a, b, c = eye_motion(samples, n, 5), eye_motion(samples, n, 5), eye_motion(samples, n, 6)
    assert np.array_equal(a.blink, b.blink) and np.array_equal(a.gaze, b.gaze)
    assert not np.array_equal(a.blink, c.blink) and not np.array_equal(a.gaze, c.gaze)


def test_pauses_come_from_the_sound_and_draw_blinks():
    rate, n = 16_000, 250  # 10 s: speech-like tone bursts with a pause at 4-5 s
    t = np.arange(10 * rate) / rate
    speech = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > -0.5)).astype(np.float32)
    speech[4 * rate : 5 * rate] = 0.0
    pauses = speech_pauses(speech, n)
    assert pauses[102:124].all() and not pauses[:95].any() and not pauses[130:].any()
    # Over many seeds, blinks crowd into the pause's first 0.4 s (a tenth of a blink's chances here).
    peaks = np.concatenate([[p for _, p, _ in eye_motion(speech, n, seed).blinks] for seed in range(60)])
    at_phrase_end = np.mean((peaks >= 4.0) & (peaks < 4.4))
    assert at_phrase_end > 2 * 0.4 / 10


def test_gaze_channels_are_what_live_link_reads_back():
    gaze = np.radians([[5.0, 2.0], [-3.0, -1.0], [0.0, 0.0]]).astype(np.float32)
    weights = np.zeros((3, 52), np.float32)
    for name, column in gaze_channels(gaze).items():
        weights[:, ARKIT_INDEX[name]] = column
    assert np.all((weights >= 0) & (weights <= 1))
    angles = eye_angles(weights)  # LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, ...
    assert np.allclose(angles[:, [0, 1]], gaze, atol=1e-6) and np.allclose(angles[:, [3, 4]], gaze, atol=1e-6)


def test_task_carries_the_switch():
    assert AnimateTask(audio="a.wav", bundle="b").blinks is True
    off = AnimateTask(audio="a.wav", bundle="b", blinks=False)
    assert task_from_json(off.to_json()).blinks is False
    assert task_from_json({"task": "animate", "audio": "a.wav", "bundle": "b"}).blinks is True  # older task files


def test_cli_no_blinks_option():
    from talking_head.app.cli import _animate_task, build_parser

    args = build_parser().parse_args(["animate", "a.wav", "--bundle", "b", "--out", "o.npz"])
    assert _animate_task(args, "a.wav").blinks is True
    args = build_parser().parse_args(["animate", "a.wav", "--bundle", "b", "--out", "o.npz", "--no-blinks"])
    assert _animate_task(args, "a.wav").blinks is False


@demo
def test_demo_take_blinks_on_the_eyelids_only(demo_takes):
    from talking_head.core.template_head import load_template_head

    plain, blinking, _ = demo_takes
    assert plain.blink_weights is None and plain.gaze is None  # --no-blinks: the model's take as it was
    blink = blinking.blink_weights
    assert blink.shape == (plain.n_frames,) and blinking.gaze.shape == (plain.n_frames, 2)
    assert 8 <= len(blink_runs(blink)) / (plain.n_frames / 25 / 60) <= 30
    # The ARKit channels are the solve of the face that blinks: the blink shows on both eyes'
    # channels (a little rounded by the solver's smoothness), nothing changes away from blinks.
    peaks = [int(round(peak * 25)) for _, peak, _ in eye_motion_of(blinking).blinks]
    away = np.ones(len(blink), bool)
    for i in peaks:
        away[max(0, i - 6) : i + 7] = False
    for side in ("Left", "Right"):
        j = ARKIT_INDEX[f"eyeBlink{side}"]
        added = blinking.arkit_weights[:, j] - plain.arkit_weights[:, j]
        assert np.all(added[peaks] > 0.6) and np.all(blinking.arkit_weights[peaks, j] > 0.75)
        assert np.abs(added[away]).max() < 0.02 and np.corrcoef(added, blink)[0, 1] > 0.95
    j = ARKIT_INDEX["eyeLookInLeft"]
    turned = gaze_channels(blinking.gaze)["eyeLookInLeft"]
    assert np.corrcoef(blinking.arkit_weights[:, j] - plain.arkit_weights[:, j], turned)[0, 1] > 0.9
    # Faces: the eyelids close on a blink frame; the lips and the rest of the face do not move.
    head = load_template_head()
    eyeballs = head.region_mask("eyes", "iris")
    top = int(np.argmax(blink))
    assert blink[top] > 0.9
    moved = np.linalg.norm(blinking.emotional[top] - plain.emotional[top], axis=1)
    eyes = [head.landmarks["eye_left"], head.landmarks["eye_right"]]
    lips = [head.landmarks[n] for n in ("upper_lip", "lower_lip", "mouth_corner_left", "mouth_corner_right", "chin")]
    scale = float(np.linalg.norm(plain.emotional[top, eyes[0]] - plain.emotional[top, eyes[1]]))
    assert moved.max() > 0.02 * scale  # the lid comes down a visible fraction of the eyes' distance
    assert np.array_equal(blinking.emotional[:, lips], plain.emotional[:, lips])
    assert np.array_equal(blinking.vertices[:, lips], plain.vertices[:, lips])
    # The eye region only: what moves visibly (the ARKit blink shape's tails reach the nose tip at
    # under 1% of the lid's travel) is nearer an eye than the lips.
    rest = head.vertices[moved > 0.02 * moved.max()]
    to_eye = np.linalg.norm(rest[:, None] - head.vertices[eyes], axis=2).min(axis=1)
    assert np.all(to_eye < np.linalg.norm(rest - head.vertices[head.landmarks["upper_lip"]], axis=1))
    # Away from blinks only the eyeballs turn (the gaze); the lids stay where the model put them.
    still = int(np.argmin(blink + (np.arange(len(blink)) == 0)))
    assert blink[still] == 0.0
    drift = np.linalg.norm(blinking.emotional[still] - plain.emotional[still], axis=1) > 0
    assert drift[eyeballs].any() and not drift[~eyeballs].any()
    # Head motion is applied after the layer: v = R (ye - P) + P + tau still holds.
    expected = np.einsum("tij,tvj->tvi", blinking.rotation, blinking.emotional - blinking.pivot) + blinking.pivot + blinking.translation[:, None]
    assert np.allclose(blinking.vertices, expected, atol=1e-4)
    assert np.array_equal(blinking.neutral, plain.neutral)  # Gn's stage is the model's


def eye_motion_of(take):
    """The layer's motion for the demo takes (seed 3)."""
    return eye_motion(load_audio(SAMPLE), take.n_frames, 3)


@demo
def test_demo_layer_is_exactly_the_added_motion(demo_takes, samples):
    plain, blinking, animator = demo_takes
    solver = animator.arkit_solver()
    motion = eye_motion(samples, plain.n_frames, 3)
    assert np.array_equal(motion.blink, blinking.blink_weights) and np.array_equal(motion.gaze, blinking.gaze)
    faces = add_eyes(plain.emotional.copy(), solver.shapes, motion)
    assert np.array_equal(faces, blinking.emotional)
    assert np.array_equal(blinking.arkit_weights, solver.solve(blinking.emotional, rest=animator.bundle.template.vertices))
    assert not np.array_equal(eye_motion(samples, plain.n_frames, 4).blink, blinking.blink_weights)


@demo
def test_demo_take_saves_and_reads_its_blinks(demo_takes, tmp_path):
    from talking_head.core.animation import Animation

    plain, blinking, _ = demo_takes
    blinking.save_npz(tmp_path / "take.npz")
    read = Animation.load_npz(tmp_path / "take.npz")
    assert np.array_equal(read.blink_weights, blinking.blink_weights) and np.array_equal(read.gaze, blinking.gaze)
    assert read.frames(slice(10, 20)).blink_weights.shape == (10,)
    plain.save_npz(tmp_path / "plain.npz")  # a take without the layer (as older files are) reads without it
    assert Animation.load_npz(tmp_path / "plain.npz").blink_weights is None
    csv = write_live_link_csv(tmp_path / "take.csv", blinking.arkit_weights, blinking.fps, blinking.rotation)
    take = read_live_link_csv(csv)
    assert np.allclose(take.weights[:, ARKIT_INDEX["eyeBlinkLeft"]], blinking.arkit_weights[:, ARKIT_INDEX["eyeBlinkLeft"]], atol=1e-6)
    # Eye yaw/pitch, from the eyeLook channels: the gaze (through the solve, as the channels carry it).
    assert np.allclose(take.eyes, eye_angles(blinking.arkit_weights), atol=1e-6)
    turned = take.eyes[:, 0] - eye_angles(plain.arkit_weights)[:, 0]
    assert np.corrcoef(turned, blinking.gaze[:, 0])[0, 1] > 0.9 and np.abs(turned - blinking.gaze[:, 0]).max() < np.radians(3)


def test_without_landmarks_the_layer_is_skipped_and_says_so(tiny_bundle_dir, clip_3s, tmp_path, capsys):
    from talking_head.app.cli import main
    from talking_head.core.pipeline import animate_task

    task = AnimateTask(audio=str(clip_3s), bundle=str(tiny_bundle_dir), device="cpu", seed=2)
    plain, animator = animate_task(dataclasses.replace(task, blinks=False))
    assert animator.eyes_problem == ""
    take, _ = animate_task(task, animator=animator)
    assert "blinks and gaze need face landmarks" in animator.eyes_problem
    assert take.blink_weights is None and take.gaze is None and take.arkit_weights is None
    assert np.array_equal(take.vertices, plain.vertices) and np.array_equal(take.emotional, plain.emotional)
    # The command line says so once, after the take(s), and writes them as they were.
    capsys.readouterr()
    other = write_clip(tmp_path / "other.wav", 1.0)
    assert main(["animate", str(clip_3s), str(other), "--bundle", str(tiny_bundle_dir), "--out", str(tmp_path / "takes"), "--device", "cpu"]) == 0
    assert capsys.readouterr().err.count("blinks and gaze need face landmarks") == 1
    assert main(["animate", str(other), "--bundle", str(tiny_bundle_dir), "--out", str(tmp_path / "o.npz"), "--device", "cpu", "--no-blinks"]) == 0
    assert "blinks" not in capsys.readouterr().err


def test_panel_checkbox_is_on_by_default(addon):
    settings = addon.talking_head
    assert settings.blinks is True
    assert settings.bl_rna.properties["blinks"].name == "Blinks and gaze"


def test_the_worker_says_when_blinks_were_skipped(tiny_bundle_dir, clip_3s, tmp_path):
    """The panel and `bake` read the worker's note: a template without landmarks gets no blinks,
    and the report says so (a take with --no-blinks has nothing to say)."""
    import sys

    from talking_head.blender.worker_client import run_worker

    task = AnimateTask(audio=str(clip_3s), bundle=str(tiny_bundle_dir), device="cpu", seed=2, out=str(tmp_path / "out"))
    assert "blinks and gaze need face landmarks" in run_worker(sys.executable, task, timeout=300).note
    assert "pauses were not brought to rest" in run_worker(sys.executable, dataclasses.replace(task, blinks=False), timeout=300).note
    assert run_worker(sys.executable, dataclasses.replace(task, blinks=False, rest_in_pauses=False), timeout=300).note == ""
