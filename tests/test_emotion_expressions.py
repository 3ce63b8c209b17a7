"""Learned expression shapes (`talking-head bundle expressions`): fitted on a labelled corpus,
stored beside the prototypes, added by `--emotion`; a take without a direction stays exactly
what it was."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.core.emotion_direction import PROTOTYPES, EmotionPrototypes
from talking_head.training.dataset import Clip
from talking_head.training.emotion_expressions import ExpressionsError, frame_weights

from conftest import run_cli_captured, write_clip
from test_emotion_direction import LABELS, _speech_set
from tiny_corpus import V, make_corpus


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A tiny corpus whose emotional takes are labelled happy (intensity ramping to 1), and a tiny
    bundle of its size with emotion prototypes (untrained weights: the fit is least squares on
    what its faces miss)."""
    from talking_head.app.cli import main
    from talking_head.training.tiny import make_tiny_bundle

    root = tmp_path_factory.mktemp("directions")
    corpus = make_corpus(root / "corpus")
    (corpus / "emotions").mkdir()
    for faces in (corpus / "vertices_npy").glob("*_e*.npy"):
        n = len(np.load(faces))
        np.savez(corpus / "emotions" / f"{faces.stem}.npz", label=np.full(n, LABELS.index("happy"), np.int8),
                 intensity=np.minimum(1.0, np.arange(n) / 10).astype(np.float32))
    bundle = root / "bundle"
    make_tiny_bundle(bundle, n_vertices=V, subjects=["F2", "M3"], max_frames=40, window_overlap=15, encode_window_s=1.0, encode_context_s=0.5)
    assert main(["bundle", "emotions", str(bundle), "--speech", str(_speech_set(root / "speech"))]) == 0
    return corpus, bundle


def test_frame_weights_follow_the_labels(tmp_path):
    (tmp_path / "emotions").mkdir()
    np.savez(tmp_path / "emotions" / "F2_e01.npz", label=np.array([0, 3, 3, 3], np.int8), intensity=np.array([0, 0.5, 1, 1], np.float32))
    emotional = frame_weights(tmp_path, Clip("F2_e01", "F2", 1, True), 4, LABELS)
    np.testing.assert_allclose(emotional[:, LABELS.index("angry")], [0, 0.5, 1, 1])
    assert emotional.sum() == pytest.approx(2.5)  # no other class, neutral included
    assert not frame_weights(tmp_path, Clip("F2_01", "F2", 1, False), 3, LABELS).any()  # neutral takes add no shape
    with pytest.raises(ExpressionsError, match="emotions/F2_e02.npz is missing"):
        frame_weights(tmp_path, Clip("F2_e02", "F2", 2, True), 3, LABELS)


