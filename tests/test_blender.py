"""The Blender extension, headless with the bpy module and tiny (untrained) bundles: what an
animator would check after pressing Animate, re-running, cancelling and exporting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
soundfile = pytest.importorskip("soundfile")

import talking_head  # noqa: E402
from talking_head.blender import export, session, writer  # noqa: E402
from talking_head.blender.worker_client import run_worker  # noqa: E402
from talking_head.core.tasks import AnimateTask  # noqa: E402
from talking_head.training.tiny import make_tiny_bundle  # noqa: E402

BIWI = Path(__file__).resolve().parents[2] / "shared" / "biwi" / "BIWI.ply"
SMALL_VERTICES = 300


def speech_like(path: Path, seconds: float = 1.6, rate: int = 16_000) -> Path:
    """A vowel-like harmonic signal with pauses."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 8))
    envelope = (np.sin(2 * np.pi * 1.3 * t) > -0.2).astype(float)
    soundfile.write(path, (0.3 * voice * envelope).astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("blender")
    make_tiny_bundle(root / "small", n_vertices=SMALL_VERTICES)
    return {"root": root, "small": root / "small", "clip": speech_like(root / "clip.wav")}


@pytest.fixture(scope="module")
def small_result(data):
    """The worker's result on the small bundle: one run, shared by the writer tests."""
    import sys

    return run_worker(sys.executable, AnimateTask(audio=str(data["clip"]), bundle=str(data["small"]), seed=3, with_head=True, device="cpu"), timeout=300)


def setup_scene(scene, bundle: Path, clip: Path, strip_frame: int = 1, fps: int = 25, per_frame: bool = True):
    """A template head and the clip's sound strip. These tests check the model's frames exactly,
    so they ask for per-frame shape keys (compact is the default) and for the frame range."""
    scene.render.fps, scene.render.fps_base = fps, 1.0
    settings = scene.talking_head
    settings.per_frame, settings.set_frame_range = per_frame, True
    settings.bundle_source, settings.bundle_folder = "FOLDER", str(bundle)
    assert bpy.ops.talking_head.add_template_head() == {"FINISHED"}
    scene.frame_current = strip_frame
    assert bpy.ops.talking_head.load_audio(filepath=str(clip)) == {"FINISHED"}
    settings.device = "cpu"
    return settings


def evaluated_local(obj, frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def world(obj, local: np.ndarray) -> np.ndarray:
    matrix = np.array(obj.matrix_world)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def expected_at(result, frame: int, start: float, fps: float):
    """Model output at a scene frame, by an independent route: linear vertices, scipy slerp."""
    from scipy.spatial.transform import Rotation, Slerp

    animation = result.animation
    n = animation.n_frames
    u = float(np.clip((frame - start) * animation.fps / fps, 0, n - 1))
    low, high = int(np.floor(u)), min(int(np.floor(u)) + 1, n - 1)
    w = u - low
    emotional = (1 - w) * animation.emotional[low] + w * animation.emotional[high]
    rotation = Slerp([0, 1], Rotation.from_matrix(animation.rotation[[low, high]]))(w).as_matrix()
    translation = (1 - w) * animation.translation[low] + w * animation.translation[high]
    return emotional, rotation, translation


def rest_matrix(obj) -> np.ndarray:
    take = json.loads(obj[writer.TAKE_PROPERTY])
    rest = take["rest"]
    from mathutils import Euler, Matrix, Vector

    return np.array(Matrix.LocRotScale(Vector(rest["location"]), Euler(rest["rotation_euler"], rest["rotation_mode"]), Vector(rest["scale"])))


def head_matrix(rest: np.ndarray, pivot: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Rest . T(P + tau) . R . T(-P), P the pivot in the mesh's coordinates."""
    motion = np.eye(4)
    motion[:3, :3] = rotation
    motion[:3, 3] = pivot + translation - rotation @ pivot
    return rest @ motion


def test_register_and_unregister():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    talking_head.register()
    assert hasattr(bpy.types.Scene, "talking_head")
    assert hasattr(bpy.types, "TALKINGHEAD_PT_main") and bpy.types.TALKINGHEAD_PT_main.bl_category == "Talking Head"
    for name in ("character", "tuning", "export", "emotion"):  # sub-panels, under the main one, closed at first
        panel = getattr(bpy.types, f"TALKINGHEAD_PT_{name}")
        assert (panel.bl_parent_id, panel.bl_category, panel.bl_space_type, panel.bl_region_type) == (
            "TALKINGHEAD_PT_main", "Talking Head", "VIEW_3D", "UI") and panel.bl_options == {"DEFAULT_CLOSED"}
    assert bpy.ops.talking_head.animate.poll() in (True, False)
    talking_head.unregister()
    assert not hasattr(bpy.types.Scene, "talking_head")
    assert not hasattr(bpy.types, "TALKINGHEAD_PT_main")
    talking_head.register()  # and again: registration is symmetric
    talking_head.unregister()


def test_animate_small_mesh_with_the_operator(addon, data):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"], strip_frame=1)
    head = settings.target
    assert len(head.data.vertices) == SMALL_VERTICES
    assert bpy.ops.talking_head.animate() == {"FINISHED"}
    n = round(1.6 * 25)
    assert len(head.data.shape_keys.key_blocks) == n + 1  # Basis + one per frame
    assert (scene.frame_start, scene.frame_end) == (1, n)
    # Exactly that frame's key is 1.
    scene.frame_set(10)
    values = np.array([block.value for block in head.data.shape_keys.key_blocks[1:]])
    assert values[9] == pytest.approx(1.0) and np.count_nonzero(values) == 1
    assert writer.has_take(head)
    assert bpy.ops.talking_head.remove_take() == {"FINISHED"}
    assert head.data.shape_keys is None and not bpy.data.actions


@pytest.mark.parametrize("fps,strip_frame", [(25, 1), (24, 7), (30, 1), (60, 13)])
def test_frames_match_the_model_at_any_frame_rate(addon, data, small_result, fps, strip_frame):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"], strip_frame=strip_frame, fps=fps)
    head = settings.target
    request = session.prepare(scene, settings)
    assert request.start == strip_frame
    take = session.apply(scene, settings, request, small_result)
    n = small_result.animation.n_frames
    assert take.n_shape_keys == n and len(head.data.shape_keys.key_blocks) == n + 1
    assert scene.frame_start == strip_frame and scene.frame_end == strip_frame + int((n - 1) * fps / 25 + 1e-6)
    pivot = small_result.animation.pivot
    rest = rest_matrix(head)
    for frame in sorted({scene.frame_start, scene.frame_start + 3, (scene.frame_start + scene.frame_end) // 2, scene.frame_end}):
        emotional, rotation, translation = expected_at(small_result, frame, strip_frame, fps)
        # The template head's mesh is the template moved so that its origin is the pivot.
        np.testing.assert_allclose(evaluated_local(head, frame), emotional - pivot, atol=1e-4)
        np.testing.assert_allclose(np.array(head.matrix_world), head_matrix(rest, np.zeros(3), rotation, translation), atol=1e-5)
    if fps == 25:  # world positions are the model's final vertices, turned from Y-up to Z-up
        frame = strip_frame + 5
        local = evaluated_local(head, frame)
        np.testing.assert_allclose(world(head, local), small_result.animation.vertices[5] @ session.Y_UP_TO_Z_UP.T, atol=1e-4)


def test_compact_take_keeps_the_motion(addon, data, small_result):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"], per_frame=False)  # the default take
    head = settings.target
    take = session.apply(scene, settings, session.prepare(scene, settings), small_result)
    animation = small_result.animation
    assert take.compact and 1 <= take.n_shape_keys < animation.n_frames
    displacement = animation.emotional - small_result.template
    errors = []
    for frame in range(1, animation.n_frames + 1):
        errors.append(evaluated_local(head, frame) + animation.pivot - animation.emotional[frame - 1])
    residual = np.sum(np.square(errors)) / np.sum(np.square(displacement))
    assert residual <= 1e-3 + 1e-6  # at least 99.9% of the motion energy


def add_user_data(head):
    """Shape keys, an action on each and a modifier the user made themselves."""
    if head.data.shape_keys is None:
        head.shape_key_add(name="Basis", from_mix=False)
    smile = head.shape_key_add(name="Smile", from_mix=False)
    co = np.empty(len(head.data.vertices) * 3, np.float32)
    smile.data.foreach_get("co", co)
    smile.data.foreach_set("co", co + 0.01)
    smile.value = 0.0
    smile.keyframe_insert("value", frame=1)
    smile.keyframe_insert("value", frame=200)
    head["mood"] = 0.5
    head.keyframe_insert('["mood"]', frame=1)
    head.modifiers.new("Smooth", "SMOOTH").show_viewport = False
    return {
        "key_action": head.data.shape_keys.animation_data.action,
        "object_action": head.animation_data.action,
        "smile": co + 0.01,
    }


def assert_user_data_intact(head, user):
    key = head.data.shape_keys
    assert key.key_blocks[0].name == "Basis" and key.key_blocks[1].name == "Smile"
    co = np.empty(len(head.data.vertices) * 3, np.float32)
    key.key_blocks["Smile"].data.foreach_get("co", co)
    np.testing.assert_array_equal(co, user["smile"])
    assert key.animation_data.action == user["key_action"]
    assert head.animation_data.action == user["object_action"]
    assert user["key_action"].name in bpy.data.actions and user["object_action"].name in bpy.data.actions
    assert "Smooth" in head.modifiers


def test_rerun_replaces_only_its_own_take(addon, data, small_result):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"], strip_frame=3)
    head = settings.target
    user = add_user_data(head)
    other = bpy.data.objects.new("Other", None)
    scene.collection.objects.link(other)
    for seed in (1, 2):
        settings.seed = seed
        session.apply(scene, settings, session.prepare(scene, settings), small_result)
        assert_user_data_intact(head, user)
    n = small_result.animation.n_frames
    assert len(head.data.shape_keys.key_blocks) == 2 + n  # not doubled
    assert "Other" in bpy.data.objects
    # With the user's own actions assigned, the take plays from an NLA track below them.
    emotional, rotation, translation = expected_at(small_result, 3 + 4, 3, 25)
    np.testing.assert_allclose(evaluated_local(head, 7), emotional - small_result.animation.pivot, atol=1e-4)
    np.testing.assert_allclose(np.array(head.matrix_world), head_matrix(rest_matrix(head), np.zeros(3), rotation, translation), atol=1e-5)
    location = tuple(json.loads(head[writer.TAKE_PROPERTY])["rest"]["location"])
    assert writer.remove_take(head)
    assert_user_data_intact(head, user)
    assert [block.name for block in head.data.shape_keys.key_blocks] == ["Basis", "Smile"]
    assert not head.animation_data.nla_tracks and not head.data.shape_keys.animation_data.nla_tracks
    assert sorted(bpy.data.actions.keys()) == sorted({user["key_action"].name, user["object_action"].name})
    assert tuple(head.location) == pytest.approx(location)


def test_cancel_leaves_the_scene_unchanged(addon, data, small_result):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    head = settings.target
    user = add_user_data(head)
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    keys_before = [block.name for block in head.data.shape_keys.key_blocks]
    actions_before = sorted(bpy.data.actions.keys())
    worker = session.start(session.prepare(scene, settings))
    worker.cancel()
    assert worker.finished and worker.result is None and not worker.work_dir.exists()
    assert [block.name for block in head.data.shape_keys.key_blocks] == keys_before
    assert sorted(bpy.data.actions.keys()) == actions_before
    assert_user_data_intact(head, user)


def test_transcript_recognise_and_pause_switches_reach_the_task(addon, data):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    assert session.prepare(scene, settings).task.recognise is False  # off unless asked: it costs time
    settings.recognise, settings.rest_in_pauses, settings.transcript = True, False, "zero one"
    task = session.prepare(scene, settings).task
    assert task.recognise is True and task.rest_in_pauses is False and task.transcript == "zero one"


def test_packed_sound_is_written_for_the_worker_and_removed_with_it(addon, data):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    session.find_strip(scene, settings.strip).sound.pack()
    request = session.prepare(scene, settings)
    audio = Path(request.task.audio)
    assert audio.is_file() and audio.parent == request.work_dir
    worker = session.start(request)
    try:
        result = worker.wait(120)
    finally:
        worker.cleanup()
    assert result.animation.n_frames == round(1.6 * 25)
    assert not audio.exists() and not request.work_dir.exists()


def test_wrong_size_mesh_gets_a_message(addon, data):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    mesh = bpy.data.meshes.new("cube")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], [], [(0, 1, 2), (0, 1, 3)])
    cube = bpy.data.objects.new("Cube", mesh)
    scene.collection.objects.link(cube)
    settings.target = cube
    with pytest.raises(writer.MeshMismatchError, match="Add template head"):
        session.prepare(scene, settings)
    with pytest.raises(RuntimeError, match="has 4 vertices but the model bundle's template has 300"):
        bpy.ops.talking_head.animate()
    assert cube.data.shape_keys is None


def test_missing_sound_gets_a_message(addon, data):
    scene = addon
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder = "FOLDER", str(data["small"])
    bpy.ops.talking_head.add_template_head()
    with pytest.raises(RuntimeError, match="Load audio"):
        bpy.ops.talking_head.animate()


def test_fbx_reimports_with_shape_keys_and_animation(addon, data, small_result, tmp_path):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"], strip_frame=1)
    head = settings.target
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    frames = [1, 12, small_result.animation.n_frames]
    expected = {f: world(head, evaluated_local(head, f)) for f in frames}
    path = export.export_fbx(head, tmp_path / "head.fbx", scene)
    line = settings.strip  # the line is named after its sound strip
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0)  # Blender's importer shifts by 1 by default
    imported = [o for o in bpy.data.objects if o.type == "MESH"][0]
    blocks = imported.data.shape_keys.key_blocks
    assert len(blocks) == small_result.animation.n_frames + 1
    assert blocks[5].name.endswith(f"TH.{line}.0004") and imported.data.shape_keys.use_relative
    for f in frames:
        bpy.context.scene.frame_set(f)
        assert blocks[f].value == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(world(imported, evaluated_local(imported, f)), expected[f], atol=1e-3)


def test_alembic_reimports_with_the_same_positions(addon, data, small_result, tmp_path):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"], strip_frame=1, fps=30)
    head = settings.target
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    frames = list(range(scene.frame_start, scene.frame_end + 1, 7)) + [scene.frame_end]
    expected = {f: world(head, evaluated_local(head, f)) for f in frames}
    path = export.export_alembic(head, tmp_path / "head.abc", scene)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.wm.alembic_import(filepath=str(path))
    imported = [o for o in bpy.data.objects if o.type == "MESH"][0]
    for f in frames:
        local = evaluated_local(imported, f)
        np.testing.assert_allclose(world(imported, local), expected[f], atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not BIWI.is_file(), reason="needs shared/biwi/BIWI.ply")
def test_biwi_template_takes_the_whole_clip(addon, data):
    scene = addon
    biwi = data["root"] / "biwi"
    if not biwi.exists():
        make_tiny_bundle(biwi, template=BIWI)
    settings = setup_scene(scene, biwi, data["clip"], strip_frame=5, fps=24)
    head = settings.target
    assert len(head.data.vertices) == 23_370
    request = session.prepare(scene, settings)
    worker = session.start(request)
    result = worker.wait(300)
    worker.cleanup()
    take = session.apply(scene, settings, request, result)
    n = result.animation.n_frames
    assert take.n_shape_keys == n and len(head.data.shape_keys.key_blocks) == n + 1
    rest = rest_matrix(head)
    for frame in (5, 20, scene.frame_end):
        emotional, rotation, translation = expected_at(result, frame, 5, 24)
        np.testing.assert_allclose(evaluated_local(head, frame), emotional - result.animation.pivot, atol=1e-4)
        np.testing.assert_allclose(np.array(head.matrix_world), head_matrix(rest, np.zeros(3), rotation, translation), atol=1e-5)


@pytest.mark.slow
def test_bake_command_writes_blend_exports_and_preview(data, tmp_path):
    import argparse

    from talking_head.app import bake

    parser = argparse.ArgumentParser()
    bake.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(
        ["bake", str(data["clip"]), "--bundle", str(data["small"]), "--blend", str(out / "take.blend"),
         "--fbx", str(out / "take.fbx"), "--abc", str(out / "take.abc"), "--preview", str(out / "take.png"), "--seed", "4", "--per-frame"]
    )
    assert args.run(args) == 0
    for name in ("take.blend", "take.fbx", "take.abc", "take.png"):
        assert (out / name).stat().st_size > 0
    bpy.ops.wm.open_mainfile(filepath=str(out / "take.blend"))
    scene = bpy.context.scene
    strips = [s for s in scene.sequence_editor.strips_all if s.type == "SOUND"]
    assert len(strips) == 1 and strips[0].sound.packed_file is not None
    head = [o for o in bpy.data.objects if o.type == "MESH"][0]
    assert len(head.data.shape_keys.key_blocks) == round(1.6 * 25) + 1
    assert not [o for o in bpy.data.objects if o.type in {"CAMERA", "LIGHT"}]
    bpy.ops.wm.read_factory_settings(use_empty=True)


# ---------------------------------------------------------------------------------------------
# Personal styles: the Style chooser, blending two styles, tuning from clips in the scene.

from talking_head.blender import styles, tuning  # noqa: E402
from talking_head.core.style import Style  # noqa: E402


@pytest.fixture(scope="module")
def bundle_style(data):
    """A style shipped in the small bundle's styles/ folder: 70% of M3's pivot, 30% of F4's."""
    from talking_head.core.bundle import ModelBundle

    bundle = ModelBundle.load(data["small"])
    pivots = bundle.model.person_embeddings().detach().numpy()  # (S, d)
    subjects = bundle.config.subjects
    alpha = np.zeros(len(subjects))
    alpha[subjects.index("M3")], alpha[subjects.index("F4")] = 0.7, 0.3
    style = Style("Warm", str(data["small"]), alpha.tolist(), (alpha @ pivots).tolist(), subject="F3")
    folder = data["small"] / "styles"
    folder.mkdir(exist_ok=True)
    style.save(folder / "warm.json")
    # Tuned for another bundle (another embedding size): not offered for this one.
    Style("Elsewhere", "other", [1.0], [0.0] * (bundle.config.d_model + 1), subject="F3").save(folder / "elsewhere.json")
    (folder / "notes.json").write_text("{not a style")
    return folder / "warm.json"


@pytest.fixture(scope="module")
def core_takes(data, bundle_style):
    """The core's own output on the clip (seed 3): the bundle's first subject, and the style."""
    from talking_head.core.bundle import ModelBundle
    from talking_head.core.pipeline import Animator

    animator = Animator(ModelBundle.load(data["small"]))
    style = Style.load(bundle_style)
    return {
        "default": animator.animate(data["clip"], seed=3),
        "style": animator.animate(data["clip"], subject=style.subject, seed=3, person=np.array(style.p)),
    }


def chooser(settings) -> dict[str, str]:
    """The Style chooser's entries: name -> identifier."""
    return {name: identifier for identifier, name, *_ in styles.choice_items(settings)}


def worker_take(scene, settings):
    request = session.prepare(scene, settings)
    worker = session.start(request)
    try:
        return request, worker.wait(300)
    finally:
        worker.cleanup()


def test_styles_of_the_bundle_are_listed_and_kept_with_the_file(addon, data, bundle_style, tmp_path):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    entries = chooser(settings)
    assert list(entries)[:6] == [f"Speaker {s} (trained)" for s in ("F2", "F3", "F4", "M3", "M4", "M5")] and settings.subject == "F2"
    assert [entries[f"Speaker {s} (trained)"] for s in ("F2", "M5")] == ["F2", "M5"]  # identifiers unchanged
    assert entries["Warm"] == styles.style_identifier(bundle_style)
    assert "Elsewhere" not in entries and len(entries) == 7  # other bundles' styles and broken files are left out
    # A style file added by the user is listed too, and stays listed in the saved .blend.
    mine = tmp_path / "mine.json"
    d_model = json.loads((data["small"] / "config.json").read_text())["d_model"]
    Style("Mine", "x", [], [0.5] * d_model, subject="M4").save(mine)
    assert bpy.ops.talking_head.add_style_file(filepath=str(mine)) == {"FINISHED"}
    assert settings.subject == styles.style_identifier(mine) and "Mine" in chooser(settings)
    with pytest.raises(RuntimeError, match="not a Talking Head style file"):
        bpy.ops.talking_head.add_style_file(filepath=str(bundle_style.parent / "notes.json"))
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "styles.blend"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "styles.blend"))
    settings = bpy.context.scene.talking_head
    assert settings.subject == styles.style_identifier(mine) and "Mine" in chooser(settings)
    assert bpy.ops.talking_head.remove_style_file() == {"FINISHED"}
    assert "Mine" not in chooser(settings) and mine.is_file() and settings.subject == "F2"


