"""Any character, headless with the bpy module and tiny (untrained) bundles: ARKit curves on a
face's own shape keys, Add ARKit Shape Keys from landmarks, scaled and turned copies of the
template, head motion on a bone, `bake --scene`, and the messages for bad input."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
soundfile = pytest.importorskip("soundfile")

import talking_head  # noqa: E402
from talking_head.blender import character, session, writer  # noqa: E402
from talking_head.blender.worker_client import run_worker  # noqa: E402
from talking_head.core.arkit import ARKIT_NAMES  # noqa: E402
from talking_head.core.character import (  # noqa: E402
    ChannelMapError,
    LandmarkError,
    TemplateShapeError,
    arkit_weights,
    check_landmarks,
    match_arkit_channels,
    scale_weights,
)
from talking_head.core.face_rig import BIWI_LANDMARKS  # noqa: E402
from talking_head.core.tasks import AnimateTask  # noqa: E402
from talking_head.core.template_head import HEAD_MESH, load_template_head  # noqa: E402
from talking_head.training.tiny import make_tiny_bundle, sphere_mesh  # noqa: E402

BIWI = Path(__file__).resolve().parents[2] / "shared" / "biwi" / "BIWI.ply"


def speech_like(path: Path, seconds: float = 1.2, rate: int = 16_000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 8)) * (np.sin(2 * np.pi * 1.3 * t) > -0.2)
    soundfile.write(path, (0.3 * voice).astype(np.float32), rate)
    return path


def worker_take(bundle: Path, clip: Path):
    return run_worker(sys.executable, AnimateTask(audio=str(clip), bundle=str(bundle), seed=5, with_head=True, device="cpu"), timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("character")
    make_tiny_bundle(root / "small", n_vertices=300)
    make_tiny_bundle(root / "head", template=HEAD_MESH)  # the demo head: it has landmarks, so an ARKit basis
    clip = speech_like(root / "clip.wav")
    return {"root": root, "small": root / "small", "head": root / "head", "clip": clip}


@pytest.fixture(scope="module")
def small_result(data):
    return worker_take(data["small"], data["clip"])


@pytest.fixture(scope="module")
def head_result(data):
    return worker_take(data["head"], data["clip"])


def scene_with(scene, bundle: Path, clip: Path, target=None):
    scene.render.fps, scene.render.fps_base = 25, 1.0
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder = "FOLDER", str(bundle)
    settings.device = "cpu"
    settings.set_frame_range = True  # these tests read the take's frames from the scene's range
    settings.target = target if target is not None else session.add_head(scene.collection, str(bundle))
    settings.strip = session.add_sound_strip(scene, str(clip), frame=1).name
    return settings


def keys_of(obj) -> dict:
    """Every shape key's name, value and vertex positions."""
    key = obj.data.shape_keys
    if key is None:
        return {}
    out = {}
    for block in key.key_blocks:
        co = np.empty(len(block.data) * 3, np.float32)
        block.data.foreach_get("co", co)
        out[block.name] = (block.value, co)
    return out


def assert_same_keys(before: dict, after: dict) -> None:
    assert list(before) == list(after)
    for name in before:
        assert before[name][0] == pytest.approx(after[name][0]), name
        np.testing.assert_array_equal(before[name][1], after[name][1])


def add_key(obj, name: str, offset: float = 0.01, value: float = 0.0):
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    block = obj.shape_key_add(name=name, from_mix=False)
    co = np.empty(len(block.data) * 3, np.float32)
    block.data.foreach_get("co", co)
    block.data.foreach_set("co", co + offset)
    block.value = value
    return block


def our_fcurves(action) -> dict:
    """data_path -> F-curve, through Blender 5.0's layered actions."""
    curves = {}
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for curve in bag.fcurves:
                    curves[(curve.data_path, curve.array_index)] = curve
    return curves


def scene_state() -> dict:
    return {
        "objects": sorted(bpy.data.objects.keys()),
        "actions": sorted(bpy.data.actions.keys()),
        "keys": {o.name: [(b.name, b.value) for b in o.data.shape_keys.key_blocks]
                 for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys},
        "takes": sorted(o.name for o in bpy.data.objects if writer.has_take(o)),
    }


