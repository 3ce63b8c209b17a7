"""The README's "Animate your own character" pictures: the bundled model driving meshes that are
not its template, through ARKit shape keys built from landmarks, rendered with Cycles on the frame
where the take opens the mouth most (a vowel).

    python scripts/character_stills.py --bundle weights/demo --biwi ../shared/biwi/BIWI.ply \
        --out docs/images/character_stills.png

Two characters: BIWI's template (23,370 vertices, its landmarks built in) and a second head made
by the corpus generator with another resolution and face shape (a topology the model never saw),
stored in metres rather than the template's units. Each goes through `talking-head bake --mesh
MESH --landmarks ...` (app/bake.py `bake`), then one still is rendered per character.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METRES_PER_UNIT = 0.16  # the template's unit is about 16 cm


def second_character(folder: Path) -> tuple[Path, Path, np.ndarray]:
    """A head of another topology and shape, in metres: (mesh .ply, landmarks .json, vertex regions)."""
    from talking_head.core.mesh_io import write_mesh
    from talking_head.training.corpus.head_mesh import generate_head

    head = generate_head(columns=80, rows=44, shape={"nose": 1.25, "jaw": 1.12, "cheek": 0.9, "brow": 1.1, "lips": 1.15})
    mesh = folder / "character.ply"
    write_mesh(mesh, head.vertices * METRES_PER_UNIT, head.faces)
    marks = folder / "character_landmarks.json"
    marks.write_text(json.dumps(head.landmarks))
    return mesh, marks, head.vertex_region


def still(audio: Path, bundle: Path, mesh: Path, landmarks: str, out: Path, regions: np.ndarray | None, size: int) -> dict:
    """Bake `mesh` with ARKit keys from `landmarks`, render the frame of widest jawOpen into `out`."""
    import bpy

    from talking_head.app.bake import bake
    from talking_head.blender import head_look, preview
    from talking_head.core.arkit import ARKIT_INDEX
    from talking_head.core.character import read_landmarks
    from talking_head.core.template_head import REGION_NAMES
    from talking_head.training.corpus.head_mesh import REGION_NAMES as CORPUS_REGIONS

    with tempfile.TemporaryDirectory(prefix="talking_head_still_") as folder:
        baked = bake(audio, bundle, Path(folder) / "take.blend", mesh=mesh, landmarks=landmarks, device="cpu")
    target = next(obj for obj in bpy.context.scene.objects if obj.type == "MESH" and obj.data.shape_keys is not None)
    if regions is not None:
        assert tuple(CORPUS_REGIONS) == tuple(REGION_NAMES)
        head_look.set_region_materials(target.data, regions, REGION_NAMES)
    jaw = baked.animation.arkit_weights[:, ARKIT_INDEX["jawOpen"]]
    frame = int(np.argmax(jaw))
    marks = read_landmarks(landmarks)
    preview.render_strip(target, out, [baked.take.frame_start + frame], size=size, samples=16,
                         focus_vertices=[marks[name] for name in preview.FACE_LANDMARKS])
    return {"mesh": mesh.name, "vertices": len(target.data.vertices), "frame": frame, "jawOpen": float(jaw[frame]),
            "take": baked.take.kind, "channels": baked.take.n_shape_keys}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--audio", type=Path, default=ROOT / "samples" / "demo_speech.wav")
    parser.add_argument("--biwi", type=Path, required=True, help="BIWI.ply (read, never copied)")
    parser.add_argument("--out", type=Path, required=True, help="PNG: the two stills side by side")
    parser.add_argument("--size", type=int, default=384)
    args = parser.parse_args(argv)

    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="talking_head_characters_") as folder:
        work = Path(folder)
        mesh, marks, regions = second_character(work)
        facts = [
            still(args.audio, args.bundle, args.biwi, "biwi", work / "biwi.png", None, args.size),
            still(args.audio, args.bundle, mesh, str(marks), work / "character.png", regions, args.size),
        ]
        tiles = [Image.open(work / name) for name in ("biwi.png", "character.png")]
        sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
        x = 0
        for tile in tiles:
            sheet.paste(tile.convert("RGB"), (x, 0))
            x += tile.width
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.out)
    for fact in facts:
        print(json.dumps(fact))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
