"""`talking-head bake`: the Animate button without a UI, through the bpy module.

    talking-head bake AUDIO --bundle DIR --blend OUT.blend [--mesh MESH.ply] [--fbx OUT.fbx]
                      [--abc OUT.abc] [--preview OUT.png] [--seed N] [--subject NAME]
                      [--style STYLE.json] [--no-head]

It builds a scene (sound strip at frame 1, the template head or MESH), runs the same worker and
writer as the panel, saves the .blend with the sound packed in (it plays with sound when
opened), and optionally exports FBX / Alembic and renders a preview strip.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.animation import Animation
from ..core.audio import FACE_FPS
from ..core.bundle_info import read_bundle_info
from ..core.errors import AudioError, TalkingHeadError


def register(commands) -> None:
    """Add the `bake` sub-command to app/cli.py's sub-parsers (bpy is imported only when run)."""
    bake = commands.add_parser("bake", help="sound file -> animated .blend (and FBX, Alembic, preview) with Blender's bpy")
    bake.add_argument("audio", type=Path, help="sound file (WAV, FLAC, OGG, MP3, ...)")
    bake.add_argument("--bundle", required=True, type=Path, help="model bundle folder")
    bake.add_argument("--blend", required=True, type=Path, help="OUT.blend to write")
    bake.add_argument("--mesh", type=Path, help="face mesh (.ply/.obj) in the template's topology (default: the template)")
    bake.add_argument("--fbx", type=Path, help="also export FBX (shape-key and object animation)")
    bake.add_argument("--abc", type=Path, help="also export Alembic (vertex positions per frame)")
    bake.add_argument("--preview", type=Path, help="also render a strip of frames (Cycles, CPU) into this PNG")
    bake.add_argument("--seed", type=int, default=0, help="head-motion variation (same seed, same motion)")
    bake.add_argument("--subject", default="", help="speaking style: a subject of the bundle (default: its first)")
    bake.add_argument("--style", type=Path, help="a tuned style (STYLE.json from `talking-head tune` or the panel)")
    bake.add_argument("--no-head", action="store_true", help="no head motion")
    bake.add_argument("--compact", action="store_true", help="a few PCA shape keys instead of one per frame")
    bake.add_argument("--fps", type=float, default=float(FACE_FPS), help=f"scene frame rate (default {FACE_FPS}, the model's)")
    bake.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    bake.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    bake(
        args.audio, args.bundle, args.blend, mesh=args.mesh, fbx=args.fbx, abc=args.abc, preview=args.preview,
        seed=args.seed, subject=args.subject, style=args.style, head=not args.no_head, compact=args.compact,
        fps=args.fps, device=args.device,
    )
    return 0


@dataclass
class Baked:
    """What `bake` made: the take on the head, and the worker's animation arrays."""

    take: object  # blender/writer.py TakeInfo
    animation: Animation


def bake(
    audio: Path,
    bundle: Path,
    blend: Path,
    mesh: Path | None = None,
    fbx: Path | None = None,
    abc: Path | None = None,
    preview: Path | None = None,
    seed: int = 0,
    subject: str = "",
    style: Path | None = None,
    head: bool = True,
    compact: bool = False,
    fps: float = FACE_FPS,
    device: str = "auto",
) -> Baked:
    """The Animate button in a fresh scene: build it, run the worker once, write and save."""
    try:
        import bpy
    except ImportError:
        raise TalkingHeadError("`bake` needs Blender's Python module: pip install bpy (Python 3.11)") from None

    from .. import register as register_addon, unregister as unregister_addon
    from ..blender import export, session, styles
    from ..blender import preview as blender_preview

    if not audio.is_file():
        raise AudioError(f"audio file not found: {audio}")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    registered = not hasattr(bpy.types.Scene, "talking_head")
    if registered:
        register_addon()
    try:
        scene = bpy.context.scene
        whole = round(fps)
        scene.render.fps, scene.render.fps_base = whole, whole / fps
        strip = session.add_sound_strip(scene, str(audio.resolve()), frame=1)
        settings = scene.talking_head
        settings.bundle_source, settings.bundle_folder = "FOLDER", str(bundle.resolve())
        settings.target = session.add_head(scene.collection, str(bundle), str(mesh) if mesh else None)
        settings.strip = strip.name
        info = read_bundle_info(bundle.resolve())
        if subject:
            info.config.subject_index(subject)  # one line for an unknown subject
        if style:  # like `animate --style`: the style's p, Gn speaking like `subject` or the style's subject
            choice = styles.add_style_file(settings, style.resolve())
            styles.style_choice(choice, info, subject)
            settings.subject = choice
        elif subject:
            settings.subject = subject
        settings.seed, settings.head_motion, settings.compact, settings.device = seed, head, compact, device
        request = session.prepare(scene, settings, speaking_style=subject if style else "")
        result = session.run(request)
        take = session.apply(scene, settings, request, result)
        print(f"animated {take.n_shape_keys} shape keys over frames {take.frame_start}-{take.frame_end}")
        strip.sound.pack()
        blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(blend.resolve()), check_existing=False)
        print(f"wrote {blend}")
        if fbx:
            print(f"wrote {export.export_fbx(settings.target, fbx.resolve(), scene)}")
        if abc:
            print(f"wrote {export.export_alembic(settings.target, abc.resolve(), scene)}")
        if preview:
            frames = blender_preview.spread_frames(take.frame_start, take.frame_end)
            print(f"wrote {blender_preview.render_strip(settings.target, preview.resolve(), frames, scene=scene)}")
    finally:
        if registered:
            unregister_addon()
    sys.stdout.flush()
    return Baked(take, result.animation)