# ---------------------------------------------------------------------------------------------
# Names.


def test_channel_names_match_with_prefixes_suffixes_and_a_mapping():
    names = ["Basis", "ARKit_jawOpen", "mouthSmileLeft.001", "CC_Base_Body.browInnerUp", "EyeBlink_L", "jawopen"]
    found = match_arkit_channels(names)
    assert found["jawOpen"] == "jawopen"  # the exact name wins over a prefixed one
    assert found["mouthSmileLeft"] == "mouthSmileLeft.001" and found["browInnerUp"] == "CC_Base_Body.browInnerUp"
    assert "eyeBlinkLeft" not in found
    mapped = match_arkit_channels(names, {"eyeBlinkLeft": "EyeBlink_L", "browInnerUp": ""})
    assert mapped["eyeBlinkLeft"] == "EyeBlink_L" and "browInnerUp" not in mapped
    with pytest.raises(ChannelMapError, match="shape key 'Blink_L', which the mesh does not have"):
        match_arkit_channels(names, {"eyeBlinkLeft": "Blink_L"})
    w = np.full((2, 52), 0.6)
    scaled = scale_weights(w, {"jaw": 2.0, "brows": 0.5})
    assert scaled[0, ARKIT_NAMES.index("jawOpen")] == 1.0 and scaled[0, ARKIT_NAMES.index("browInnerUp")] == pytest.approx(0.3)
    assert scaled[0, ARKIT_NAMES.index("eyeBlinkLeft")] == pytest.approx(0.6)


# ---------------------------------------------------------------------------------------------
# ARKit curves.


def test_arkit_curves_drive_the_face_own_keys_and_remove_restores_them(addon, data, head_result):
    scene = addon
    settings = scene_with(scene, data["head"], data["clip"])
    face = settings.target
    for name in ("ARKit_jawOpen", "mouthSmileLeft.001", "CC_Base_browInnerUp", "Smile"):
        add_key(face, name)
    add_key(face, "EyeBlink_L", value=0.3)
    row = face.data.talking_head.channels.add()
    row.channel, row.shape_key = "eyeBlinkLeft", "EyeBlink_L"
    before, state = keys_of(face), scene_state()
    settings.gain_jaw = 2.0
    request = session.prepare(scene, settings)
    assert request.plan.kind == "ARKIT" and set(request.plan.channels) == {"jawOpen", "mouthSmileLeft", "browInnerUp", "eyeBlinkLeft"}
    take = session.apply(scene, settings, request, head_result)
    assert take.kind == "ARKIT" and take.n_shape_keys == 4
    key = face.data.shape_keys
    action = bpy.data.actions[writer.lines_of(face)[settings.strip]["key_action"]]  # the line's, on the NLA
    assert action.get(writer.ACTION_TAG)
    curves = our_fcurves(action)
    assert set(path for path, _ in curves) == {f'key_blocks["{n}"].value' for n in ("ARKit_jawOpen", "mouthSmileLeft.001",
                                                                                      "CC_Base_browInnerUp", "EyeBlink_L")}
    animation = head_result.animation
    weights = arkit_weights(animation)
    expected = np.clip(2.0 * weights[:, ARKIT_NAMES.index("jawOpen")], 0, 1)
    jaw = curves[('key_blocks["ARKit_jawOpen"].value', 0)]
    values = np.array([k.co[1] for k in jaw.keyframe_points])
    assert len(values) == animation.n_frames and values.min() >= 0 and values.max() <= 1
    np.testing.assert_allclose(values, expected, atol=1e-6)
    for frame in (3, 11):
        scene.frame_set(frame)
        assert key.key_blocks["ARKit_jawOpen"].value == pytest.approx(expected[frame - 1], abs=1e-5)
    # Re-run: replaced, not doubled; the face's keys themselves are never changed.
    session.apply(scene, settings, session.prepare(scene, settings), head_result)
    assert len([a for a in bpy.data.actions if a.get(writer.ACTION_TAG) and not a.get(writer.REST_TAG)]) == 2  # shape keys + head
    after = keys_of(face)
    assert list(after) == list(before)
    for name in before:
        np.testing.assert_array_equal(before[name][1], after[name][1])
    assert bpy.ops.talking_head.remove_take() == {"FINISHED"}
    scene.frame_set(1)
    assert_same_keys(before, keys_of(face))
    assert scene_state() == state and key.animation_data is None


