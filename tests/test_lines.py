"""Dialogue lines, headless with the bpy module and a tiny (untrained) bundle: one take per sound
strip, takes that follow their strip (trims, moves, Sync to Sound), the frame range left alone
unless asked, Remove one line or all, and the default take's file size."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
soundfile = pytest.importorskip("soundfile")

from talking_head.blender import session, writer  # noqa: E402
from talking_head.blender.worker_client import run_worker  # noqa: E402
from talking_head.core.tasks import AnimateTask  # noqa: E402
from talking_head.training.tiny import make_tiny_bundle  # noqa: E402

SMALL_VERTICES = 300


def speech_like(path: Path, seconds: float = 1.6, rate: int = 16_000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 8)) * (np.sin(2 * np.pi * 1.3 * t) > -0.2)
    soundfile.write(path, (0.3 * voice).astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lines")
    make_tiny_bundle(root / "small", n_vertices=SMALL_VERTICES)
    return {"small": root / "small", "one": speech_like(root / "one.wav"), "two": speech_like(root / "two.wav", 2.4)}


def worker_take(bundle: Path, clip: Path):
    return run_worker(sys.executable, AnimateTask(audio=str(clip), bundle=str(bundle), seed=3, with_head=True, device="cpu"), timeout=300)


@pytest.fixture(scope="module")
def results(data):
    return {"one": worker_take(data["small"], data["one"]), "two": worker_take(data["small"], data["two"])}


def dialogue(scene, data, per_frame: bool = True):
    """A template head and two sound strips: 'one' at frame 1, 'two' at frame 61."""
    scene.render.fps, scene.render.fps_base = 25, 1.0
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder, settings.device = "FOLDER", str(data["small"]), "cpu"
    settings.per_frame = per_frame
    settings.target = session.add_head(scene.collection, str(data["small"]))
    one = session.add_sound_strip(scene, str(data["one"]), frame=1)
    two = session.add_sound_strip(scene, str(data["two"]), frame=61)
    return settings, one, two


def animate(scene, settings, strip, result) -> writer.TakeInfo:
    settings.strip = strip.name
    return session.apply(scene, settings, session.prepare(scene, settings), result)


def our_strips(owner) -> dict[str, tuple[float, float]]:
    """NLA strip name -> (first, last frame) on the add-on's line track of `owner`."""
    data = owner.animation_data
    tracks = [t for t in data.nla_tracks if t.name == writer.TRACK_NAME] if data else []
    return {s.name: (s.frame_start, s.frame_end) for track in tracks for s in track.strips}