def test_animate_with_a_style(addon, data, bundle_style, core_takes):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    settings.seed = 3
    settings.subject = chooser(settings)["Warm"]
    assert bpy.ops.talking_head.animate() == {"FINISHED"}
    head, expected = settings.target, core_takes["style"]
    for frame in (1, 12, expected.n_frames):
        local = evaluated_local(head, frame)
        np.testing.assert_allclose(local, expected.emotional[frame - 1] - expected.pivot, atol=1e-4)
    assert not np.allclose(expected.emotional, core_takes["default"].emotional, atol=1e-3)


def test_style_blend_slider_gives_either_end(addon, data, bundle_style, core_takes):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    settings.seed, settings.blend_styles = 3, True
    settings.subject, settings.second_style = "F2", chooser(settings)["Warm"]  # F2: the default subject
    for weight, end in ((1.0, "default"), (0.0, "style")):
        settings.style_weight = weight
        request, result = worker_take(scene, settings)
        assert request.task.blend_weight == weight
        np.testing.assert_allclose(result.animation.emotional, core_takes[end].emotional, atol=1e-4)
        np.testing.assert_allclose(result.animation.vertices, core_takes[end].vertices, atol=1e-4)


def two_clips(scene, data, small_result, fps: int = 25):
    """Two template heads, each with a shape-key take of the clip and its sound strip."""
    settings = setup_scene(scene, data["small"], data["clip"], strip_frame=1, fps=fps)
    first = settings.target
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    second = session.add_head(scene.collection, str(data["small"]), name="Second Head")
    strip = session.add_sound_strip(scene, str(data["clip"]), frame=60)
    writer.write_take(second, small_result.animation, small_result.template, scene, 60.0, compact=False, set_frame_range=False)
    for head, strip_name in ((first, settings.strip), (second, strip.name)):
        clip = settings.tuning_clips.add()
        clip.strip, clip.mesh = strip_name, head
    return settings


