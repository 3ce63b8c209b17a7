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
from pathlib import Path


def register(commands) -> None:
    """Add the `bake` sub-command to core/cli.py's sub-parsers (bpy is imported only when run)."""
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
    bake.add_argument("--fps", type=float, default=25.0, help="scene frame rate (default 25, the model's)")
    bake.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    bake.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import bpy  # noqa: F401
    except ImportError:
        from ..core.errors import TalkingHeadError

        raise TalkingHeadError("`bake` needs Blender's Python module: pip install bpy (Python 3.11)") from None
    return _bake(args)


def _bake(args: argparse.Namespace) -> int:
    import sys

    import bpy

    from ..core.errors import AudioError
    from . import export, preview, registration, session, styles
    from .bundle_info import read_bundle_info

    if not args.audio.is_file():
        raise AudioError(f"audio file not found: {args.audio}")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    registered = not hasattr(bpy.types.Scene, "talking_head")
    if registered:
        registration.register()
    try:
        scene = bpy.context.scene
        fps = round(args.fps)
        scene.render.fps, scene.render.fps_base = fps, fps / args.fps
        strip = session.add_sound_strip(scene, str(args.audio.resolve()), frame=1)
        settings = scene.talking_head
        settings.bundle_source, settings.bundle_folder = "FOLDER", str(args.bundle.resolve())
        settings.target = session.add_head(scene.collection, str(args.bundle), str(args.mesh) if args.mesh else None)
        settings.strip = strip.name
        info = read_bundle_info(args.bundle.resolve())
        if args.subject:
            info.config.subject_index(args.subject)  # one line for an unknown subject
        if args.style:  # like `animate --style`: the style's p, Gn speaking like --subject or the style's subject
            choice = styles.add_style_file(settings, args.style.resolve())
            styles.job_choice(choice, info, args.subject)
            settings.subject = choice
        elif args.subject:
            settings.subject = args.subject
        settings.seed, settings.head_motion, settings.compact, settings.device = args.seed, not args.no_head, args.compact, args.device
        take = session.animate(scene, settings, speaking_style=args.subject if args.style else "")
        print(f"animated {take.n_shape_keys} shape keys over frames {take.frame_start}-{take.frame_end}")
        strip.sound.pack()
        args.blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(args.blend.resolve()), check_existing=False)
        print(f"wrote {args.blend}")
        if args.fbx:
            print(f"wrote {export.export_fbx(settings.target, args.fbx.resolve(), scene)}")
        if args.abc:
            print(f"wrote {export.export_alembic(settings.target, args.abc.resolve(), scene)}")
        if args.preview:
            frames = preview.spread_frames(take.frame_start, take.frame_end)
            print(f"wrote {preview.render_strip(settings.target, args.preview.resolve(), frames, scene=scene)}")
    finally:
        if registered:
            registration.unregister()
    sys.stdout.flush()
    return 0