def test_add_arkit_keys_from_landmarks_in_the_mesh_own_units_and_axes(addon, data):
    """The template head, and a copy of it in metres-like units turned 90 degrees: the same keys, turned."""
    scene = addon
    head = load_template_head()
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ session.Y_UP_TO_Z_UP
    scale = 0.01
    plain = session.mesh_object("Plain", head.vertices, head.faces, scene.collection)
    turned = session.mesh_object("Turned", scale * head.vertices @ turn.T + 3.0, head.faces, scene.collection)
    add_key(turned, "jawOpen", offset=0.001)  # the user's own: kept as it is, not rebuilt
    own = keys_of(turned)["jawOpen"][1]
    displacement = {}
    for obj in (plain, turned):
        settings = scene.talking_head
        settings.target = obj
        with pytest.raises(RuntimeError, match="has no landmarks"):
            bpy.ops.talking_head.add_arkit_keys()
        character.set_landmarks(obj, head.landmarks)
        assert bpy.ops.talking_head.add_arkit_keys() == {"FINISHED"}
        keys = keys_of(obj)
        assert set(ARKIT_NAMES) <= set(keys) and len(keys) == 53
        displacement[obj.name] = {n: (keys[n][1] - keys["Basis"][1]).reshape(-1, 3) for n in ARKIT_NAMES}
        with pytest.raises(RuntimeError, match="already has all 52"):
            bpy.ops.talking_head.add_arkit_keys()
    np.testing.assert_array_equal(keys_of(turned)["jawOpen"][1], own)
    for name in ("mouthSmileLeft", "browInnerUp", "eyeBlinkRight"):
        np.testing.assert_allclose(displacement["Turned"][name], scale * displacement["Plain"][name] @ turn.T, atol=2e-6)


@pytest.mark.slow
@pytest.mark.skipif(not BIWI.is_file(), reason="needs shared/biwi/BIWI.ply")
def test_biwi_gets_arkit_keys_from_its_builtin_landmarks_and_animates(addon, data, head_result):
    from talking_head.core.mesh_io import read_mesh

    scene = addon
    settings = scene_with(scene, data["head"], data["clip"], target=session.add_mesh_file(scene.collection, BIWI))
    face = settings.target
    assert len(face.data.vertices) == 23_370 and not character.stored_landmarks(face)
    assert bpy.ops.talking_head.add_arkit_keys() == {"FINISHED"}
    keys = keys_of(face)
    assert len(keys) == 53 and set(ARKIT_NAMES) <= set(keys)
    rest, jaw = keys["Basis"][1].reshape(-1, 3), keys["jawOpen"][1].reshape(-1, 3)
    np.testing.assert_allclose(rest, read_mesh(BIWI).vertices, atol=1e-6)
    upper, lower, chin = BIWI_LANDMARKS["upper_lip"], BIWI_LANDMARKS["lower_lip"], BIWI_LANDMARKS["chin"]
    brow = (rest[BIWI_LANDMARKS["brow_inner_left"]] + rest[BIWI_LANDMARKS["brow_inner_right"]]) / 2
    down = (rest[chin] - brow) / np.linalg.norm(rest[chin] - brow)
    assert (jaw[lower] - rest[lower]) @ down > 0  # the lower lip goes down ...
    assert np.linalg.norm(jaw[lower] - jaw[upper]) > np.linalg.norm(rest[lower] - rest[upper]) + 1e-3  # ... away from the upper lip
    before = keys_of(face)
    take = session.apply(scene, settings, session.prepare(scene, settings), head_result)
    assert take.kind == "ARKIT" and take.n_shape_keys == 52
    assert bpy.ops.talking_head.remove_take() == {"FINISHED"}
    assert_same_keys(before, keys_of(face))