def scene_state(scene, settings) -> dict:
    return {
        "frame": scene.frame_current,
        "objects": sorted(bpy.data.objects.keys()),
        "actions": sorted(bpy.data.actions.keys()),
        "keys": {o.name: [b.name for b in o.data.shape_keys.key_blocks] for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys},
        "values": {o.name: [b.value for b in o.data.shape_keys.key_blocks] for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys},
        "styles": [s.filepath for s in settings.styles],
        "subject": settings.subject,
    }


@pytest.mark.parametrize("fps", [25, 30])
def test_clip_faces_read_from_a_take_are_the_model_faces(addon, data, small_result, fps):
    scene = addon
    settings = two_clips(scene, data, small_result, fps=fps)
    scene.frame_set(17)
    before = scene_state(scene, settings)
    n = small_result.animation.n_frames
    for clip, start in zip(settings.tuning_clips, (1.0, 60.0)):
        local = tuning.sample_clip(scene, clip.mesh, start, n)
        faces = tuning.to_template(local, writer.rest_vertices(clip.mesh), small_result.template)
        np.testing.assert_allclose(faces, small_result.animation.emotional, atol=1e-4)
    assert scene_state(scene, settings) == before  # reading the scene does not change it


def test_clip_faces_read_from_an_alembic_cache(addon, data, small_result, tmp_path):
    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    head = settings.target
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    n = small_result.animation.n_frames
    expected = tuning.sample_clip(scene, head, 1.0, n)
    path = export.export_alembic(head, tmp_path / "take.abc", scene)
    bpy.ops.wm.alembic_import(filepath=str(path), set_frame_range=False)
    cached = next(o for o in bpy.data.objects if o.type == "MESH" and tuning.alembic_cache(o) is not None)
    assert cached != head and cached.data.shape_keys is None
    np.testing.assert_allclose(tuning.sample_clip(scene, cached, 1.0, n), expected, atol=1e-4)


