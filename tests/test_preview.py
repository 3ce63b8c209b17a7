"""How the head we add looks and how the preview shows it: the neck closed, a material per face
region, a camera on the face, and a user's scene left as it was after a preview."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from talking_head.blender import head_look, preview, session  # noqa: E402
from talking_head.core.mesh_io import read_mesh  # noqa: E402
from talking_head.core.template_head import HEAD_INFO, HEAD_MESH, load_template_head  # noqa: E402


@pytest.fixture(scope="module")
def head_bundle(tmp_path_factory, tiny_bundle_dir) -> Path:
    """A bundle folder whose template is the project's head (add_head needs no weights)."""
    folder = tmp_path_factory.mktemp("head_bundle")
    config = json.loads((tiny_bundle_dir / "config.json").read_text())
    config["n_vertices"] = len(load_template_head().vertices)
    config["pivot"] = json.loads(HEAD_INFO.read_text())["pivot"]
    (folder / "config.json").write_text(json.dumps(config))
    shutil.copy(HEAD_MESH, folder / "template.ply")
    return folder


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


def boundary_edges(mesh) -> int:
    return sum(len(loop) for loop in head_look.boundary_loops(mesh))  # a closed loop has as many edges as vertices


def local_vertices(obj) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def test_added_head_has_a_closed_neck_and_the_same_vertices(scene, head_bundle):
    head = load_template_head()
    pivot = np.asarray(json.loads(HEAD_INFO.read_text())["pivot"], np.float32)
    bare = session.mesh_object("bare", head.vertices - pivot, head.faces, scene.collection)
    obj = session.add_head(scene.collection, str(head_bundle))
    loops = head_look.boundary_loops(bare.data)
    neck = min(loops, key=lambda loop: head.vertices[loop, 1].mean())
    assert len(neck) > 30 and head.vertices[neck, 1].max() < head.vertices[head.landmarks["chin"], 1]
    # Only the neck is filled: the mouth opening and the teeth rows stay open.
    assert boundary_edges(obj.data) == boundary_edges(bare.data) - len(neck)
    assert not set(np.concatenate(head_look.boundary_loops(obj.data)).tolist()) & set(neck.tolist())
    assert len(obj.data.vertices) == len(head.vertices)
    np.testing.assert_array_equal(local_vertices(obj), head.vertices - pivot)
    assert len(obj.data.polygons) == len(head.faces) + len(neck) - 2  # triangles between the neck's own vertices
    assert head_look.project_head_of(obj.data) is not None


def test_added_head_has_a_material_per_face_region(scene, head_bundle, tiny_bundle_dir):
    obj = session.add_head(scene.collection, str(head_bundle))
    names = [m.get(head_look.REGION_PROPERTY) for m in obj.data.materials]
    assert names == ["skin", "lips", "eyes", "iris", "teeth", "mouth"]
    index = np.empty(len(obj.data.polygons), dtype=np.int32)
    obj.data.polygons.foreach_get("material_index", index)
    assert np.all(np.bincount(index, minlength=6) > 0)
    lips = load_template_head().landmarks["upper_lip"]
    touching = [p.material_index for p in obj.data.polygons if lips in p.vertices]
    assert touching and set(touching) <= {1, 5}  # lips (or the mouth behind them)
    # A second head shares the materials; another topology gets one skin material, nothing closed.
    second = session.add_head(scene.collection, str(head_bundle), name="Second Head")
    assert list(second.data.materials) == list(obj.data.materials) and len(bpy.data.materials) == 6
    sphere = session.add_head(scene.collection, str(tiny_bundle_dir), name="Sphere")
    assert [m.get(head_look.REGION_PROPERTY) for m in sphere.data.materials] == ["skin"]
    assert len(sphere.data.polygons) == len(read_mesh(tiny_bundle_dir / "template.ply").faces)


def projected(scene, camera, points: np.ndarray) -> np.ndarray:
    """(N, 3) world points -> (N, 2) frame coordinates, 0..1 from the bottom left."""
    bpy.context.view_layer.update()
    return np.array([tuple(world_to_camera_view(scene, camera, Vector(p)))[:2] for p in points])