# ---------------------------------------------------------------------------------------------
# Per-vertex takes on scaled and turned copies.


def test_scaled_and_turned_copy_of_the_template_animates_the_same(addon, data, small_result):
    scene = addon
    settings = scene_with(scene, data["small"], data["clip"])
    head = settings.target
    rest_head = np.array(head.matrix_basis)  # matrix_world waits for the depsgraph
    angle = np.radians(70)
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]) @ session.Y_UP_TO_Z_UP
    scale, move = 2.5, np.array([1.0, -2.0, 0.5])
    local = np.empty(len(head.data.vertices) * 3, np.float32)
    head.data.vertices.foreach_get("co", local)
    local = local.reshape(-1, 3).astype(np.float64)
    copy = session.mesh_object("Copy", scale * local @ turn.T + move, np.zeros((0, 3), int), scene.collection)
    session.apply(scene, settings, session.prepare(scene, settings), small_result)
    settings.target = copy
    request = session.prepare(scene, settings)
    assert request.plan.kind == "SHAPE_KEYS"
    session.apply(scene, settings, request, small_result)
    similarity = np.eye(4)
    similarity[:3, :3], similarity[:3, 3] = scale * turn, move
    expected_world = similarity @ np.linalg.inv(rest_head)  # copy world = S . Rest_head^-1 . head world
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for frame in (1, 8, scene.frame_end):
        scene.frame_set(frame)
        points = {}
        for obj in (head, copy):
            mesh = obj.evaluated_get(depsgraph).data
            co = np.empty(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", co)
            m = np.array(obj.matrix_world)
            points[obj.name] = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
        np.testing.assert_allclose(points["Copy"], points[head.name] @ expected_world[:3, :3].T + expected_world[:3, 3], atol=1e-4)


def test_same_vertex_count_but_not_the_template_shape_is_refused(addon, data):
    scene = addon
    settings = scene_with(scene, data["head"], data["clip"])
    sphere = sphere_mesh(4482)
    ball = session.mesh_object("Ball", sphere.vertices, sphere.faces, scene.collection)
    settings.target = ball
    with pytest.raises(TemplateShapeError, match="has the template's 4,482 vertices but not its shape"):
        session.prepare(scene, settings)
    with pytest.raises(RuntimeError, match="not its shape"):
        bpy.ops.talking_head.animate()
    assert ball.data.shape_keys is None and not bpy.data.actions


# ---------------------------------------------------------------------------------------------
# Bad input: one line, nothing changed.


def test_bad_landmarks_are_named(addon, data):
    scene = addon
    head = load_template_head()
    face = session.mesh_object("Face", head.vertices, head.faces, scene.collection)
    scene.talking_head.target = face
    add_key(face, "Mine")
    before, state = keys_of(face), scene_state()
    good = dict(head.landmarks)
    cases = [
        ({k: v for k, v in good.items() if k != "chin"}, "landmarks not set: chin"),
        ({**good, "chin": good["nose_tip"]}, "nose_tip and chin are the same vertex"),
        ({**good, "eye_left": 10**6}, "landmark eye_left is vertex 1000000 but the mesh has only 4,482"),
        ({**good, "mouth_corner_left": good["mouth_corner_right"], "mouth_corner_right": good["mouth_corner_left"]},
         "disagree on left and right"),
    ]
    for landmarks, message in cases:
        with pytest.raises(LandmarkError, match=message):
            character.add_arkit_shape_keys(face, landmarks)
    line = np.zeros((12, 3))
    line[:, 0] = np.arange(12)
    with pytest.raises(LandmarkError, match="do not span a face"):
        check_landmarks(line, dict(zip(good, range(12))))
    # Through the panel: a landmark set out of range on the mesh, then the operator.
    character.set_landmarks(face, good)
    face.data.talking_head.landmarks.chin = 99_999
    with pytest.raises(RuntimeError, match="landmark chin is vertex 99999"):
        bpy.ops.talking_head.add_arkit_keys()
    assert_same_keys(before, keys_of(face))
    assert scene_state() == state


def test_bad_mapping_bone_and_target_get_one_line_and_change_nothing(addon, data, small_result):
    scene = addon
    settings = scene_with(scene, data["small"], data["clip"])
    face = settings.target
    add_key(face, "jawOpen")
    face.data.shape_keys.key_blocks["jawOpen"].keyframe_insert("value", frame=1)  # the user's own action
    row = face.data.talking_head.channels.add()
    row.channel, row.shape_key = "mouthSmileLeft", "Grin"
    armature = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(armature)
    before, state = keys_of(face), scene_state()
    with pytest.raises(RuntimeError, match="maps mouthSmileLeft to shape key 'Grin', which the mesh does not have"):
        bpy.ops.talking_head.animate()
    face.data.talking_head.channels.remove(0)
    settings.head_armature, settings.head_bone = armature, "Head"
    with pytest.raises(RuntimeError, match="armature 'Rig' has no bone 'Head'"):
        bpy.ops.talking_head.animate()
    settings.head_armature, settings.head_bone = None, ""
    settings.target = armature
    with pytest.raises(RuntimeError, match="choose a mesh object"):
        bpy.ops.talking_head.animate()
    assert_same_keys(before, keys_of(face))
    assert scene_state() == state and face.data.shape_keys.animation_data.action.name in bpy.data.actions


# ---------------------------------------------------------------------------------------------
# Head motion on a bone.


def add_rig(scene, location=(0.2, -0.1, 1.4)) -> bpy.types.Object:
    armature = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    neck = armature.data.edit_bones.new("Neck")
    neck.head, neck.tail = (0, 0, 0), (0, 0.05, 0.5)
    head = armature.data.edit_bones.new("Head")
    head.head, head.tail, head.roll, head.parent = (0, 0.05, 0.5), (0.1, 0.0, 1.0), 0.4, neck
    bpy.ops.object.mode_set(mode="OBJECT")
    armature.location, armature.rotation_euler, armature.scale = location, (0.1, 0.0, 0.6), (1.5, 1.5, 1.5)
    bpy.context.view_layer.update()
    return armature


def test_head_motion_on_a_bone_in_its_own_space(addon, data, small_result):
    scene = addon
    settings = scene_with(scene, data["small"], data["clip"])
    face = settings.target
    armature = add_rig(scene)
    armature.pose.bones["Head"].rotation_mode = "XYZ"
    armature.keyframe_insert("location", frame=1)  # the user's own armature action stays assigned
    user_action = armature.animation_data.action
    face_world = np.array(face.matrix_world)
    settings.head_armature, settings.head_bone = armature, "Head"
    take = session.apply(scene, settings, session.prepare(scene, settings), small_result)
    assert take.head_motion and face.animation_data is None  # the face object stays where it is
    assert armature.animation_data.action == user_action and armature.animation_data.nla_tracks[-1].name == writer.TRACK_NAME
    animation = small_result.animation
    arm = np.array(armature.matrix_world)
    rest = np.array(armature.data.bones["Head"].matrix_local)
    for frame in (2, 9, scene.frame_end):
        scene.frame_set(frame)
        u = frame - 1  # 25 fps from frame 1: scene frame f is model frame f - 1
        motion = np.eye(4)  # the face's local coordinates are the template's, moved to the pivot
        motion[:3, :3], motion[:3, 3] = animation.rotation[u], animation.translation[u]
        in_armature = np.linalg.inv(arm) @ face_world @ motion @ np.linalg.inv(face_world) @ arm
        pose = np.array(armature.pose.bones["Head"].matrix)
        np.testing.assert_allclose(pose, in_armature @ rest, atol=1e-4)
    pose_bone = armature.pose.bones["Head"]
    assert writer.remove_take(face)
    assert tuple(pose_bone.rotation_euler) == pytest.approx((0, 0, 0)) and tuple(pose_bone.location) == pytest.approx((0, 0, 0))
    assert armature.animation_data.action == user_action and not armature.animation_data.nla_tracks
    assert [a.name for a in bpy.data.actions] == [user_action.name]


# ---------------------------------------------------------------------------------------------
# Headless.


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_bake_into_the_user_file_leaves_it_unchanged(addon, data, tmp_path):
    scene = addon
    session.add_head(scene.collection, str(data["head"]), name="Hero")
    add_rig(scene)
    landmarks = {k: int(v) for k, v in load_template_head().landmarks.items()}
    blend_in, blend_out = tmp_path / "in.blend", tmp_path / "out.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_in))
    talking_head.unregister()  # as in a fresh `talking-head` process
    try:
        baked_into_a_copy(data, tmp_path, blend_in, blend_out, landmarks)
    finally:
        talking_head.register()


def baked_into_a_copy(data, tmp_path, blend_in, blend_out, landmarks):
    from talking_head.app.cli import main

    marks = tmp_path / "marks.json"
    marks.write_text(json.dumps(landmarks))
    before = digest(blend_in)
    base = ["bake", str(data["clip"]), "--bundle", str(data["head"]), "--scene", str(blend_in)]
    assert main(base + ["--object", "Hero", "--blend", str(blend_in)]) == 2
    assert main(base + ["--object", "Rig", "--blend", str(blend_out)]) == 2
    assert main(base + ["--object", "Hero", "--bone", "Rig:Jaw", "--blend", str(blend_out)]) == 2
    assert not blend_out.exists()
    assert main(base + ["--object", "Hero", "--landmarks", str(marks), "--bone", "Rig:Head",
                        "--blend", str(blend_out)]) == 0
    assert digest(blend_in) == before and blend_out.stat().st_size > 0
    bpy.ops.wm.open_mainfile(filepath=str(blend_out))
    face = bpy.data.objects["Hero"]
    assert writer.has_take(face) and json.loads(face[writer.TAKE_PROPERTY])["kind"] == "ARKIT"
    assert set(ARKIT_NAMES) <= set(face.data.shape_keys.key_blocks.keys())
    assert [t.name for t in bpy.data.objects["Rig"].animation_data.nla_tracks][-1] == writer.TRACK_NAME


@pytest.mark.slow
def test_bake_a_mesh_file_with_landmarks(data, tmp_path):
    from talking_head.app.cli import main
    from talking_head.core.mesh_io import write_mesh

    head = load_template_head()
    turned = tmp_path / "turned.ply"
    write_mesh(turned, 0.01 * head.vertices[:, [2, 1, 0]] * np.array([1, 1, -1]), head.faces)  # turned 90 degrees, scaled
    marks = tmp_path / "marks.json"
    marks.write_text(json.dumps({k: int(v) for k, v in head.landmarks.items()}))
    out = tmp_path / "take.blend"
    base = ["bake", str(data["clip"]), "--bundle", str(data["head"]), "--mesh", str(turned), "--blend", str(out)]
    assert main(base + ["--landmarks", str(marks)]) == 0
    bpy.ops.wm.open_mainfile(filepath=str(out))
    face = [o for o in bpy.data.objects if o.type == "MESH"][0]
    assert json.loads(face[writer.TAKE_PROPERTY])["kind"] == "ARKIT" and len(face.data.shape_keys.key_blocks) == 53
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_another_person_in_the_template_topology_is_accepted_a_sphere_is_not():
    """The shape check refuses what is not a face of this topology, not a different face: the
    template with every identity parameter of the rig 20% off still fits."""
    from talking_head.core.character import template_fit
    from talking_head.core.face_rig import IDENTITY_PARAMETERS, FaceRig
    from talking_head.core.template_head import load_template_head

    head = load_template_head()
    person = head.vertices + FaceRig(head.vertices, head.faces, head.landmarks).identity_offset({n: 0.2 for n in IDENTITY_PARAMETERS})
    turned = 0.16 * person @ np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]).T  # metres, turned 90 degrees
    fit = template_fit(head.vertices, turned)
    assert abs(fit.scale / 0.16 - 1) < 0.1  # the person is up to 20% larger in places
    with pytest.raises(TemplateShapeError):
        template_fit(head.vertices, sphere_mesh(len(head.vertices)).vertices)