def test_tune_style_from_two_clips(addon, data, small_result, tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "user_styles_folder", lambda create=False: tmp_path / "user styles")
    scene = addon
    settings = two_clips(scene, data, small_result)
    settings.tuning_name = "Take style"
    scene.frame_set(5)
    keys_before = scene_state(scene, settings)["keys"]
    assert bpy.ops.talking_head.tune_style() == {"FINISHED"}
    path = tmp_path / "user styles" / "Take_style.json"
    style = Style.load(path)
    alpha = np.array(style.alpha)
    assert style.name == "Take style" and style.mode == "convex" and len(alpha) == 6
    assert np.all(alpha >= 0) and abs(alpha.sum() - 1) < 1e-5  # on the simplex (projection)
    from talking_head.core.bundle import ModelBundle

    pivots = ModelBundle.load(data["small"]).model.person_embeddings().detach().numpy()
    np.testing.assert_allclose(alpha @ pivots, style.p, atol=1e-5)
    assert style.clips == [[settings.tuning_clips[0].strip, "Talking Head"], [settings.tuning_clips[1].strip, "Second Head"]]
    # Listed and chosen; the scene itself is as it was.
    assert chooser(settings)["Take style"] == settings.subject == styles.style_identifier(path)
    assert [s.filepath for s in settings.styles] == [str(path)]
    assert scene.frame_current == 5 and scene_state(scene, settings)["keys"] == keys_before