def face_at(obj, frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def model_face(result, index: int) -> np.ndarray:
    animation = result.animation
    return animation.emotional[index] - animation.pivot


def test_two_lines_on_one_face_and_reanimating_one_leaves_the_other(addon, data, results):
    scene = addon
    settings, one, two = dialogue(scene, data)
    head = settings.target
    scene.frame_start, scene.frame_end = 1, 250
    first = animate(scene, settings, one, results["one"])
    second = animate(scene, settings, two, results["two"])
    n1, n2 = results["one"].animation.n_frames, results["two"].animation.n_frames
    assert (first.line, first.frame_start, first.frame_end) == (one.name, 1, n1)
    assert (second.line, second.frame_start, second.frame_end) == (two.name, 61, 60 + n2)
    key = head.data.shape_keys
    assert our_strips(key) == {one.name: (1, n1), two.name: (61, 60 + n2)}
    assert our_strips(head) == our_strips(key)  # the head motion follows the same rule
    assert len(key.key_blocks) == 1 + n1 + n2
    assert {b.name.rsplit(".", 1)[0] for b in key.key_blocks[1:]} == {f"TH.{one.name}", f"TH.{two.name}"}
    assert (scene.frame_start, scene.frame_end) == (1, 250)  # the frame range is the user's
    for frame, result, index in ((5, "one", 4), (61, "two", 0), (70, "two", 9)):
        np.testing.assert_allclose(face_at(head, frame), model_face(results[result], index), atol=1e-4)
    # Between the lines the face is at rest, the head at its rest transform.
    np.testing.assert_allclose(face_at(head, 50), writer.rest_vertices(head), atol=1e-6)
    rest = writer.take_record(head)["rest"]
    assert tuple(head.location) == pytest.approx(rest["location"])

    # Again for line two (another seed's result: the other clip's); line one stays as it was.
    keys_one = [b.name for b in key.key_blocks if b.name.startswith(f"TH.{one.name}.")]
    before = face_at(head, 7)
    settings.strip = two.name
    again = session.apply(scene, settings, session.prepare(scene, settings), results["two"])
    assert again.line == two.name and len(key.key_blocks) == 1 + n1 + n2  # replaced, not doubled
    assert [b.name for b in key.key_blocks if b.name.startswith(f"TH.{one.name}.")] == keys_one
    np.testing.assert_array_equal(face_at(head, 7), before)
    assert set(our_strips(key)) == {one.name, two.name}
    assert len([a for a in bpy.data.actions if a.get(writer.ACTION_TAG) and not a.get(writer.REST_TAG)]) == 4


def test_trimmed_strip_animates_only_what_is_heard(addon, data, results):
    scene = addon
    settings, one, _ = dialogue(scene, data)
    head = settings.target
    one.frame_offset_start = 10  # the first 10 frames (0.4 s) are not heard
    assert one.frame_final_start == 11
    take = animate(scene, settings, one, results["one"])
    n = results["one"].animation.n_frames
    assert (take.frame_start, take.frame_end) == (11, n)
    assert our_strips(head.data.shape_keys) == {one.name: (11, n)}
    # Keys for the heard model frames only: 10 of n are not heard.
    assert len(head.data.shape_keys.key_blocks) == 1 + n - 10
    np.testing.assert_allclose(face_at(head, 5), writer.rest_vertices(head), atol=1e-6)  # silence: at rest
    for frame in (11, 20, n):  # with the audio heard there: model frame (frame - 1)
        np.testing.assert_allclose(face_at(head, frame), model_face(results["one"], frame - 1), atol=1e-4)


def test_moving_a_strip_and_syncing_moves_its_take(addon, data, results):
    scene = addon
    settings, one, two = dialogue(scene, data)
    head = settings.target
    animate(scene, settings, one, results["one"])
    animate(scene, settings, two, results["two"])
    n1, n2 = results["one"].animation.n_frames, results["two"].animation.n_frames
    two.frame_start = 101  # 40 frames later
    assert bpy.ops.talking_head.sync_to_sound() == {"FINISHED"}
    assert our_strips(head.data.shape_keys) == {one.name: (1, n1), two.name: (101, 100 + n2)}
    assert our_strips(head) == our_strips(head.data.shape_keys)
    np.testing.assert_allclose(face_at(head, 110), model_face(results["two"], 9), atol=1e-4)
    np.testing.assert_allclose(face_at(head, 70), writer.rest_vertices(head), atol=1e-6)
    # Moved onto line one: the later line wins where they overlap.
    two.frame_start = 21
    moved, missing = session.sync_to_sound(scene)
    assert moved == [f"{head.name}: {two.name}"] and not missing
    assert our_strips(head.data.shape_keys) == {one.name: (1, 21), two.name: (21, 20 + n2)}
    np.testing.assert_allclose(face_at(head, 25), model_face(results["two"], 4), atol=1e-4)
    assert session.sync_to_sound(scene) == ([], [])  # nothing moved


def test_frame_range_is_set_only_when_asked(addon, data, results):
    scene = addon
    settings, one, two = dialogue(scene, data)
    scene.frame_start, scene.frame_end = 5, 17
    animate(scene, settings, one, results["one"])
    assert (scene.frame_start, scene.frame_end) == (5, 17)
    settings.set_frame_range = True
    animate(scene, settings, two, results["two"])
    assert (scene.frame_start, scene.frame_end) == (1, 60 + results["two"].animation.n_frames)  # both lines


def test_remove_one_line_then_all(addon, data, results):
    scene = addon
    settings, one, two = dialogue(scene, data, per_frame=False)  # the default take: compact
    head = settings.target
    head.location = (0.5, 0.0, 1.0)
    location = tuple(head.location)
    head["mood"] = 0.5
    head.keyframe_insert('["mood"]', frame=1)  # the user's own action and NLA track stay
    user_action = head.animation_data.action
    user_track = head.animation_data.nla_tracks.new()
    user_track.name = "Mine"
    animate(scene, settings, one, results["one"])
    take = animate(scene, settings, two, results["two"])
    assert take.compact and 1 <= take.n_shape_keys < results["two"].animation.n_frames
    settings.strip = one.name
    assert bpy.ops.talking_head.remove_take(all=False) == {"FINISHED"}
    assert writer.has_take(head, two.name) and not writer.has_take(head, one.name)
    assert not any(b.name.startswith(f"TH.{one.name}.") for b in head.data.shape_keys.key_blocks)
    assert set(our_strips(head.data.shape_keys)) == set(our_strips(head)) == {two.name}
    np.testing.assert_allclose(face_at(head, 5), writer.rest_vertices(head), atol=1e-6)
    assert bpy.ops.talking_head.remove_take(all=True) == {"FINISHED"}
    assert not writer.has_take(head) and head.data.shape_keys is None
    assert head.animation_data.action == user_action and [t.name for t in head.animation_data.nla_tracks] == ["Mine"]
    assert [a.name for a in bpy.data.actions] == [user_action.name]
    assert tuple(head.location) == pytest.approx(location)


def test_default_take_is_smaller_than_per_frame_keys(addon, data, results, tmp_path):
    sizes = {}
    for per_frame in (False, True):
        bpy.ops.wm.read_factory_settings(use_empty=True)  # the add-on stays registered
        scene = bpy.context.scene
        settings, one, _ = dialogue(scene, data, per_frame=per_frame)
        animate(scene, settings, one, results["one"])
        path = tmp_path / f"{per_frame}.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False)
        sizes[per_frame] = path.stat().st_size
    assert sizes[False] < sizes[True]


def test_a_take_from_an_older_version_is_removed_and_can_be_animated_again(addon, data):
    """A .blend saved by the version before lines holds one take per object in another record:
    Remove Animation removes it (only what it lists and our tagged actions), then Animate works."""
    import json

    scene = addon
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder = "FOLDER", str(data["small"])
    assert bpy.ops.talking_head.add_template_head() == {"FINISHED"}
    head = settings.target
    mine = bpy.data.actions.new("my own action")  # the user's: must survive
    head.shape_key_add(name="Basis", from_mix=False)
    head.shape_key_add(name="Smile", from_mix=False)  # the user's key
    for i in range(3):
        head.shape_key_add(name=f"TH.{i:04d}", from_mix=False)
    old = bpy.data.actions.new("Talking Head shapes Talking Head")
    old["talking_head"] = True
    head.data.shape_keys.animation_data_create().action = old
    rest = {"location": list(head.location), "rotation_mode": head.rotation_mode,
            "rotation_euler": list(head.rotation_euler), "rotation_quaternion": list(head.rotation_quaternion),
            "rotation_axis_angle": list(head.rotation_axis_angle), "scale": list(head.scale)}
    head[writer.TAKE_PROPERTY] = json.dumps({"rest": rest, "shape_keys": ["TH.0000", "TH.0001", "TH.0002"], "created_basis": False,
                                             "key_action": old.name, "key_track": None, "head_motion": False})
    head.location = (5.0, 0.0, 0.0)  # moved by the old take's head motion
    old_name = old.name
    assert bpy.ops.talking_head.remove_take() == {"FINISHED"}
    assert [b.name for b in head.data.shape_keys.key_blocks] == ["Basis", "Smile"]
    assert old_name not in bpy.data.actions and mine.name in bpy.data.actions
    assert writer.TAKE_PROPERTY not in head.keys() and tuple(head.location) == tuple(rest["location"])
    scene.frame_current = 1
    assert bpy.ops.talking_head.load_audio(filepath=str(data["one"])) == {"FINISHED"}
    settings.device = "cpu"
    assert bpy.ops.talking_head.animate() == {"FINISHED"}
    assert writer.has_take(head)
