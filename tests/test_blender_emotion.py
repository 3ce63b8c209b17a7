"""The Face's emotion sliders in Blender (headless bpy, tiny untrained bundle): keyed, they direct
the take from their keys on; untouched, the take is the voice's alone."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from talking_head.blender import emotion, session, writer  # noqa: E402
from talking_head.core.emotion_direction import PROTOTYPES, EmotionError, EmotionPrototypes  # noqa: E402
from talking_head.training.tiny import make_tiny_bundle  # noqa: E402

from test_blender import evaluated_local, setup_scene, speech_like  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("blender_emotion")
    bundle = make_tiny_bundle(root / "small", n_vertices=300)
    rng = np.random.default_rng(0)
    labels = bundle.config.emotion_labels
    EmotionPrototypes(labels, rng.standard_normal((len(labels), bundle.config.emotion_dim)).astype(np.float32)).save(root / "small" / PROTOTYPES)
    return {"small": root / "small", "clip": speech_like(root / "clip.wav", seconds=6.0), "root": root}


def sliders(settings):
    head = settings.target
    assert bpy.ops.talking_head.emotion_sliders() == {"FINISHED"}
    return head.data.talking_head, {s.label: s for s in head.data.talking_head.emotions}


def test_keyed_angry_changes_the_face_from_its_key_on(addon, data):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    head = settings.target
    props, by_label = sliders(settings)
    assert list(by_label) == ["neutral", "happy", "sad", "angry", "surprised"] and props.emotion_voice == 1.0

    voice_request = session.prepare(scene, settings)
    assert voice_request.task.emotion is None  # sliders untouched: the voice alone
    voice = session.run(voice_request).animation

    # Voice alone up to frame 100, then angry, fully and without the voice, from frame 120.
    for frame, angry, from_voice in ((100, 0.0, 1.0), (120, 1.0, 0.0)):
        by_label["angry"].weight, props.emotion_voice = angry, from_voice
        by_label["angry"].keyframe_insert("weight", frame=frame)
        props.keyframe_insert("emotion_voice", frame=frame)
    scene.frame_set(1)
    request = session.prepare(scene, settings)
    keys = request.task.emotion.keys
    assert keys[0].time == 0.0 and keys[0].from_voice == 1.0 and not keys[0].weights
    at_120 = next(k for k in keys if k.time == pytest.approx((120 - 1) / 25))
    assert at_120.weights == {"angry": 1.0} and at_120.from_voice == 0.0
    assert keys[-1].weights == {"angry": 1.0}
    result = session.run(request)
    directed = result.animation
    np.testing.assert_array_equal(directed.emotion_probs, voice.emotion_probs)  # what the voice was heard as
    # Model frame f is scene frame f + 1: frames well before the first key are the voice's take.
    np.testing.assert_allclose(directed.emotional[:90], voice.emotional[:90], atol=1e-6)
    change = np.abs(directed.emotional - voice.emotional).max(axis=(1, 2))
    assert change[119:].min() > 100 * max(change[:90].max(), 1e-7)

    session.apply(scene, settings, request, result)
    np.testing.assert_allclose(evaluated_local(head, 50), voice.emotional[49] - voice.pivot, atol=1e-4)
    assert not np.allclose(evaluated_local(head, 130), voice.emotional[129] - voice.pivot, atol=1e-4)
    heard = writer.lines_of(head)[settings.strip]["heard"]
    assert heard.split()[0] in by_label and heard.endswith(" s")


def test_set_but_not_keyed_sliders_hold_for_the_whole_take(addon, data):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    props, by_label = sliders(settings)
    by_label["happy"].weight, props.emotion_voice = 0.7, 0.3
    track = emotion.emotion_track(settings.target, ["neutral", "happy", "sad", "angry", "surprised"], 1.0, (1.0, 150.0), 25.0)
    assert len(track.keys) == 1 and track.keys[0].weights == {"happy": pytest.approx(0.7)} and track.keys[0].from_voice == pytest.approx(0.3)


def test_sliders_on_a_bundle_without_prototypes_get_one_line(addon, data, tmp_path):
    scene = addon
    bare = tmp_path / "bare"
    shutil.copytree(data["small"], bare)
    (bare / PROTOTYPES).unlink()
    settings = setup_scene(scene, bare, data["clip"])
    props, by_label = sliders(settings)
    by_label["sad"].weight = 1.0
    with pytest.raises(EmotionError, match="bundle emotions"):
        session.prepare(scene, settings)


def test_bake_takes_the_emotion_flags(data, tmp_path, capsys):
    from conftest import run_cli_captured

    from talking_head.app.bake import bake
    from talking_head.core.emotion_direction import parse_emotion

    voice = bake(data["clip"], data["small"], tmp_path / "voice.blend", device="cpu", per_frame=True, say=lambda _: None).animation
    code, out, err = run_cli_captured(capsys, "bake", data["clip"], "--bundle", data["small"], "--blend", tmp_path / "angry.blend",
                                      "--device", "cpu", "--emotion", "angry:1")
    assert code == 0, err
    angry = bake(data["clip"], data["small"], tmp_path / "angry2.blend", device="cpu", emotion=parse_emotion("angry:1"), say=lambda _: None).animation
    assert not np.allclose(angry.emotional, voice.emotional) and np.array_equal(angry.emotion_probs, voice.emotion_probs)
    capsys.readouterr()
    code, _, err = run_cli_captured(capsys, "bake", data["clip"], "--bundle", data["small"], "--blend", tmp_path / "x.blend",
                                    "--emotion", "furious:1")
    assert code == 2 and "neutral, happy, sad, angry, surprised" in err and len(err.strip().splitlines()) == 1
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_a_bundle_that_hears_gets_a_heard_slider_that_directs_by_what_is_heard(addon, data, tmp_path):
    from talking_head.core.emotion_hearing import FILE as HEARING
    from talking_head.training.emotion_hearing import fit_hearing

    from test_emotion_hearing import LABELS, _speech_set

    scene = addon
    hearing_bundle = tmp_path / "hears"
    shutil.copytree(data["small"], hearing_bundle)
    fit_hearing([_speech_set(tmp_path / "speech", per_label=3)], LABELS, processes=1).save(hearing_bundle / HEARING)
    settings = setup_scene(scene, hearing_bundle, data["clip"])
    props, by_label = sliders(settings)
    assert list(by_label) == [*LABELS, "heard"]
    voice = session.run(session.prepare(scene, settings)).animation
    by_label["heard"].weight, props.emotion_voice = 1.0, 0.0
    request = session.prepare(scene, settings)
    assert request.task.emotion.keys[0].weights == {"heard": 1.0}
    heard = session.run(request).animation
    np.testing.assert_allclose(heard.emotion_probs, voice.emotion_probs, atol=1e-6)  # the same voice, heard the same
    assert np.abs(heard.emotional - voice.emotional).max() > 1e-4  # and Ge followed it
    assert request.task.heard_expressions
    settings.heard_expressions = False
    assert not session.prepare(scene, settings).task.heard_expressions