def test_tuning_lets_the_clips_pick_the_speaking_style_unless_told_not_to(addon, data, small_result):
    import shutil

    scene = addon
    settings = two_clips(scene, data, small_result)
    settings.subject = "M3"
    for pick, expected in ((True, None), (False, "M3")):
        settings.tuning_pick_subject = pick
        request = tuning.prepare(scene, settings)
        shutil.rmtree(request.work_dir)
        assert request.task.speaking_style == (expected or "")


def test_cancelled_tuning_leaves_the_scene_unchanged(addon, data, small_result, tmp_path, monkeypatch):
    monkeypatch.setattr(styles, "user_styles_folder", lambda create=False: tmp_path / "user styles")
    scene = addon
    settings = two_clips(scene, data, small_result)
    scene.frame_set(9)  # animated values are those of the current frame
    before = scene_state(scene, settings)
    request = tuning.prepare(scene, settings)
    assert len(request.task.clips) == 2 and request.task.mode == "convex"
    worker = tuning.start(request)
    worker.cancel()
    assert worker.finished and worker.result is None and not request.work_dir.exists()
    assert scene_state(scene, settings) == before
    assert not (tmp_path / "user styles").exists()


def test_tuning_clips_that_cannot_be_used_get_a_message(addon, data, small_result, tmp_path):
    scene = addon
    settings = two_clips(scene, data, small_result)
    second = settings.tuning_clips[1].mesh
    settings.tuning_clips.remove(1)
    with pytest.raises(RuntimeError, match="at least 2 clips"):
        bpy.ops.talking_head.tune_style()
    mesh = bpy.data.meshes.new("cube")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], [], [(0, 1, 2), (0, 1, 3)])
    cube = bpy.data.objects.new("Cube", mesh)
    scene.collection.objects.link(cube)
    clip = settings.tuning_clips.add()
    clip.strip, clip.mesh = settings.tuning_clips[0].strip, cube
    with pytest.raises(RuntimeError, match="clip 2: 'Cube' has 4 vertices but the model bundle's template has 300"):
        bpy.ops.talking_head.tune_style()
    still = session.add_head(scene.collection, str(data["small"]), name="Still Head")
    clip.mesh = still
    with pytest.raises(RuntimeError, match="clip 2: 'Still Head' is not animated"):
        bpy.ops.talking_head.tune_style()
    long_strip = session.add_sound_strip(scene, str(speech_like(tmp_path / "long.wav", seconds=3.0)), frame=60)
    clip.strip, clip.mesh = long_strip.name, second
    with pytest.raises(RuntimeError, match="lasts 3.00 s but 'Second Head' is animated for 1.6. s .*must match within 0.5 s"):
        bpy.ops.talking_head.tune_style()