@pytest.mark.parametrize("resolution", [(384, 384), (1920, 1080)])
def test_camera_frames_the_face(scene, head_bundle, resolution):
    scene.render.resolution_x, scene.render.resolution_y = resolution
    obj = session.add_head(scene.collection, str(head_bundle))
    camera = preview.frame_face(scene, obj, [1])
    assert scene.camera == camera and camera.name == "Talking Head camera"
    head = load_template_head()
    world = preview._world_vertices(scene, obj, [1])[0]
    names = ["brow_inner_left", "brow_inner_right", "brow_outer_left", "brow_outer_right", "upper_lip", "lower_lip", "chin"]
    xy = dict(zip(names, projected(scene, camera, world[[head.landmarks[n] for n in names]])))
    for name, (x, y) in xy.items():
        assert 0.05 < x < 0.95 and 0.05 < y < 0.95, name
    assert 0.35 < xy["upper_lip"][0] < 0.65 and 0.2 < xy["upper_lip"][1] < 0.5  # the mouth in the middle, low
    assert xy["brow_inner_left"][1] - xy["chin"][1] > 0.6  # brows to chin: most of the frame's height


def test_demo_blend_gets_a_camera_on_the_face(scene, head_bundle, tmp_path):
    from talking_head.app.demo import _add_face_camera

    session.add_head(scene.collection, str(head_bundle))
    blend = tmp_path / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    _add_face_camera(blend, 1, 1)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    camera = bpy.context.scene.camera
    assert camera is not None and camera.name == "Talking Head camera"
    lip = bpy.data.objects["Talking Head"].matrix_world @ bpy.data.objects["Talking Head"].data.vertices[load_template_head().landmarks["upper_lip"]].co
    x, y = projected(bpy.context.scene, camera, np.array([lip]))[0]
    assert 0.3 < x < 0.7 and 0.2 < y < 0.6


def scene_state(scene) -> dict:
    render = scene.render
    return {
        "objects": sorted(bpy.data.objects.keys()),
        "scene objects": sorted(scene.objects.keys()),
        "data": [sorted(c.keys()) for c in (bpy.data.cameras, bpy.data.lights, bpy.data.materials, bpy.data.worlds, bpy.data.meshes)],
        "slots": {o.name: [m.name for m in o.data.materials] for o in bpy.data.objects if o.type == "MESH"},
        "camera": scene.camera.name if scene.camera else None,
        "world": scene.world.name if scene.world else None,
        "frame": scene.frame_current,
        "render": (render.engine, render.resolution_x, render.resolution_y, render.resolution_percentage, render.filepath,
                   render.film_transparent, render.image_settings.file_format),
        "cycles": (scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.max_bounces),
        "view": (scene.view_settings.view_transform, scene.view_settings.look),
    }


def test_preview_leaves_the_scene_as_it_was(scene, head_bundle, tmp_path):
    """A user's scene with its own camera, light, world and a bare mesh: after a preview of our
    head and one of the bare mesh, everything is as it was."""
    head = session.add_head(scene.collection, str(head_bundle))
    camera = bpy.data.objects.new("My camera", bpy.data.cameras.new("My camera"))
    light = bpy.data.objects.new("My light", bpy.data.lights.new("My light", "SUN"))
    for obj in (camera, light):
        scene.collection.objects.link(obj)
    scene.camera, scene.world = camera, bpy.data.worlds.new("My world")
    mesh = bpy.data.meshes.new("My mesh")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1)], [], [(0, 1, 2)])
    bare = bpy.data.objects.new("My mesh", mesh)
    scene.collection.objects.link(bare)
    scene.render.engine, scene.render.filepath = "BLENDER_EEVEE", "//mine_"
    scene.frame_set(7)
    before = scene_state(scene)
    out = preview.render_strip(head, tmp_path / "head.png", [1, 2], size=32, samples=1, scene=scene)
    assert scene_state(scene) == before
    preview.render_strip(bare, tmp_path / "bare.png", [3], size=32, samples=1, scene=scene)
    assert scene_state(scene) == before
    image = bpy.data.images.load(str(out))
    assert tuple(image.size) == (64, 32)
    bpy.data.images.remove(image)


def test_corpus_frames_render_through_the_one_preview(tmp_path):
    from talking_head.app.corpus_preview import grid_image, render_frames

    head = load_template_head()
    frames = np.stack([head.vertices, head.vertices + [0, 0.01, 0]])  # (2, V, 3) corpus coordinates
    paths = render_frames(frames, head.faces, tmp_path, head.vertex_region, head.region_names, size=32, samples=1)
    assert [p.name for p in paths] == ["frame_0000.png", "frame_0001.png"] and all(p.is_file() for p in paths)
    # Its scene holds the face alone: the preview's camera and lights are gone again.
    assert [o.name for o in bpy.data.objects] == ["face"]
    assert [m.get(head_look.REGION_PROPERTY) for m in bpy.data.objects["face"].data.materials] == list(head.region_names)
    assert grid_image(paths, tmp_path / "grid.png", columns=2).is_file()
    bpy.ops.wm.read_factory_settings(use_empty=True)