def test_expressions_are_fitted_stored_and_added_and_leave_the_voice_alone(labelled, tmp_path, capsys):
    corpus, bundle = labelled
    clip = write_clip(tmp_path / "clip.wav", 1.5)
    args = [str(clip), "--bundle", str(bundle), "--precision", "fp32", "--no-blinks", "--stages"]

    def take(name: str, *extra: str) -> np.lib.npyio.NpzFile:
        code, _, err = run_cli_captured(capsys, "animate", *args, "--out", str(tmp_path / name), *extra)
        assert code == 0, err
        return np.load(tmp_path / name)

    voice_before, happy_before = take("voice0.npz"), take("happy0.npz", "--emotion", "happy:1")
    code, out, err = run_cli_captured(capsys, "bundle", "expressions", str(bundle), "--data", str(corpus))
    assert code == 0, err
    assert "wrote learned expressions for neutral, happy, sad, angry, surprised" in out
    stored = EmotionPrototypes.load(bundle / PROTOTYPES)
    assert stored.expressions.shape == (5, V, 3)
    happy = LABELS.index("happy")
    # only the labelled class has a shape: no take of sad, angry or surprised, and neutral adds none
    assert np.abs(stored.expressions[[0, 2, 3, 4]]).max() == 0 and np.abs(stored.expressions[happy]).max() > 1e-4
    m = stored.expressions_measure
    assert m["takes"] >= 1 and m["expressions_error"] < m["prototypes_error"]  # the shapes explain what the faces missed
    voice_after, happy_after, half = take("voice1.npz"), take("happy1.npz", "--emotion", "happy:1"), take("half.npz", "--emotion", "happy:0.5")
    for name in ("vertices", "emotional"):
        np.testing.assert_array_equal(voice_before[name], voice_after[name])  # nothing added without a direction
    # the happy take is the prototype-directed one plus the happy shape, half of it at 0.5
    np.testing.assert_allclose(happy_after["emotional"] - happy_before["emotional"], np.broadcast_to(stored.expressions[happy], happy_after["emotional"].shape), atol=1e-5)
    assert not np.allclose(half["emotional"], happy_after["emotional"])
    # the head: a learned amplitude per class, 1 for the classes no take shows
    gains = stored.head_gains
    assert gains.shape == (5,) and np.all(gains[[2, 3, 4]] == 1.0) and gains[happy] > 0 and gains[happy] != 1.0
    assert "happy" in m["head_amplitude_degrees"] and "neutral" in m["head_amplitude_degrees"]
    np.testing.assert_array_equal(voice_before["rotation"], voice_after["rotation"])
    angle = lambda r: np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))  # noqa: E731
    np.testing.assert_allclose(angle(happy_after["rotation"]), gains[happy] * angle(happy_before["rotation"]), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(happy_after["translation"], gains[happy] * happy_before["translation"], rtol=1e-5, atol=1e-7)


def test_rebuilding_prototypes_keeps_the_learned_expressions(labelled, tmp_path):
    from talking_head.app.cli import main

    corpus, bundle = labelled
    before = EmotionPrototypes.load(bundle / PROTOTYPES)
    if before.expressions is None:
        pytest.skip("needs the expressions fitted by the test before")
    assert main(["bundle", "emotions", str(bundle), "--speech", str(_speech_set(tmp_path / "speech"))]) == 0
    np.testing.assert_array_equal(EmotionPrototypes.load(bundle / PROTOTYPES).expressions, before.expressions)


def test_a_corpus_without_labels_is_refused_in_one_line(tmp_path, labelled, capsys):
    _, bundle = labelled
    bare = make_corpus(tmp_path / "bare")
    code, _, err = run_cli_captured(capsys, "bundle", "expressions", str(bundle), "--data", str(bare))
    assert code == 2 and "emotions/" in err and "is missing" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_corpus_of_another_mesh_is_refused_in_one_line(tmp_path, tiny_bundle_dir, capsys):
    import shutil

    corpus = make_corpus(tmp_path / "corpus")  # 60 vertices; the session's tiny bundle has 200
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    from talking_head.app.cli import main

    assert main(["bundle", "emotions", str(bundle), "--speech", str(_speech_set(tmp_path / "speech"))]) == 0
    code, _, err = run_cli_captured(capsys, "bundle", "expressions", str(bundle), "--data", str(corpus))
    assert code == 2 and "60 vertices" in err and "200" in err and "Traceback" not in err


def test_head_amplitude_follows_the_direction_and_leaves_the_voice_alone():
    from talking_head.core.emotion_direction import EmotionDirection, EmotionKey, direct_head_motion, parse_emotion
    from talking_head.core.geometry import matrices_to_quaternions, quaternions_to_matrices

    rng = np.random.default_rng(1)
    q = rng.standard_normal((10, 4)) * [1, 0.05, 0.05, 0.05] + [3, 0, 0, 0]
    rotation = quaternions_to_matrices(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    translation = rng.standard_normal((10, 3)).astype(np.float32)
    prototypes = EmotionPrototypes(LABELS, np.zeros((5, 4), np.float32), head_gains=np.array([1, 2, 0.5, 1, 1], np.float32))
    assert direct_head_motion(rotation, translation, None, prototypes, 25)[0] is rotation
    same = direct_head_motion(rotation, translation, EmotionDirection([EmotionKey(0.0, {}, 1.0)]), prototypes, 25)
    assert same[0] is rotation and same[1] is translation
    angle = lambda r: 2 * np.arccos(np.clip(matrices_to_quaternions(r)[:, 0], -1, 1))  # noqa: E731
    turned, moved = direct_head_motion(rotation, translation, parse_emotion("happy:0.5"), prototypes, 25)  # a = 0.5 + 0.5 * 2
    np.testing.assert_allclose(angle(turned), 1.5 * angle(rotation), rtol=1e-4)
    np.testing.assert_allclose(moved, 1.5 * translation, rtol=1e-6)
    calm, _ = direct_head_motion(rotation, translation, parse_emotion("sad:1"), prototypes, 25)
    np.testing.assert_allclose(angle(calm), 0.5 * angle(rotation), rtol=1e-4)
    # sliders left at voice 1 with happy at 1: the mean of 1 and the gain, not their sum
    both, _ = direct_head_motion(rotation, translation, parse_emotion("happy:1,voice:1"), prototypes, 25)
    np.testing.assert_allclose(angle(both), 1.5 * angle(rotation), rtol=1e-4)
    # the voice silenced and nothing else: the head keeps Gh's motion, not frozen
    kept, _ = direct_head_motion(rotation, translation, parse_emotion("voice:0"), prototypes, 25)
    np.testing.assert_allclose(angle(kept), angle(rotation), rtol=1e-4)
    # a ramp: frame by frame
    ramp = EmotionDirection([EmotionKey(0.0, {}, 1.0), EmotionKey(9 / 25, {"happy": 1.0}, 0.0)])
    ramped, _ = direct_head_motion(rotation, translation, ramp, prototypes, 25)
    np.testing.assert_allclose(angle(ramped), (1 + np.arange(10) / 9) * angle(rotation), rtol=1e-4)