def test_alembic_clip_reads_back_for_the_command_line(addon, data, small_result, tmp_path):
    from talking_head.app.clips import read_clip as read_mesh_sequence

    scene = addon
    settings = setup_scene(scene, data["small"], data["clip"])
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    path = export.export_alembic(settings.target, tmp_path / "clip.abc", scene)
    faces = read_mesh_sequence(path, SMALL_VERTICES)  # world positions, in the template's Y-up frame
    np.testing.assert_allclose(faces, small_result.animation.vertices, atol=1e-4)
    with pytest.raises(Exception, match="no mesh with the template's 301 vertices"):
        read_mesh_sequence(path, SMALL_VERTICES + 1)


def test_bake_command_with_a_style(data, bundle_style, core_takes, tmp_path):
    from talking_head.app.cli import main

    out = tmp_path / "styled.blend"
    assert main(["bake", str(data["clip"]), "--bundle", str(data["small"]), "--blend", str(out), "--style", str(bundle_style), "--seed", "3",
                 "--per-frame"]) == 0
    bpy.ops.wm.open_mainfile(filepath=str(out))
    head = [o for o in bpy.data.objects if o.type == "MESH"][0]
    expected = core_takes["style"]
    np.testing.assert_allclose(evaluated_local(head, 7), expected.emotional[6] - expected.pivot, atol=1e-4)
    assert main(["bake", str(data["clip"]), "--bundle", str(data["small"]), "--blend", str(tmp_path / "x.blend"),
                 "--style", str(bundle_style.parent / "elsewhere.json")]) == 2
    bpy.ops.wm.read_factory_settings(use_empty=True)
