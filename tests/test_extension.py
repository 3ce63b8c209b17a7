"""The extension zip as Blender installs it: built by Blender's own extension builder, without the
training, corpus and command-line code, and still able to register, animate and export."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import write_clip

bpy = pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = ("app/", "training/", "scripts/", "bench/", "samples/", "tests/", "setup.py", "__main__.py")

# Run in a fresh Python: the unpacked zip imported under the name Blender gives extensions, then
# the add-on registered, a take animated through the worker and exported as FBX.
SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys
    root, bundle, audio, fbx = sys.argv[1:5]
    spec = importlib.util.spec_from_file_location("bl_ext.user_default.talking_head", root + "/__init__.py",
                                                  submodule_search_locations=[root])
    addon = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = addon
    spec.loader.exec_module(addon)
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    session = sys.modules["bl_ext.user_default.talking_head.blender.session"]
    export = sys.modules.get("bl_ext.user_default.talking_head.blender.export")
    if export is None:
        from importlib import import_module
        export = import_module("bl_ext.user_default.talking_head.blender.export")
    scene = bpy.context.scene
    settings = scene.talking_head
    settings.bundle_source, settings.bundle_folder, settings.device = "FOLDER", bundle, "cpu"
    settings.per_frame = True  # one key per model frame, asked for (compact is the default)
    settings.target = session.add_head(scene.collection, bundle)
    settings.strip = session.add_sound_strip(scene, audio, frame=1).name
    take = session.animate(scene, settings, timeout=300)
    print("written", export.export_fbx(settings.target, fbx, scene))
    print("TAKE", take.n_shape_keys, take.frame_start, take.frame_end)
    addon.unregister()
    """
)


@pytest.mark.slow
def test_extension_zip_leaves_out_training_and_still_animates(tmp_path):
    wheels = sorted((ROOT / "wheels").glob("plyfile-*.whl"))
    if not wheels:
        pytest.skip("the plyfile wheel is not downloaded (`make test` and `make extension` fetch it)")
    from talking_head.training.tiny import make_tiny_bundle

    builder = Path(bpy.utils.resource_path("LOCAL")) / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    done = subprocess.run([sys.executable, str(builder), "build", "--source-dir", str(ROOT), "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = tmp_path.glob("talking_head-*.zip")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "talking_head")
    assert "blender_manifest.toml" in names and "core/worker.py" in names and "blender/writer.py" in names
    shipped = [name for name in names if name.startswith(LEFT_OUT)]
    assert not shipped, f"the zip ships code Blender never imports: {shipped[:5]}"

    bundle = make_tiny_bundle(tmp_path / "bundle", n_vertices=120).path
    audio = write_clip(tmp_path / "clip.wav", 1.2)
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "talking_head"), str(bundle), str(audio), str(tmp_path / "take.fbx")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("TAKE ")]
    assert line.split()[1:3] == ["30", "1"]  # 1.2 s at 25 fps: one shape key per model frame, from frame 1
    assert (tmp_path / "take.fbx").stat().st_size > 1000
