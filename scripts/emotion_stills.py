"""The README's "Direct the emotion" picture: one clip, the voice's own emotion beside `--emotion
angry:1` and `--emotion happy:1`, rendered with the project's preview renderer (Cycles, CPU).

    python scripts/emotion_stills.py --bundle weights/demo --out docs/images/emotion_direction.png

Each take goes through `talking-head bake` (app/bake.py `bake`) on the bundle's template head,
without head motion (so that only the face differs) and with the same seed. The frame shown is the
one where the angry and happy faces differ most (largest vertex distance) within the sample's
neutral passage (the same neutral sentence for the three takes), named on the picture.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TAKES = (("voice", None), ("angry:1", "angry:1"), ("happy:1", "happy:1"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "weights" / "demo")
    parser.add_argument("--audio", type=Path, default=ROOT / "samples" / "demo_speech.wav")
    parser.add_argument("--out", type=Path, required=True, help="PNG: the three stills side by side")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--passage", default="neutral",
                        help="pick the frame within the sample's first passage of this emotion (its .json beside the audio), when there is one")
    args = parser.parse_args(argv)

    import bpy
    from PIL import Image, ImageDraw

    from talking_head.app.bake import bake
    from talking_head.blender import preview
    from talking_head.core.emotion_direction import parse_emotion

    with tempfile.TemporaryDirectory(prefix="talking_head_emotion_") as folder:
        work = Path(folder)
        baked = {}
        for name, spec in TAKES:
            baked[name] = bake(args.audio, args.bundle, work / f"{name.replace(':', '_')}.blend", head=False, device="cpu",
                               emotion=parse_emotion(spec) if spec else None, say=lambda _: None)
        angry, happy = baked["angry:1"].animation.emotional, baked["happy:1"].animation.emotional
        difference = np.linalg.norm(angry - happy, axis=-1)  # (N, V)
        first, end = passage_frames(args.audio, args.passage, baked["voice"].animation.fps, len(difference))
        frame = first + int(np.argmax(difference[first:end].max(axis=1)))
        tiles = []
        for name, spec in TAKES:
            bpy.ops.wm.open_mainfile(filepath=str(work / f"{name.replace(':', '_')}.blend"), load_ui=False)
            target = next(obj for obj in bpy.context.scene.objects if obj.type == "MESH" and obj.data.shape_keys is not None)
            out = preview.render_strip(target, work / f"{name.replace(':', '_')}.png", [baked[name].take.frame_start + frame],
                                       size=args.size, samples=16)
            tile = Image.open(out).convert("RGB")
            ImageDraw.Draw(tile).text((8, 8), "voice" if spec is None else f"--emotion {spec}", fill=(255, 255, 255))
            tiles.append(tile)
        sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
        for index, tile in enumerate(tiles):
            sheet.paste(tile, (index * tile.width, 0))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.out, optimize=True)
    fps = baked["voice"].animation.fps
    print(json.dumps({"frame": frame, "seconds": round(frame / fps, 2), "angry_vs_happy_max": float(difference[frame].max()),
                      "angry_vs_happy_mean": float(difference[frame].mean())}))
    print(f"wrote {args.out}")


def passage_frames(audio: Path, emotion: str, fps: float, frames: int) -> tuple[int, int]:
    """Frames [first, end) of the first passage spoken with `emotion` in the sample's description
    (AUDIO.json, as samples/demo_speech.json): the same sentence for all three takes, spoken
    neutrally by default. The whole clip when there is no description or no such passage."""
    description = audio.with_suffix(".json")
    if description.is_file():
        for passage in json.loads(description.read_text()).get("passages", []):
            if passage.get("emotion") == emotion:
                return int(passage["start"] * fps), min(frames, int(passage["end"] * fps))
    return 0, frames


if __name__ == "__main__":
    main()
