"""Head motion shared between nod, turn and tilt as the corpus shares it (`bundle head-balance`,
config.json head_axis_balance): the factors, their effect on rotations and on takes, the fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from talking_head.core.config import ModelConfig
from talking_head.core.errors import BundleError
from talking_head.core.head_balance import axis_balance, balance_head_motion, smooth_head_motion, smoothing_weight

from conftest import run_cli_captured
from tiny_corpus import V, make_corpus


def test_the_balance_gives_the_truths_proportions_at_the_models_size():
    truth, model = np.array([1.7, 1.2, 0.6]), np.array([1.5, 1.1, 1.5])
    b = axis_balance(truth, model)
    balanced = model * b
    np.testing.assert_allclose(balanced / np.linalg.norm(balanced), truth / np.linalg.norm(truth))
    assert np.linalg.norm(balanced) == pytest.approx(np.linalg.norm(model))
    assert b[2] < 0.5 < 1 < b[0]  # less tilt, more nod
    np.testing.assert_allclose(axis_balance(model, model), 1.0)
    assert axis_balance([1.0, 0.0, 0.0], [1.0, 1.0, 1.0])[1] == 0.0  # an axis the corpus never turns about
    with pytest.raises(ValueError):
        axis_balance([1.0, 1.0, 1.0], [1.0, 0.0, 1.0])


def test_rotations_turn_about_each_axis_times_its_factor():
    rng = np.random.default_rng(0)
    rotvec = rng.normal(0, 0.03, (50, 3))
    rotation = Rotation.from_rotvec(rotvec).as_matrix().astype(np.float32)
    out = balance_head_motion(rotation, [1.2, 1.0, 0.4])
    assert out.dtype == np.float32 and out.shape == rotation.shape
    np.testing.assert_allclose(Rotation.from_matrix(out).as_rotvec(), rotvec * [1.2, 1.0, 0.4], atol=1e-5)
    assert balance_head_motion(rotation, None) is rotation
    np.testing.assert_allclose(balance_head_motion(rotation, [1, 1, 1]), rotation, atol=1e-6)


def test_smoothing_is_a_causal_average_that_a_stream_can_carry_from_block_to_block():
    rng = np.random.default_rng(1)
    rotvec = np.cumsum(rng.normal(0, 0.004, (60, 3)), axis=0)
    rotation = Rotation.from_rotvec(rotvec).as_matrix().astype(np.float32)
    moved = rng.normal(0, 0.001, (60, 3)).astype(np.float32)
    assert smoothing_weight(0.0, 25) == 1.0 and smoothing_weight(0.14, 25) == pytest.approx(0.249, abs=1e-3)
    same = smooth_head_motion(rotation, moved, 1.0)
    assert same[0] is rotation and same[1] is moved  # 0 s: nothing changes
    weight = smoothing_weight(0.14, 25)
    out, out_moved, last = smooth_head_motion(rotation, moved, weight)
    expected = [rotvec[0]]
    for x in rotvec[1:]:
        expected.append(expected[-1] + weight * (x - expected[-1]))
    np.testing.assert_allclose(Rotation.from_matrix(out).as_rotvec(), expected, atol=1e-5)
    steps = lambda r: np.diff(Rotation.from_matrix(r).as_rotvec(), axis=0).std()  # noqa: E731
    assert steps(out) < 0.6 * steps(rotation)  # less shake
    first = smooth_head_motion(rotation[:25], moved[:25], weight)
    second = smooth_head_motion(rotation[25:], moved[25:], weight, first[2])
    np.testing.assert_allclose(np.concatenate([first[0], second[0]]), out, atol=1e-6)  # in blocks, as a stream: the same
    np.testing.assert_allclose(np.concatenate([first[1], second[1]]), out_moved, atol=1e-7)
    changed = rotation.copy()
    changed[40:] = np.eye(3)
    np.testing.assert_allclose(smooth_head_motion(changed, moved, weight)[0][:40], out[:40], atol=1e-6)  # causal: no look-ahead


def test_each_axis_can_have_its_own_time_constant():
    rng = np.random.default_rng(4)
    rotvec = np.cumsum(rng.normal(0, 0.004, (80, 3)), axis=0)
    rotation = Rotation.from_rotvec(rotvec).as_matrix().astype(np.float32)
    moved = rng.normal(0, 0.001, (80, 3)).astype(np.float32)
    weights = smoothing_weight([0.14, 0.4, 0.8], 25)
    assert weights.shape == (3,) and weights[0] == smoothing_weight(0.14, 25) and weights[0] > weights[1] > weights[2]
    out, out_moved, last = smooth_head_motion(rotation, moved, weights)
    got = Rotation.from_matrix(out).as_rotvec()
    for axis in range(3):  # each rotation-vector component through its own average
        one = Rotation.from_matrix(smooth_head_motion(rotation, moved, float(weights[axis]))[0]).as_rotvec()
        np.testing.assert_allclose(got[:, axis], one[:, axis], atol=1e-5)
    np.testing.assert_allclose(out_moved, smooth_head_motion(rotation, moved, float(weights[0]))[1], atol=1e-7)  # translation: the nod's
    steps = np.diff(got, axis=0).std(axis=0) / got.std(axis=0)
    assert steps[2] < steps[1] < steps[0]  # the slower the constant, the less it shakes
    first = smooth_head_motion(rotation[:30], moved[:30], weights)
    second = smooth_head_motion(rotation[30:], moved[30:], weights, first[2])
    np.testing.assert_allclose(np.concatenate([first[0], second[0]]), out, atol=1e-6)  # a stream's blocks: the same
    assert smooth_head_motion(rotation, moved, smoothing_weight([0, 0, 0], 25))[0] is rotation
    assert ModelConfig(n_vertices=10, subjects=["A"], head_smoothing_s=[0.14, 0.4, 0.8]).head_smoothing_s == [0.14, 0.4, 0.8]
    for bad in ([0.14, 0.4], [0.1, -0.2, 0.3], [0.1, 3.0, 0.3], [0.1, "x", 0.3]):
        with pytest.raises(BundleError, match="head_smoothing_s"):
            ModelConfig(n_vertices=10, subjects=["A"], head_smoothing_s=bad)


@pytest.mark.parametrize("value", [[1.0, 2.0], [1.0, -0.5, 1.0], [1.0, float("nan"), 1.0], "1 1 1"])
def test_a_bad_balance_in_config_is_refused_in_one_line(value):
    with pytest.raises(BundleError, match="head_axis_balance"):
        ModelConfig(n_vertices=10, subjects=["A"], head_axis_balance=value)
    with pytest.raises(BundleError, match="heard_head_amplitude_mean"):
        ModelConfig(n_vertices=10, subjects=["A"], heard_head_amplitude_mean=0.0)
    with pytest.raises(BundleError, match="head_smoothing_s"):
        ModelConfig(n_vertices=10, subjects=["A"], head_smoothing_s=-0.1)


def test_a_take_turns_by_the_bundles_balance(tiny_bundle_dir, tmp_path, clip_3s):
    import shutil

    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    plain = Animator(ModelBundle.load(bundle)).animate(clip_3s, seed=3)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "head_axis_balance": [1.5, 1.0, 0.25]}))
    balanced = Animator(ModelBundle.load(bundle)).animate(clip_3s, seed=3)
    before, after = Rotation.from_matrix(plain.rotation).as_rotvec(), Rotation.from_matrix(balanced.rotation).as_rotvec()
    assert np.abs(before).max() > 1e-4  # random Gh weights still turn the head
    np.testing.assert_allclose(after, before * [1.5, 1.0, 0.25], atol=1e-5)
    np.testing.assert_array_equal(balanced.emotional, plain.emotional)  # the faces are untouched

    from talking_head.core.audio import load_audio
    from talking_head.core.streaming import Streamer

    samples = load_audio(clip_3s)
    turned = []
    for source in (tiny_bundle_dir, bundle):  # a stream turns by the same balance
        streamer = Streamer(Animator(ModelBundle.load(source)), seed=3, warm_up=False)
        frames = [f for start in range(0, len(samples), 3200) for f in streamer.feed(samples[start:start + 3200])] + streamer.finish()
        turned.append(Rotation.from_matrix(np.stack([f.rotation for f in frames])).as_rotvec())
    np.testing.assert_allclose(turned[1], turned[0] * [1.5, 1.0, 0.25], atol=1e-5)

    # smoothing, last of all: the take's rotation vectors averaged; a stream's too, block after block
    (bundle / "config.json").write_text(json.dumps({**config, "head_axis_balance": [1.5, 1.0, 0.25], "head_smoothing_s": 0.2}))
    smoothed = Animator(ModelBundle.load(bundle)).animate(clip_3s, seed=3)
    weight = smoothing_weight(0.2, 25)
    expected = smooth_head_motion(balanced.rotation, balanced.translation, weight)
    np.testing.assert_allclose(smoothed.rotation, expected[0], atol=1e-5)
    np.testing.assert_allclose(smoothed.translation, expected[1], atol=1e-6)
    streamer = Streamer(Animator(ModelBundle.load(bundle)), seed=3, warm_up=False)
    frames = [f for start in range(0, len(samples), 3200) for f in streamer.feed(samples[start:start + 3200])] + streamer.finish()
    raw = Rotation.from_rotvec(turned[1]).as_matrix().astype(np.float32)
    np.testing.assert_allclose(np.stack([f.rotation for f in frames]), smooth_head_motion(raw, np.zeros((len(raw), 3), np.float32), weight)[0], atol=1e-5)


@pytest.fixture(scope="module")
def posed(tmp_path_factory):
    """A tiny corpus whose heads only nod (poses about x), and a tiny bundle of its size marked as
    having a trained Gh (its weights are random: the test checks the measure, not the motion)."""
    from talking_head.training.tiny import make_tiny_bundle

    root = tmp_path_factory.mktemp("balance")
    corpus = make_corpus(root / "corpus")
    bundle = root / "bundle"
    make_tiny_bundle(bundle, n_vertices=V, subjects=["F2", "M3"], max_frames=40, window_overlap=15, encode_window_s=1.0, encode_context_s=0.5)
    return corpus, bundle


def test_the_fit_measures_the_training_takes_and_writes_the_balance(posed, tmp_path, capsys):
    import shutil

    corpus, source = posed
    bundle = tmp_path / "bundle"
    shutil.copytree(source, bundle)
    code, _, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--cache", str(tmp_path / "cache"))
    assert code == 2 and "no trained head-motion synthesizer" in err and len(err.strip().splitlines()) == 1
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "head_trained": True}))
    code, out, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--clips", "3",
                                      "--cache", str(tmp_path / "cache"))
    assert code == 0, err
    balance = json.loads((bundle / "config.json").read_text())["head_axis_balance"]
    assert "on 3 training takes" in out
    # the corpus only nods: all the motion goes to x, at the size Gh's motion had
    assert balance[0] > 0 and balance[1] == 0 and balance[2] == 0
    assert json.loads((bundle / "config.json").read_text())["heard_head_amplitude_mean"] is None  # no emotion hearing to measure
    from talking_head.training.head_balance import measure_head_spread

    m = measure_head_spread(bundle, corpus, 3, tmp_path / "cache")
    assert m["takes"] == 3 and m["truth"][1] == pytest.approx(0, abs=1e-4) and m["truth"][0] > 0.1
    assert balance[0] == pytest.approx(np.linalg.norm(m["model"]) / m["model"][0], rel=1e-3)

    code, out, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--clips", "3",
                                      "--cache", str(tmp_path / "cache"), "--smoothing", "0.2")
    assert code == 0, err
    written = json.loads((bundle / "config.json").read_text())
    m = measure_head_spread(bundle, corpus, 3, tmp_path / "cache")  # now with the bundle's 0.2 s
    assert written["head_smoothing_s"] == 0.2 and m["smoothing_s"] == 0.2 and m["smoothed"][0] < m["model"][0]
    # the smoothed motion balanced back to the size Gh's had: all on x
    assert written["head_axis_balance"][0] == pytest.approx(np.linalg.norm(m["model"]) / m["smoothed"][0], rel=1e-3)
    code, out, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--clips", "3",
                                      "--cache", str(tmp_path / "cache"), "--smoothing", "0.2", "0.5", "1")
    assert code == 0, err
    written = json.loads((bundle / "config.json").read_text())
    assert written["head_smoothing_s"] == [0.2, 0.5, 1.0] and "smoothed over 0.2 / 0.5 / 1 s" in out
    m = measure_head_spread(bundle, corpus, 3, tmp_path / "cache")
    assert m["smoothing_s"] == [0.2, 0.5, 1.0] and written["head_axis_balance"][0] == pytest.approx(np.linalg.norm(m["model"]) / m["smoothed"][0], rel=1e-3)
    for bad in (["5"], ["0.2", "0.5"]):
        code, _, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--smoothing", *bad)
        assert code == 2 and "--smoothing takes one or three (nod, turn, tilt) times from 0 to 2 seconds" in err and len(err.strip().splitlines()) == 1


def test_with_a_hearing_the_fit_also_writes_the_mean_heard_amplitude(posed, tmp_path, capsys):
    import shutil

    from talking_head.core.emotion_direction import PROTOTYPES, EmotionPrototypes
    from talking_head.core.emotion_hearing import FILE, NAMES, EmotionHearing

    corpus, source = posed
    bundle = tmp_path / "bundle"
    shutil.copytree(source, bundle)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "head_trained": True}))
    labels = config["emotion_labels"]
    rng = np.random.default_rng(2)
    ratios = dict(zip(labels, (1.0, 1.4, 0.8, 1.7, 1.6)))
    EmotionPrototypes(labels, rng.normal(size=(len(labels), config["emotion_dim"])).astype(np.float32),
                      expressions=np.zeros((len(labels), V, 3), np.float32),  # the head ratios are kept beside learned expressions
                      expressions_measure={"head_amplitude_degrees": {k: {"corpus": v, "directed": 1.0, "takes": 4} for k, v in ratios.items()}}
                      ).save(bundle / PROTOTYPES)
    # random weights (for the test only): what matters is that every take is heard and averaged
    EmotionHearing(labels, np.zeros(len(NAMES)), np.ones(len(NAMES)), rng.normal(size=(len(labels), len(NAMES))), np.zeros(len(labels))).save(bundle / FILE)
    code, out, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--clips", "3",
                                      "--cache", str(tmp_path / "cache"))
    assert code == 0, err
    mean = json.loads((bundle / "config.json").read_text())["heard_head_amplitude_mean"]
    assert 0.8 < mean < 1.7 and "heard head amplitude" in out  # a mix of the ratios


def test_the_head_amplitude_per_heard_class_is_fitted_used_and_cleared_by_a_new_balance(posed, tmp_path, capsys, clip_3s):
    import shutil

    from talking_head.core.bundle import ModelBundle
    from talking_head.core.emotion_direction import PROTOTYPES, EmotionPrototypes, heard_amplitude
    from talking_head.core.emotion_hearing import FILE, NAMES, EmotionHearing
    from talking_head.core.pipeline import Animator
    from talking_head.training.head_balance import fit_heard_head_amplitudes

    corpus, source = posed
    bundle = tmp_path / "bundle"
    shutil.copytree(source, bundle)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "head_trained": True}))
    cache = str(tmp_path / "cache")
    code, _, err = run_cli_captured(capsys, "bundle", "heard-head", str(bundle), "--data", str(corpus), "--cache", cache)
    assert code == 2 and "has no emotion hearing" in err and len(err.strip().splitlines()) == 1
    labels = config["emotion_labels"]
    rng = np.random.default_rng(5)
    EmotionPrototypes(labels, rng.normal(size=(len(labels), config["emotion_dim"])).astype(np.float32),
                      expressions=np.zeros((len(labels), V, 3), np.float32),
                      expressions_measure={"head_amplitude_degrees": {k: {"corpus": v, "directed": 1.0, "takes": 4}
                                                                      for k, v in zip(labels, (1.0, 1.4, 0.8, 1.7, 1.6))}}).save(bundle / PROTOTYPES)
    # random weights (for the test only): the fit needs takes heard differently, not heard right
    EmotionHearing(labels, np.zeros(len(NAMES)), np.ones(len(NAMES)), rng.normal(size=(len(labels), len(NAMES))), np.zeros(len(labels))).save(bundle / FILE)
    code, _, err = run_cli_captured(capsys, "bundle", "heard-head", str(bundle), "--data", str(corpus), "--cache", cache, "--clips", "3")
    assert code == 2 and "needs at least 5" in err and len(err.strip().splitlines()) == 1

    code, out, err = run_cli_captured(capsys, "bundle", "heard-head", str(bundle), "--data", str(corpus), "--cache", cache)
    assert code == 0, err
    written = json.loads((bundle / "config.json").read_text())["heard_head_amplitudes"]
    assert "wrote heard_head_amplitudes" in out and "on 8 training takes" in out and "with the class ratios" in out
    report = fit_heard_head_amplitudes(bundle, corpus, cache=cache, write=False)
    assert len(written) == 5 and min(written) >= 0 and max(written) > 0 and written == [round(w, 4) for w in report["amplitudes"].values()]
    # least squares: the fitted sizes are at least as near the truth's as the class ratios' (scaled to their best)
    assert report["fitted"]["mean_degrees"] == pytest.approx(report["truth"]["mean_degrees"], rel=0.5)
    probs = rng.dirichlet(np.ones(5), size=7)
    np.testing.assert_allclose(heard_amplitude(probs, labels, EmotionPrototypes.load(bundle / PROTOTYPES), 1.3, written), probs @ np.array(written))

    # a take's head follows them: twice the amplitudes, twice the rotation vectors
    from scipy.spatial.transform import Rotation

    once = Animator(ModelBundle.load(bundle)).animate(clip_3s, seed=2)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "heard_head_amplitudes": [2 * w for w in written]}))
    twice = Animator(ModelBundle.load(bundle)).animate(clip_3s, seed=2)
    before, after = Rotation.from_matrix(once.rotation).as_rotvec(), Rotation.from_matrix(twice.rotation).as_rotvec()
    assert np.abs(before).max() > 1e-4
    np.testing.assert_allclose(after, 2 * before, atol=1e-5)

    # a new balance makes them stale: cleared, and said
    code, out, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(corpus), "--clips", "3", "--cache", cache)
    assert code == 0, err
    assert json.loads((bundle / "config.json").read_text())["heard_head_amplitudes"] is None and "heard_head_amplitudes cleared" in out
    with pytest.raises(BundleError, match="heard_head_amplitudes"):
        ModelConfig(n_vertices=10, subjects=["A"], emotion_labels=labels, heard_head_amplitudes=[1.0, 1.0])


def test_a_corpus_without_poses_is_refused_in_one_line(posed, tmp_path, capsys):
    import shutil

    corpus, source = posed
    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare, ignore=shutil.ignore_patterns("poses"))
    bundle = tmp_path / "bundle"
    shutil.copytree(source, bundle)
    config = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**config, "head_trained": True}))
    code, _, err = run_cli_captured(capsys, "bundle", "head-balance", str(bundle), "--data", str(bare))
    assert code == 2 and "no head poses" in err and len(err.strip().splitlines()) == 1
    assert "head_axis_balance" not in json.loads((bundle / "config.json").read_text()) or \
        json.loads((bundle / "config.json").read_text())["head_axis_balance"] is None
